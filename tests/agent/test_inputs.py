"""Bad arguments of `call`, `echo` and `register`: one line, exit 2, and nothing sent.

The target is a real UDP socket on loopback: after every refused command it must not have received a
single datagram (no OPTIONS, no INVITE, no REGISTER went out before the check)."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from siptool.cli import get_app
from siptool.status import ExitStatus


@pytest.fixture(scope="module")
def target():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        yield s


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "notes.txt").write_text("not audio\n")
    (d / "garbage.pem").write_text("-----BEGIN CERTIFICATE-----\nxx\n")
    return d


CALL = [
    (["--uri-port", "99999"], "bad port in SIP URI"),
    (["--proxy", "sip:127.0.0.1:0"], "bad port in SIP URI"),
    (["--play", "{d}/notes.txt"], "not a PCM WAV file"),
    (["--play", "{d}/missing.wav"], "cannot read"),
    (["--record", "/nonexistent/x.wav"], "directory /nonexistent does not exist"),
    (["--record", "{d}"], "is a directory"),
    (["--pcap", "/nonexistent/x.pcap"], "does not exist"),
    (["--duration", "-1"], "--duration -1 s: must be more than 0 s"),
    (["--duration", "0"], "--duration 0 s: must be more than 0 s"),
    (["--t1", "-1"], "--t1 -1 s: must be more than 0 s"),
    (["--t1", "0"], "must be more than 0 s"),
    (["--dtmf", "1234567890", "--duration", "1"], "10 digits need 1.61 s of media, more than --duration 1 s"),
    (["--dtmf", "12X"], "not DTMF digits: X"),
    (["--mos", "7"], "--mos 7: must be at most 5"),
    (["--mos-min", "7"], "--mos 7: must be at most 5"),  # the older name of the same limit
    (["--loss", "-1"], "--loss -1 %: must be at least 0 %"),
    (["--max-jitter", "-3"], "--jitter -3 ms"),
    (["--pdd", "-5"], "--pdd -5 ms"),
    (["--max-gap", "0"], "--max-gap 0 s: must be at least 0.1 s"),
    (["--calls", "0"], "--calls 0: must be at least 1"),
    (["--calls", "2", "--rate", "0"], "--rate 0 calls/s: must be more than 0"),
    (["--codec", "G729"], "use pcmu, pcma, g722, opus"),
    (["--local-ip", "192.0.2.77"], "--local-ip 192.0.2.77: not an address of this host"),
    (["--public-ip", "not-an-ip"], "--public-ip 'not-an-ip': not an IP address"),
    (["--stun", "127.0.0.1:99999"], "--stun: port 99999 is out of range"),
    (["--stun", "127.0.0.1", "--transport", "tcp"], "--stun works for UDP only"),
    (["--stun", "127.0.0.1", "--public-ip", "192.0.2.1"], "not both"),
    (["--transport", "tls", "--cert", "{d}/garbage.pem", "--key", "{d}/garbage.pem"], "TLS: cannot load"),
    (["--transport", "tls", "--ca-file", "{d}/missing.pem"], "--ca-file"),
    (["--user", "a", "--password-file", "{d}/missing"], "cannot read --password-file"),
    (["--transport", "sctp"], "unknown transport 'sctp'"),
]

ECHO = [
    (["--listen", "127.0.0.1:99999"], "--listen: port 99999 is out of range (0-65535)"),
    (["--listen", "nohost"], "use HOST:PORT"),
    (["--listen", "192.0.2.77:5060"], "not an address of this host"),
    (["--transport", "tls"], "--transport tls needs --cert FILE and --key FILE"),
    (["--transport", "tls", "--cert", "{d}/garbage.pem", "--key", "{d}/garbage.pem"], "TLS: cannot load"),
    (["--transport", "tls", "--cert", "{d}/missing.pem", "--key", "{d}/missing.pem"], "cannot read"),
    (["--transport", "sctp"], "use udp, tcp or tls"),
    (["--ring", "-1"], "--ring -1 s: must be at least 0 s"),
    (["--hangup-after", "0"], "--hangup-after 0 s: must be more than 0 s"),
    (["--media-port", "70000"], "--media-port 70000: must be at most 65534"),
    (["--codec", "G729"], "use pcmu, pcma, g722, opus"),
    (["--user", "a"], "--user needs --password-env or --password-file"),
    (["--user", "a", "--password-file", "{d}/missing"], "cannot read --password-file"),
]

REGISTER = [
    (["--uri-port", "99999"], "bad port in SIP URI"),
    (["--expires", "0"], "--expires 0 s: must be at least 1 s"),
    (["--t1", "-1"], "--t1 -1 s: must be more than 0 s"),
    (["--duration", "-1"], "--duration -1 s: must be at least 0 s"),
    (["--local-ip", "192.0.2.77"], "not an address of this host"),
    (["--transport", "sctp"], "unknown transport 'sctp'"),
    (["--password-file", "{d}/missing"], "cannot read --password-file"),
]


def _argv(command: str, args: list[str], port: int, d) -> list[str]:
    args = [a.format(d=d) for a in args]
    if command == "echo":
        if "--listen" not in args:
            args = ["--listen", "127.0.0.1:0", *args]
        return ["echo", *args]
    uri_port = str(port)
    if args[:1] == ["--uri-port"]:
        uri_port, args = args[1], args[2:]
    if command == "call":
        return ["call", f"sip:100@127.0.0.1:{uri_port}", *args]
    return ["register", f"sip:alice@127.0.0.1:{uri_port}", *args]


@pytest.mark.parametrize("command, args, message", [("call", a, m) for a, m in CALL]
                         + [("echo", a, m) for a, m in ECHO] + [("register", a, m) for a, m in REGISTER])
def test_bad_argument_one_line_exit_2_nothing_sent(command, args, message, target, files):
    r = CliRunner().invoke(get_app(), _argv(command, args, target.getsockname()[1], files))
    err = r.stderr.strip()
    assert r.exit_code == ExitStatus.BAD_INPUT, (r.exit_code, r.stdout, err, r.exception)
    assert err.startswith("siptool: ") and "\n" not in err and message in err, err
    assert "Traceback" not in r.stdout + err and r.stdout == ""
    with pytest.raises(BlockingIOError):
        target.recv(2048)
