"""HEP v3 codec (capture/hep.py), receiver and capture points, in memory."""

from __future__ import annotations

import pytest
from support import FIXTURES

from siptool.analysis.points import CapturePoints, received
from siptool.capture import open_capture
from siptool.capture.hep import (AF_INET6, HepError, HepFramer, HepMessage, HepReceiver, ProtocolType, decode,
                                 encode, from_packet, parse_address)
from siptool.drivers.files import analyze_file
from siptool.sip.message import looks_like_sip

# The example packet of the HEP3 specification (rev. 37, "Example HEP3 packet"): 113 octets.
SPEC_EXAMPLE = bytes.fromhex(
    "48455033" "0071" "00000001000702" "00000002000711" "00000003000ad4ca0001" "00000004000a527400d3"
    "0000000700082eea" "00000008000813c4" "00000009000a4e4982cb" "0000000a000a0001d4c0" "0000000b000701"
    "0000000c000a000000e4" "0000000f0014494e56495445207369703a626f62")


def test_the_specification_example():
    msg = decode(SPEC_EXAMPLE)
    assert (msg.src, msg.sport, msg.dst, msg.dport) == ("212.202.0.1", 12010, "82.116.0.211", 5060)
    assert (msg.time_sec, msg.time_usec, msg.agent_id, msg.protocol_type) == (1313440459, 120000, 228, 1)
    assert msg.payload == b"INVITE sip:bob" and msg.ip_protocol == 17
    assert encode(msg) == SPEC_EXAMPLE  # chunk for chunk, in the specification's order


@pytest.mark.parametrize("msg", [
    HepMessage("2001:db8::1", "2001:db8::2", 5060, 5070, b"OPTIONS sip:x SIP/2.0\r\n\r\n", family=AF_INET6,
               ip_protocol=6, time_sec=1, time_usec=999999, agent_id=0xFFFFFFFF, agent_name="sbc-1",
               auth_key=b"k", correlation_id=b"call@id", vlan=42, tcp_flags=0x18, keep_alive=30),
    HepMessage("10.0.0.1", "10.0.0.2", 1, 65535, b"\x80" * 172, protocol_type=ProtocolType.RTP, compressed=True),
    HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b"x" * 65000),
])
def test_round_trip(msg):
    back = decode(encode(msg))
    assert back == msg


def test_keep_alive_has_no_payload():
    data = bytes.fromhex("48455033" "0018" "0000000d00080005" "0000000c000a00000007")
    msg = decode(data)
    assert (msg.keep_alive, msg.agent_id, msg.payload) == (5, 7, b"")
    receiver = HepReceiver()
    assert receiver.receive(data) is None and receiver.skipped == {"keep-alive": 1}


def test_auth_key_never_in_repr():
    msg = HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b"x", auth_key=b"topsecret")
    assert "topsecret" not in repr(msg) and "topsecret" not in repr(decode(encode(msg)))
    assert "topsecret" not in repr(HepReceiver(b"topsecret"))


def test_other_vendors_chunks_are_skipped():
    msg = HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b"INVITE")
    data = encode(msg)
    vendor = bytes.fromhex("0002" "0020" "000a") + b"\x00\x00\x00\x01"  # Kamailio's, 10 octets
    data = data[:4] + (int.from_bytes(data[4:6], "big") + len(vendor)).to_bytes(2, "big") + data[6:] + vendor
    back = decode(data)
    assert back.payload == b"INVITE" and back.unknown_chunks == 1


@pytest.mark.parametrize("data, reason", [
    (b"HEP", "shorter than a HEP header"),
    (b"\x02\x10\x02\x11" + b"\x00" * 20, "HEP version 1 or 2"),
    (b"GET / HTTP/1.1\r\n", "not HEP v3"),
    (b"HEP3\x00\x05", "shorter than the header"),
    (b"HEP3\x00\x40" + b"\x00" * 10, "only 16 bytes"),
    (b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x02", "has length 2"),
    (b"HEP3\x00\x0c\x00\x00\x00\x0f\x00\x09", "has length 9"),
    (b"HEP3\x00\x09\x00\x00\x00", "shorter than a chunk header"),
    (b"HEP3\x00\x0d\x00\x00\x00\x01\x00\x07\x02", "no payload chunk"),
    (b"HEP3\x00\x0c\x00\x00\x00\x07\x00\x06", "holds 0 bytes, not 2"),
])
def test_malformed_messages_say_why(data, reason):
    with pytest.raises(HepError, match=reason):
        decode(data)


def test_bad_family_and_missing_addresses():
    good = HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b"x")
    data = bytearray(encode(good))
    data[12] = 7  # the family chunk's value
    with pytest.raises(HepError, match="IP family 7"):
        decode(bytes(data))
    with pytest.raises(HepError, match="not an IP address pair"):
        encode(HepMessage("nothost", "10.0.0.2", 1, 2, b"x"))


