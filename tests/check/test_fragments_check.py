"""The `fragments` check (check/builtin.py, agent/fragments.py): siptool check in one network
namespace, siptool echo in another behind a veth pair. The check passes when the echo answers the
INVITE sent in IP fragments, fails (check.fragments_dropped) behind an iptables rule that drops
fragments, and is skipped with its reason without CAP_NET_RAW: never a pass it did not test."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time

import pytest
from agent.helpers import siptool
from interop.peers import Peer
from support import REPO, require_binary

from siptool.agent.fragments import PAD_HEADER, pad
from siptool.check.result import ladder_text
from siptool.drivers.files import analyze_file

CALLER, CALLEE = "10.15.3.1", "10.15.3.2"
SUITE = f'''
name = "path"
[target]
uri = "sip:echo@{CALLEE}:5060"
[[check]]
type = "fragments"
wait = 3
'''


class Path2:
    """Two namespaces joined by a veth pair: the caller's and the callee's (siptool echo)."""

    def __init__(self) -> None:
        tag = f"{os.getpid()}-{time.monotonic_ns() % 100000}"
        self.caller, self.callee = f"siptool-{tag}-fa", f"siptool-{tag}-fb"
        self.made: list[str] = []
        self.echo: Peer | None = None
        for ns in (self.caller, self.callee):
            self._ip("netns", "add", ns)
            self.made.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", self.caller, "link", "add", "fa0", "type", "veth", "peer", "name", "fb0", "netns", self.callee)
        for ns, dev, addr in ((self.caller, "fa0", CALLER), (self.callee, "fb0", CALLEE)):
            self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            self._ip("-n", ns, "link", "set", dev, "up")

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def run(self, ns: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *args], check=True, capture_output=True, text=True)

    def start_echo(self) -> None:
        self.echo = Peer(["ip", "netns", "exec", self.callee, sys.executable, "-m", "siptool", "echo", "--listen",
                          f"{CALLEE}:5060"], cwd=REPO)
        deadline = time.monotonic() + 20
        while f"{CALLEE}:5060 " not in self.run(self.callee, "ss", "-Hlun").stdout:
            assert self.echo.proc.poll() is None and time.monotonic() < deadline, self.echo.stop()
            time.sleep(0.1)

    def check(self, tmp_path, *wrap: str):
        """`siptool check --json --pcap-dir` in the caller's namespace (`wrap`: a command around it)."""
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "suite.toml").write_text(SUITE)
        r = siptool("check", tmp_path / "suite.toml", "--json", "--pcap-dir", tmp_path / "pcaps",
                    prefix=("ip", "netns", "exec", self.caller, *wrap), timeout=90)
        (result,) = json.loads(r.stdout)["checks"]
        return r.returncode, result

    def close(self) -> None:
        if self.echo is not None:
            self.echo.stop()
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture
def path():
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns, iptables, raw sockets)")
    for tool in ("ip", "iptables", "ss"):
        require_binary(tool)
    p = Path2()
    try:
        yield p
    finally:
        p.close()


def _fragments(pcap) -> list[tuple[int, bool]]:
    """(offset, more fragments) of each IPv4 fragment in a --pcap-dir file (raw IP, LINKTYPE 101)."""
    data, pos, out = pcap.read_bytes(), 24, []
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        flags = struct.unpack_from("!H", data, pos + 16 + 6)[0]
        pos += 16 + incl
        if flags & 0x3FFF:  # MF or an offset
            out.append(((flags & 0x1FFF) * 8, bool(flags & 0x2000)))
    return out


def test_fragments_pass_then_an_iptables_rule_drops_them(path, tmp_path):
    path.start_echo()
    code, ok = path.check(tmp_path / "open")
    assert code == 0 and ok["status"] == "pass", ok
    f = ok["figures"]
    assert f["control_status"] in (100, 180, 200) and f["fragmented_status"] in (100, 180, 200)
    assert (f["invite_bytes"], f["fragments"], f["fragment_bytes"], f["sends"]) == (1400, 3, 576, 1)
    assert ok["message"] == f"a 1400-byte INVITE in 3 fragments of at most 576 bytes got {f['fragmented_status']}"
    pcap = tmp_path / "open" / "pcaps" / "001-fragments.pcap"
    assert _fragments(pcap) == [(0, True), (552, True), (1104, False)]  # as they left, in the check's pcap
    # the check's ladder is analyze's of that pcap: two calls, each ended (the second INVITE joined from its pieces)
    report = analyze_file(pcap)
    assert ok["ladder"] == "\n\n".join(ladder_text(c.ladder) for c in report.calls)
    assert [c.final_status for c in report.calls] == [200, 200]
    for c in report.calls:  # nothing left up: the echo answered at once, the BYE was answered
        labels = [s.label for s in c.ladder]
        assert c.ended_by == "caller" and "BYE" in labels and labels[labels.index("BYE"):].count("200 OK") >= 1

    # the callee's firewall drops fragments but the first (-f). Before reassembly: PREROUTING (the
    # kernel joins fragments for local delivery before INPUT, so an INPUT rule never sees them)
    path.run(path.callee, "iptables", "-t", "raw", "-A", "PREROUTING", "-f", "-j", "DROP")
    code, dropped = path.check(tmp_path / "blocked")
    assert code == 1 and dropped["status"] == "fail", dropped
    f = dropped["figures"]
    assert f["control_status"] in (100, 180, 200) and f["fragmented_status"] is None and f["sends"] >= 3
    assert dropped["message"].startswith("the path drops IP fragments: a 1400-byte INVITE in 3 IP fragments of "
                                         "at most 576 bytes got no response in 3 s")
    codes = [x["code"] for x in dropped["findings"]]
    assert "check.fragments_dropped" in codes and "sip.no_response" not in codes
    counters = path.run(path.callee, "iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n").stdout
    assert int(counters.splitlines()[2].split()[0]) >= 2 * f["sends"]  # the rule did drop them


def test_without_cap_net_raw_the_check_is_skipped_with_its_reason(path, tmp_path):
    require_binary("setpriv")
    path.start_echo()
    code, r = path.check(tmp_path, "setpriv", "--bounding-set", "-net_raw")
    assert code == 1 and r["status"] == "skipped"  # a skip fails the run: nothing was tested
    assert r["message"] == ("sending an INVITE in crafted IP fragments needs root or the CAP_NET_RAW capability "
                            "(e.g. sudo setcap cap_net_raw+ep on the Python that runs siptool)")
    assert not (tmp_path / "pcaps" / "001-fragments.pcap").exists() or analyze_file(
        tmp_path / "pcaps" / "001-fragments.pcap").calls == []  # not even the control INVITE went out


def test_pad_adds_header_lines_to_the_size_asked():
    invite = b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 4\r\n\r\nv=0\n"
    line = len(f"\r\n{PAD_HEADER}: ")  # what a pad line takes besides its padding
    for size in (len(invite) + line + 1, len(invite) + line + 200, len(invite) + line + 201, 1400, 5000):
        padded = pad(invite, size)
        assert len(padded) == size and padded.endswith(b"\r\n\r\nv=0\n")
        head = padded.split(b"\r\n\r\n")[0].split(b"\r\n")
        assert head[:3] == invite.split(b"\r\n")[:3]
        assert all(line.startswith(f"{PAD_HEADER}: ".encode()) and len(line) <= 200 + 2 + len(PAD_HEADER)
                   for line in head[3:])
    assert pad(invite, 10) == invite
    assert len(pad(invite, len(invite) + 1)) == len(invite) + line + 1  # one short line more
