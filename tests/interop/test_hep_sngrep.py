"""HEP v3 both ways with sngrep (Debian's 1.6): sngrep sends a capture file's SIP as HEP to siptool's
receiver; siptool's encoder sends a fixture's SIP to sngrep listening, and sngrep sees the dialogs."""

from __future__ import annotations

import os
import re
import socket
import time

import pytest
from interop.peers import free_port
from support import FIXTURES, require_binary

from siptool.analysis.points import CapturePoints, received
from siptool.capture import open_capture
from siptool.capture.hep import HepReceiver, encode, from_packet
from siptool.capture.hep_listen import HepListener
from siptool.drivers.files import analyze_file
from siptool.sip.message import looks_like_sip

pytestmark = pytest.mark.interop
CAPTURES = ["calls_mixed.pcap", "call_tcp.pcap", "auth_401.pcap"]
SNGREP_ID = 2002  # sngrep's default eep.send.id


@pytest.fixture
def sngrep():
    return require_binary("sngrep")


def sip_packets(path):
    """The SIP messages of a capture as siptool's own reader gives them (UDP datagrams; TCP
    segments here each hold one whole message)."""
    with open_capture(path) as source:
        return [p for p in source if p.payload and looks_like_sip(p.payload)]


def receive_from_sngrep(sngrep, peers, path, config=None, auth_key=None):
    """sngrep -I path -H udp:... into a HepListener; returns (listener's receiver, merged report)."""
    want = len(sip_packets(path))
    points = CapturePoints()
    got = []
    with HepListener(f"udp:127.0.0.1:{free_port()}", HepReceiver(auth_key)) as listener:
        host, port = listener.address
        args = [sngrep, "-I", path, "-H", f"udp:{host}:{port}", "-N", "-q"]
        sender = peers(args + (["-f", config] if config else ["-F"]))
        deadline = time.monotonic() + 30

        def sink(pkt):
            got.append((pkt.point, pkt))
            points.feed(pkt)

        listener.run(sink, lambda: listener.receiver.messages >= want or time.monotonic() > deadline)
        assert sender.wait(30) == 0, sender.output
        return listener.receiver, got, points.finish(*received(listener.receiver))


def comparable(call, transport=True):
    """A call's facts that do not depend on how its packets arrived (frame numbers do); without the
    transport for what sngrep stores from HEP (it writes every message as a UDP frame)."""
    return (call.call_id, call.kind, call.final_status, call.state, call.messages, call.retransmissions,
            call.pdd_ms, call.duration_s, call.caller, call.callee, call.transport if transport else "",
            [(s.time, s.src, s.dst, s.label, s.transport if transport else "", s.retransmission)
             for s in call.ladder],
            sorted(f.code for f in call.findings if not f.code.startswith("capture.")))


@pytest.mark.parametrize("name", CAPTURES)
def test_sngrep_sends_hep_that_decodes_to_the_captured_sip(sngrep, peers, name):
    path = FIXTURES / name
    receiver, got, report = receive_from_sngrep(sngrep, peers, path)
    expected = sip_packets(path)
    assert receiver.malformed == 0 and receiver.refused == 0
    assert len(got) == len(expected) > 0
    for (point, pkt), want in zip(got, expected):
        assert pkt.payload == want.payload
        assert (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.transport) == \
            (want.src, want.sport, want.dst, want.dport, want.transport)
        assert abs(pkt.time - want.time) < 1e-6
        # sngrep 1.6 byte-swaps its 16-bit ID into the 32-bit chunk (htons into a uint32)
        assert point == str(SNGREP_ID << 16)
    # the report from HEP equals analyze on the file, call for call (media aside: sngrep sends SIP only)
    file_report = analyze_file(path)
    assert [comparable(c) for c in report.calls] == [comparable(c) for c in file_report.calls]
    assert {c.capture_point for c in report.calls} == {str(SNGREP_ID << 16)}


def test_sngrep_auth_key_is_checked(sngrep, peers, tmp_path):
    config = tmp_path / "sngreprc"
    config.write_text("set eep.send.pass s3cret\nset eep.send.id 7\n")  # sngrep's own config file, not argv
    path = FIXTURES / "call_ok.pcap"
    receiver, got, _ = receive_from_sngrep(sngrep, peers, path, config=config, auth_key=b"s3cret")
    assert receiver.refused == 0 and len(got) == len(sip_packets(path))
    assert {point for point, _ in got} == {str(7 << 16)}
    receiver, got, report = receive_from_sngrep(sngrep, peers, path, config=config, auth_key=b"other")
    assert got == [] and receiver.refused == len(sip_packets(path))
    refused = [f for f in report.findings if f.code == "hep.auth_refused"]
    assert len(refused) == 1 and refused[0].frames[0] == 1
    assert "s3cret" not in repr(receiver) + refused[0].explanation + str(refused[0].evidence)


def read_until(peer, pattern, timeout=20.0):
    """Read the peer's output as it comes until `pattern` matches; the match, or None."""
    fd = peer.proc.stdout.fileno()
    os.set_blocking(fd, False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            chunk = None
        if chunk:
            peer.output += chunk.decode("utf-8", "replace")
            found = re.findall(pattern, peer.output)
            if found:
                return found
        elif chunk == b"":
            return None
        time.sleep(0.05)
    return None


@pytest.mark.parametrize("name", ["calls_mixed.pcap", "call_tcp.pcap"])
def test_siptool_sends_hep_and_sngrep_sees_the_dialogs(sngrep, peers, tmp_path, name):
    path = FIXTURES / name
    out = tmp_path / "from_hep.pcap"
    port = free_port()
    listener = peers([sngrep, "-L", f"udp:127.0.0.1:{port}", "-N", "-F", "-O", out])
    assert read_until(listener, r"Dialog count: (\d+)"), listener.output  # listening
    expected = analyze_file(path)
    dialogs = len({c.call_id for c in expected.calls})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for pkt in sip_packets(path):
            s.sendto(encode(from_packet(pkt, agent_id=2001)), ("127.0.0.1", port))
    counts = read_until(listener, rf"Dialog count: ({dialogs})\b")
    listener.stop()  # SIGTERM: sngrep closes the pcap it wrote
    assert counts, listener.output[-300:]
    # what sngrep stored from our HEP is the same signalling: siptool finds the same calls in it
    seen = analyze_file(out)
    assert [comparable(c, False) for c in seen.calls] == [comparable(c, False) for c in expected.calls]