def test_compressed_payload_is_bounded():
    import zlib

    bomb = zlib.compress(b"\x00" * (2 << 20), wbits=31)
    msg = bytearray(encode(HepMessage("10.0.0.1", "10.0.0.2", 1, 2, bomb)))
    msg[-len(bomb) - 3] = 0x10  # payload chunk -> compressed payload chunk
    with pytest.raises(HepError, match="expands beyond"):
        decode(bytes(msg))


def test_framer_takes_a_stream_cut_anywhere():
    msgs = [encode(HepMessage("10.0.0.1", "10.0.0.2", 1, 2, bytes([i]) * (i * 37 % 500 + 1))) for i in range(20)]
    stream = b"".join(msgs)
    for step in (1, 7, 500, len(stream)):
        framer = HepFramer()
        out = []
        for i in range(0, len(stream), step):
            out += framer.feed(stream[i:i + step])
        assert out == msgs and framer.pending == 0
    with pytest.raises(HepError, match="lost framing"):
        HepFramer().feed(b"HEP4\x00\x10" + b"\x00" * 10)


def test_parse_address():
    assert parse_address("udp:127.0.0.1:9060") == ("udp", "127.0.0.1", 9060)
    assert parse_address("tcp:[::1]:9061") == ("tcp", "::1", 9061)
    assert parse_address("homer.example") == ("udp", "homer.example", 9060)
    assert parse_address("tcp:127.0.0.1:0", listen=True)[2] == 0
    for bad in ("udp:127.0.0.1:0", "127.0.0.1:99999", "::1", "tcp:", "udp:h:x"):
        with pytest.raises(HepError):
            parse_address(bad)


def fixture_sip(name):
    with open_capture(FIXTURES / name) as source:
        return [p for p in source if p.payload and looks_like_sip(p.payload)]


def test_receiver_gives_packets_the_analyzer_frames_over_tcp():
    """HEP has no TCP sequence numbers: the receiver's per-flow counter lets the Analyzer frame
    SIP over TCP as from the capture, so the calls are the same."""
    receiver, points = HepReceiver(), CapturePoints()
    for pkt in fixture_sip("call_tcp.pcap"):
        assert pkt.transport == "tcp"
        got = receiver.receive(encode(from_packet(pkt, agent_id=1)), "127.0.0.1:9")
        points.feed(got)
    report = points.finish(*received(receiver))
    want = analyze_file(FIXTURES / "call_tcp.pcap")
    assert [(c.call_id, c.final_status, c.messages, c.transport) for c in report.calls] == \
        [(c.call_id, c.final_status, c.messages, c.transport) for c in want.calls]


def test_one_call_id_at_two_agents_is_two_legs():
    packets = fixture_sip("call_ok.pcap")
    receiver, points = HepReceiver(), CapturePoints()
    for pkt in packets:  # the same messages seen by an SBC (agent 10) and a proxy (agent "core-1")
        points.feed(receiver.receive(encode(from_packet(pkt, agent_id=10)), "a"))
        points.feed(receiver.receive(encode(from_packet(pkt, agent_name="core-1")), "b"))
    report = points.finish(*received(receiver))
    calls = [c for c in report.calls if c.kind == "call"]
    assert len(calls) == 2 and calls[0].call_id == calls[1].call_id
    assert sorted(c.capture_point for c in calls) == ["10", "core-1"]
    assert all(c.messages == len(packets) and c.retransmissions == 0 for c in calls)
    assert [c.number for c in calls] == [1, 2]


def test_refused_and_malformed_messages_become_findings_with_their_numbers():
    pkt = fixture_sip("call_ok.pcap")[0]
    receiver, points = HepReceiver(auth_key=b"right"), CapturePoints()
    for data, sender in [(encode(from_packet(pkt, auth_key=b"right")), "a:1"), (b"HEP3\x00\x07x", "b:2"),
                         (encode(from_packet(pkt, auth_key=b"wrong")), "c:3"), (encode(from_packet(pkt)), "c:3")]:
        got = receiver.receive(data, sender)
        if got:
            points.feed(got)
    report = points.finish(*received(receiver))
    found = {f.code: f for f in report.findings}
    assert found["hep.malformed"].frames == [2] and found["hep.malformed"].evidence["senders"] == ["b:2"]
    assert found["hep.auth_refused"].frames == [3, 4] and found["hep.auth_refused"].severity == "error"
    assert receiver.messages == 4 and len(report.calls) == 1
    clean = CapturePoints()
    ok = HepReceiver()
    for p in fixture_sip("calls_mixed.pcap"):
        clean.feed(ok.receive(encode(from_packet(p, agent_id=1))))
    assert not [f for f in clean.finish(*received(ok)).findings if f.code.startswith("hep.")]


