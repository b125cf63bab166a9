"""The live commands' HEP and metrics options, checked before anything starts: the reason, exit 2, the
HEP password never on the command line nor in any output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from interop.peers import free_port
from support import REPO


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "siptool", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "400", **(env or {})})


@pytest.mark.parametrize("args, says", [
    (["capture"], "give an interface"),
    (["capture", "-i", "lo", "--hep-listen", "127.0.0.1:9060"], "not both"),
    (["capture", "--hep-listen", "127.0.0.1:9060", "-f", "udp"], "are for capturing from an interface"),
    (["capture", "--hep-listen", "127.0.0.1:9060", "--hep", "udp:127.0.0.1:9061"], "--hep sends"),
    (["capture", "-i", "lo", "--hep", "udp:127.0.0.1:0"], "PORT 1-65535"),
    (["capture", "-i", "lo", "--hep", "sctp:host:9060"], "use udp:HOST:PORT or tcp:HOST:PORT"),
    (["capture", "-i", "lo", "--hep-id", "5"], "sent with --hep"),
    (["capture", "-i", "lo", "--hep", "udp:127.0.0.1:9060", "--hep-key-env", "SIPTOOL_NO_SUCH_VAR"], "is not set"),
    (["capture", "-i", "lo", "--hep-key-env", "HOME"], "for --hep or --hep-listen"),
    (["capture", "-i", "lo", "--metrics", "9465"], "use HOST:PORT"),
    (["analyze", "--hep-listen", "127.0.0.1:9060", "fixtures/pcaps/call_ok.pcap"], "one of them"),
    (["analyze", "fixtures/pcaps/call_ok.pcap", "--metrics", "127.0.0.1:9465"], "are for live capture"),
    (["analyze", "fixtures/pcaps/call_ok.pcap", "--write", "x.pcap"], "are for live capture"),
    (["analyze", "--hep-listen", "127.0.0.1:9060", "--engine", "tshark"], "not a pipe or HEP"),
    (["echo", "--metrics", "localhost"], "use HOST:PORT"),
])
def test_bad_live_options_are_refused_before_anything_starts(args, says):
    out = run(*args)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr


def test_the_hep_password_is_read_from_a_file_and_never_shown(tmp_path):
    """A HEP listener that runs a moment: its password comes from a file and appears nowhere."""
    key = tmp_path / "hep.key"
    key.write_text("n0t-in-argv\n")
    out = run("analyze", "--hep-listen", f"udp:127.0.0.1:{free_port()}", "--hep-key-file", key, "--duration", "0.5",
              "--json")
    assert out.returncode == 0, out.stderr
    assert "n0t-in-argv" not in out.stdout + out.stderr and '"format":"hep"' in out.stdout
    both = run("analyze", "--hep-listen", "127.0.0.1:9", "--hep-key-file", key, "--hep-key-env", "HOME")
    assert both.returncode == 2 and "--hep-key-env or --hep-key-file, not both" in both.stderr


def test_a_metrics_port_in_use_is_one_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = run("analyze", "--hep-listen", f"udp:127.0.0.1:{free_port()}", "--metrics",
                  f"127.0.0.1:{busy.getsockname()[1]}", "--duration", "0.5")
    assert out.returncode == 2 and "cannot serve metrics on 127.0.0.1" in out.stderr, out.stderr
