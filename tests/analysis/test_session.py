"""The streaming analyser on the project's own captures and on crafted packets."""

from __future__ import annotations

import pytest
from scapy.all import IP, TCP, UDP, Ether, wrpcap
from support import FIXTURES

from siptool.drivers.files import analyze_file

INVITE = (
    "INVITE sip:+15551230000@198.51.100.7 SIP/2.0\r\n"
    "Via: SIP/2.0/{t} 203.0.113.5:{p};branch=z9hG4bK-1\r\n"
    "From: <sip:+15559870000@203.0.113.5>;tag=a1\r\n"
    "To: <sip:+15551230000@198.51.100.7>\r\n"
    "Call-ID: any-port-call\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
RINGING = (
    "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/{t} 203.0.113.5:{p};branch=z9hG4bK-1\r\n"
    "From: <sip:+15559870000@203.0.113.5>;tag=a1\r\nTo: <sip:+15551230000@198.51.100.7>;tag=b2\r\n"
    "Call-ID: any-port-call\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
OK = RINGING.replace("180 Ringing", "200 OK")


def fixture(name):
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"{name} not generated")
    return analyze_file(path)


def test_sip_found_on_any_udp_port(tmp_path):
    pkts = [Ether() / IP(src="203.0.113.5", dst="198.51.100.7") / UDP(sport=40000, dport=7777) / INVITE.format(t="UDP", p=40000),
            Ether() / IP(src="198.51.100.7", dst="203.0.113.5") / UDP(sport=7777, dport=40000) / RINGING.format(t="UDP", p=40000),
            Ether() / IP(src="198.51.100.7", dst="203.0.113.5") / UDP(sport=7777, dport=40000) / OK.format(t="UDP", p=40000)]
    for i, p in enumerate(pkts):
        p.time = 1700000000 + i * 0.25
    wrpcap(str(tmp_path / "p.pcap"), pkts)
    (call,) = analyze_file(tmp_path / "p.pcap").calls
    assert call.final_status == 200 and call.from_user == "+15559870000" and call.to_user == "+15551230000"
    assert call.pdd_ms == pytest.approx(250.0, abs=0.01)
    assert call.answer_ms == pytest.approx(500.0, abs=0.01)
    assert call.state == "answered"  # no BYE in the capture


def test_tcp_messages_split_and_joined_on_any_port(tmp_path):
    invite = INVITE.format(t="TCP", p=40001).encode()
    ringing_ok = (RINGING + OK).format(t="TCP", p=40001).encode()
    c2s = Ether() / IP(src="203.0.113.5", dst="198.51.100.7")
    s2c = Ether() / IP(src="198.51.100.7", dst="203.0.113.5")
    pkts = [c2s / TCP(sport=40001, dport=6060, flags="S", seq=999),
            s2c / TCP(sport=6060, dport=40001, flags="SA", seq=4999, ack=1000),
            c2s / TCP(sport=40001, dport=6060, flags="PA", seq=1000) / invite[:100],
            c2s / TCP(sport=40001, dport=6060, flags="PA", seq=1000) / invite[:100],  # retransmitted
            c2s / TCP(sport=40001, dport=6060, flags="PA", seq=1100) / invite[100:],
            s2c / TCP(sport=6060, dport=40001, flags="PA", seq=5000) / ringing_ok]  # two in one segment
    wrpcap(str(tmp_path / "t.pcap"), pkts)
    report = analyze_file(tmp_path / "t.pcap")
    (call,) = report.calls
    assert [s.label for s in call.ladder] == ["INVITE", "180 Ringing", "200 OK"]
    assert [s.frame for s in call.ladder] == [5, 6, 6]
    assert call.retransmissions == 0 and call.transport == "TCP"


def test_tls_is_counted_not_parsed(tmp_path):
    hello = bytes([0x16, 0x03, 0x01, 0x00, 0x30]) + bytes(48)
    pkts = [Ether() / IP(src="203.0.113.5", dst="198.51.100.7") / TCP(sport=40002, dport=5061, flags="PA", seq=1) / hello]
    wrpcap(str(tmp_path / "tls.pcap"), pkts)
    report = analyze_file(tmp_path / "tls.pcap")
    assert report.calls == [] and report.capture.tls_packets == 1
    assert [f.code for f in report.findings] == ["sip.tls"]


def test_http_on_sip_port_is_not_sip(tmp_path):
    http = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" * 300
    pkts = [Ether() / IP(src="203.0.113.5", dst="198.51.100.7") / TCP(sport=40003, dport=5060, flags="PA", seq=1) / http]
    wrpcap(str(tmp_path / "http.pcap"), pkts)
    report = analyze_file(tmp_path / "http.pcap")
    assert report.calls == [] and report.capture.sip_packets == 0


def test_mixed_fixture_calls_and_metrics():
    report = fixture("calls_mixed.pcap")
    finals = [c.final_status for c in report.calls]
    assert finals.count(200) == 5 and finals.count(486) == 2 and finals.count(503) == 1
    m = report.metrics
    assert (m.calls, m.answered, m.failed) == (8, 5, 3)
    assert m.answer_seizure_ratio == 62.5 and m.session_establishment_ratio == 62.5
    assert m.session_establishment_effectiveness_ratio == 87.5  # 5 answered + 2 busy (486) of 8
    assert m.ineffective_session_attempts == 12.5  # the 503
    assert m.final_codes == {"200": 5, "486": 2, "503": 1}
    retry = [f for c in report.calls for f in c.findings if f.code == "sip.failed.503"]
    assert retry and retry[0].evidence["retry_after"]
    for call in report.calls:
        assert call.pdd_ms is not None and 0 < call.pdd_ms < 1000
        if call.final_status == 200:
            assert call.state == "completed" and call.ended_by == "caller" and call.duration_s > 0


def test_cancel_fixture():
    (call,) = fixture("cancel_487.pcap").calls
    assert call.final_status == 487 and call.state == "cancelled"
    assert call.requests == {"INVITE": 1, "CANCEL": 1, "ACK": 1}


def test_auth_fixture_is_one_attempt():
    report = fixture("auth_401.pcap")
    (call,) = report.calls
    assert call.auth_challenges == 1 and call.final_status == 200 and call.requests["INVITE"] == 2
    assert report.metrics.answer_seizure_ratio == 100.0
    assert not [f for f in call.findings if f.severity in ("error", "critical")]


def test_fragmented_invite_is_reassembled():
    report = fixture("frag_udp.pcap")
    (call,) = report.calls
    invite = call.ladder[0]
    assert invite.label == "INVITE" and invite.sdp
    assert report.capture.skipped.get("IP fragment (held for reassembly)", 0) >= 1
    assert "ip.fragments_incomplete" not in [f.code for f in report.findings]  # every fragment arrived
    # a 3.6 kB INVITE over UDP breaks RFC 3261 18.1.1: one finding with the fragments' frames
    (big,) = [f for f in call.findings if f.code == "sip.udp_too_large"]
    assert big.severity == "warning" and big.frames == [1, 2, 3] and big.evidence["fragmented"] == 1


def test_tcp_fixture_two_calls():
    report = fixture("call_tcp.pcap")
    assert len(report.calls) == 2
    assert all(c.transport == "TCP" and c.final_status == 200 and c.state == "completed" for c in report.calls)


A, B = "203.0.113.5", "198.51.100.7"


def _sip(first: str, cseq: str, to_tag: str = "", body: str = "") -> str:
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return (f"{first}\r\nVia: SIP/2.0/UDP {A}:5060;branch=z9hG4bK-{cseq.replace(' ', '')}\r\n"
            f"From: <sip:alice@{A}>;tag=a1\r\nTo: <sip:bob@{B}>{to_tag}\r\nCall-ID: offer-answer-1\r\n"
            f"CSeq: {cseq}\r\n{ctype}Content-Length: {len(body)}\r\n\r\n{body}")


def _sdp(ip: str, port: int) -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def _rtp(src, sport, dst, dport, seq, ssrc, t):
    import struct

    pkt = (Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)
           / (struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + b"\xff" * 160))
    pkt.time = t
    return pkt