def test_payload_types_not_analysed_are_counted():
    receiver = HepReceiver()
    json_rtcp = HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b'{"type":200,"ssrc":1}', protocol_type=5)
    log = HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b"a log line", protocol_type=100)
    raw_rtcp = HepMessage("10.0.0.1", "10.0.0.2", 1, 2, bytes.fromhex("81c90007") + bytes(24), protocol_type=5)
    assert receiver.receive(encode(json_rtcp)) is None and receiver.receive(encode(log)) is None
    assert receiver.receive(encode(raw_rtcp)).payload == raw_rtcp.payload
    assert receiver.skipped == {"HEP RTCP report as JSON (not analysed)": 1,
                                "HEP payload type 100 (not SIP, RTP or RTCP)": 1}


def test_listener_over_tcp_frames_a_stream_and_drops_a_bad_one():
    """HEP over TCP (HOST:PORT listens on both): messages cut across writes arrive whole; a stream
    that is not HEP is closed and counted, the good one still analysed."""
    import socket
    import threading
    import time

    from interop.peers import free_port

    from siptool.capture.hep_listen import HepListener

    packets = fixture_sip("calls_mixed.pcap")
    stream = b"".join(encode(from_packet(p, agent_id=3)) for p in packets)
    points, done = CapturePoints(), threading.Event()
    with HepListener(f"127.0.0.1:{free_port()}") as listener:
        runner = threading.Thread(target=listener.run, args=(points.feed, done.is_set))
        runner.start()
        try:
            with socket.create_connection(listener.address, timeout=10) as good, \
                    socket.create_connection(listener.address, timeout=10) as bad:
                bad.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
                for i in range(0, len(stream), 1000):
                    good.sendall(stream[i:i + 1000])
                deadline = time.monotonic() + 20
                while listener.receiver.messages < len(packets) + 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
        finally:
            done.set()
            runner.join(10)
        report = points.finish(*received(listener.receiver))
    assert listener.receiver.malformed == 1 and listener.receiver.messages == len(packets) + 1
    want = analyze_file(FIXTURES / "calls_mixed.pcap")
    assert [(c.call_id, c.final_status, c.messages) for c in report.calls] == \
        [(c.call_id, c.final_status, c.messages) for c in want.calls]
    assert [f.code for f in report.findings if f.code.startswith("hep.")] == ["hep.malformed"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sender_to_listener(transport):
    """The send driver (for capture --hep) to the receive driver, with an auth key: the same calls."""
    import threading
    import time

    from interop.peers import free_port

    from siptool.capture.hep_listen import HepListener
    from siptool.capture.hep_send import HepSender

    packets = fixture_sip("call_tcp.pcap")
    points, done = CapturePoints(), threading.Event()
    address = f"{transport}:127.0.0.1:{free_port()}"
    with HepListener(address, HepReceiver(b"key")) as listener:
        runner = threading.Thread(target=listener.run, args=(points.feed, done.is_set))
        runner.start()
        try:
            with HepSender(address, agent_name="edge-1", auth_key=b"key") as sender:
                assert all(sender.send(p) for p in packets) and "key" not in repr(sender)
                deadline = time.monotonic() + 20
                while listener.receiver.messages < len(packets) and time.monotonic() < deadline:
                    time.sleep(0.02)
        finally:
            done.set()
            runner.join(10)
        report = points.finish(*received(listener.receiver))
    assert listener.receiver.refused == 0 and {c.capture_point for c in report.calls} == {"edge-1"}
    want = analyze_file(FIXTURES / "call_tcp.pcap")
    assert [(c.call_id, c.final_status, c.messages, c.transport) for c in report.calls] == \
        [(c.call_id, c.final_status, c.messages, c.transport) for c in want.calls]


def test_sender_counts_what_it_cannot_send():
    from interop.peers import free_port

    from siptool.capture.hep_send import HepSender

    with HepSender(f"tcp:127.0.0.1:{free_port()}") as sender:  # nothing listens
        assert sender.send(fixture_sip("call_ok.pcap")[0]) is False
        assert (sender.sent, sender.failed) == (0, 1)


@pytest.mark.parametrize("how", ["unresolvable", "taken"])
def test_a_listener_that_cannot_listen_says_why(how):
    """A host that does not resolve, or a port in use, is one clear error (the listener, half made,
    closes what it opened), never an AttributeError from its close()."""
    import socket

    from siptool.capture.hep_listen import HepListener
    from siptool.errors import SiptoolError

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        address = "no-such-host.invalid:9060" if how == "unresolvable" else f"udp:127.0.0.1:{busy.getsockname()[1]}"
        with pytest.raises(SiptoolError, match="cannot listen for HEP on"):
            HepListener(address)