def test_offer_in_200_answer_in_ack_then_update_moves_media(tmp_path):
    """RFC 3264 roles: an INVITE without SDP gets the offer in its 200 and the answer in the ACK (late
    offer); an UPDATE later moves the caller's media to another port. Every stream is found from SDP,
    on the addresses in force when it flowed."""
    t0 = 1700000000.0
    sig = [
        (A, B, _sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE")),
        (B, A, _sip("SIP/2.0 200 OK", "1 INVITE", ";tag=b2", _sdp(B, 30000))),  # the offer
        (A, B, _sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", ";tag=b2", _sdp(A, 20000))),  # the answer
    ]
    pkts = []
    for i, (src, dst, text) in enumerate(sig):
        p = Ether() / IP(src=src, dst=dst) / UDP(sport=5060, dport=5060) / text
        p.time = t0 + i * 0.01
        pkts.append(p)
    t = t0 + 0.1
    for k in range(50):  # 1 s each way on the first ports
        pkts += [_rtp(A, 20000, B, 30000, k, 0xA, t + k * 0.02), _rtp(B, 30000, A, 20000, k, 0xB, t + k * 0.02 + 0.001)]
    t += 1.0
    update = [(A, B, _sip(f"UPDATE sip:bob@{B} SIP/2.0", "2 UPDATE", ";tag=b2", _sdp(A, 22000))),
              (B, A, _sip("SIP/2.0 200 OK", "2 UPDATE", ";tag=b2", _sdp(B, 30000)))]
    for i, (src, dst, text) in enumerate(update):
        p = Ether() / IP(src=src, dst=dst) / UDP(sport=5060, dport=5060) / text
        p.time = t + i * 0.01
        pkts.append(p)
    t += 0.05
    for k in range(50, 100):  # the caller's media now on 22000
        pkts += [_rtp(A, 22000, B, 30000, k, 0xA, t + (k - 50) * 0.02),
                 _rtp(B, 30000, A, 22000, k, 0xB, t + (k - 50) * 0.02 + 0.001)]
    bye = Ether() / IP(src=A, dst=B) / UDP(sport=5060, dport=5060) / _sip(f"BYE sip:bob@{B} SIP/2.0", "3 BYE", ";tag=b2")
    bye.time = t + 1.1
    pkts.append(bye)
    wrpcap(str(tmp_path / "oa.pcap"), pkts)

    report = analyze_file(tmp_path / "oa.pcap")
    (call,) = report.calls
    assert report.streams == []  # nothing left over as a stream without a call
    got = sorted((s.src, s.dst, s.packets, s.from_sdp) for s in call.streams)
    assert got == [(f"{B}:30000", f"{A}:20000", 50, True), (f"{B}:30000", f"{A}:22000", 50, True),
                   (f"{A}:20000", f"{B}:30000", 50, True), (f"{A}:22000", f"{B}:30000", 50, True)]
    assert not [f for f in report.all_findings() if f.severity in ("critical", "error", "warning")]
