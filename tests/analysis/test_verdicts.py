"""A verdict needs its evidence (issue 13): each class of false or missing verdict found on real
captures, tested on crafted captures of the class and on the real capture where it was found."""

from __future__ import annotations

import pytest
from crafted import A, B, rtp, sdp, sip, udp, write
from support import SHARED

from siptool.analysis.addresses import address_kind
from siptool.drivers.files import analyze_file

T0 = 1700000000.0
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/pcaps is not present")


def codes(report):
    return sorted(f.code for f in report.all_findings())


def answered_call(extra=(), ok_times=(0.10,), ack_at=0.11, invite=True, end=None):
    """INVITE / 200 OK (at each of ok_times) / ACK (unless ack_at is None), then `extra` packets."""
    pkts = []
    if invite:
        pkts.append(udp(A, B, sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE"), T0))
    for t in ok_times:
        pkts.append(udp(B, A, sip("SIP/2.0 200 OK", "1 INVITE", to_tag=";tag=b2", src=A), T0 + t))
    if ack_at is not None:
        pkts.append(udp(A, B, sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", to_tag=";tag=b2", branch="z9hG4bK-ack"),
                        T0 + ack_at))
    pkts += list(extra)
    if end is not None:  # a last packet that is not SIP: where the capture ends
        pkts.append(udp("192.0.2.1", "192.0.2.2", b"\x00" * 20, T0 + end, 9, 9))
    return pkts


def test_ack_counts_when_the_invite_was_not_captured(tmp_path):
    report = analyze_file(write(tmp_path / "x.pcap", answered_call(invite=False, end=40.0)))
    (call,) = report.calls
    assert not call.ack_missing and "sip.ack_missing" not in codes(report)
    assert call.pdd_ms is None and call.answer_ms is None  # nothing to measure them from


def test_capture_ending_before_the_ack_was_due_gives_no_verdict(tmp_path):
    report = analyze_file(write(tmp_path / "x.pcap", answered_call(ack_at=None, ok_times=(0.100,), end=0.101)))
    (call,) = report.calls
    assert not call.ack_missing and report.metrics.dropped == 0
    (note,) = [f for f in report.all_findings() if f.code == "capture.ended_before_ack"]
    assert note.severity == "info" and "1.0 ms after the 200 OK" in note.title


def test_re_sent_200_without_ack_is_an_error(tmp_path):
    report = analyze_file(write(tmp_path / "x.pcap", answered_call(ack_at=None, ok_times=(0.1, 0.6, 1.6, 3.6))))
    (finding,) = [f for f in report.all_findings() if f.code == "sip.ack_missing"]
    assert finding.severity == "error" and finding.evidence["ok_retransmissions"] == 3
    assert report.metrics.dropped == 1


def test_no_ack_seen_but_not_re_sent_is_a_warning(tmp_path):
    report = analyze_file(write(tmp_path / "x.pcap", answered_call(ack_at=None, end=10.0)))
    (finding,) = [f for f in report.all_findings() if f.code == "sip.ack_missing"]
    assert finding.severity == "warning" and "path this capture point does not see" in finding.explanation
    assert report.metrics.dropped == 0


def test_invite_without_response_needs_time_or_a_retransmission(tmp_path):
    inv = sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE")
    early = analyze_file(write(tmp_path / "a.pcap", [udp(A, B, inv, T0), udp("192.0.2.1", "192.0.2.2", b"x" * 20,
                                                                             T0 + 0.01, 9, 9)]))
    assert codes(early) == ["capture.ended_before_response"]
    resent = analyze_file(write(tmp_path / "b.pcap", [udp(A, B, inv, T0), udp(A, B, inv, T0 + 0.01)]))
    assert codes(resent) == ["sip.no_response"]
    waited = analyze_file(write(tmp_path / "c.pcap", [udp(A, B, inv, T0), udp("192.0.2.1", "192.0.2.2", b"x" * 20,
                                                                              T0 + 2.0, 9, 9)]))
    assert codes(waited) == ["sip.no_response"]


@needs_shared
def test_real_captures_of_the_ack_class():
    frag = analyze_file(SHARED / "pkts_fragmented_udp_sip.pcap")  # INVITE lost in fragments, ACK in frame 4
    (call,) = frag.calls
    assert "sip.ack_missing" not in codes(frag) and call.pdd_ms is None
    early = analyze_file(SHARED / "zeek_invalid-content-length.pcap")  # capture ends 1 ms after the 200
    assert "sip.ack_missing" not in codes(early) and "capture.ended_before_ack" in codes(early)


def test_register_and_invite_on_one_call_id_are_kept_apart(tmp_path):
    reg = sip(f"REGISTER sip:{B} SIP/2.0", "1 REGISTER", call_id="shared").replace(f"To: <sip:bob@{B}>",
                                                                                    f"To: <sip:alice@{A}>")
    reg_ok = reg.replace(f"REGISTER sip:{B} SIP/2.0", "SIP/2.0 200 OK").replace(f"<sip:alice@{A}>\r\nCall",
                                                                               f"<sip:alice@{A}>;tag=r\r\nCall")
    pkts = [udp(A, B, reg, T0), udp(B, A, reg_ok, T0 + 0.01),
            udp(A, B, sip(f"INVITE sip:bob@{B} SIP/2.0", "2 INVITE", call_id="shared"), T0 + 0.1),
            udp(B, A, sip("SIP/2.0 403 Forbidden", "2 INVITE", call_id="shared", to_tag=";tag=x"), T0 + 0.11)]
    report = analyze_file(write(tmp_path / "x.pcap", pkts))
    call, register = sorted(report.calls, key=lambda c: c.number)
    assert (call.kind, call.number, call.method, call.to_user, call.final_status) == ("call", 1, "INVITE", "bob", 403)
    assert (register.kind, register.number, register.to_user, register.final_status) == ("register", 2, "alice", 200)
    assert call.messages + register.messages == 4 and call.call_id == register.call_id == "shared"
    assert [f.call for f in call.findings] == [1]


@needs_shared
def test_sipp_branch_scenario_shows_the_invites_parties_and_groups_the_403s():
    report = analyze_file(SHARED / "sipnab_sipp-branch-scenario.pcapng")
    invites = [c for c in report.calls if c.kind == "call"]
    assert len(invites) == 1334 and all(c.to_user == "ua2" and c.method == "INVITE" for c in invites)
    (group,) = [g for g in report.finding_groups if g.code == "sip.failed.403"]
    assert group.count == 1148 and len(group.calls) == 1148 and group.title == "Call failed: 403 Error"


def test_repeated_findings_are_one_group_with_their_calls(tmp_path):
    pkts = []
    for n in range(5):
        cid = f"busy-{n}"
        pkts += [udp(A, B, sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE", call_id=cid), T0 + n),
                 udp(B, A, sip("SIP/2.0 486 Busy Here", "1 INVITE", call_id=cid, to_tag=";tag=b"), T0 + n + 0.01)]
    report = analyze_file(write(tmp_path / "x.pcap", pkts))
    (group,) = report.finding_groups
    assert (group.code, group.count, group.calls) == ("sip.failed.486", 5, [1, 2, 3, 4, 5])
    assert sum(len(c.findings) for c in report.calls) == 5  # each call keeps its own


def test_clock_jumps_withhold_times_that_cannot_be_true(tmp_path):
    pkts = [udp(A, B, sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE"), T0),
            udp(B, A, sip("SIP/2.0 200 OK", "1 INVITE", to_tag=";tag=b2"), T0 + 5 * 365 * 86400),  # years later
            udp(A, B, sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", to_tag=";tag=b2", branch="z9hG4bK-a"), T0 - 100)]
    report = analyze_file(write(tmp_path / "x.pcap", pkts))
    (call,) = report.calls
    assert call.pdd_ms is None and call.answer_ms is None and call.duration_s is None
    (jump,) = [f for f in report.findings if f.code == "capture.clock_jump"]
    assert jump.evidence["jumps"] == 2 and jump.frames == [2, 3] and jump.evidence["calls_withheld"] == [1]
    assert "5.0 years" in jump.title
    # a steady clock: nothing to say
    steady = analyze_file(write(tmp_path / "y.pcap", answered_call(end=2.0)))
    assert "capture.clock_jump" not in codes(steady) and steady.calls[0].pdd_ms is not None


@needs_shared
def test_hep_capture_with_a_broken_clock():
    report = analyze_file(SHARED / "heplify_sip_ipv6_udp.pcap")
    (call,) = report.calls
    assert call.pdd_ms is None and call.duration_s is None
    assert "capture.clock_jump" in codes(report)


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_request_too_large_for_udp(tmp_path, transport):
    """RFC 3261 18.1.1: over 1300 bytes must not go over UDP. An IP-fragmented INVITE that got no answer
    is an error; the same INVITE over TCP is fine."""
    from crafted import tcp
    from scapy.all import fragment

    body = sdp(A, 4000, " ".join(str(96 + i) for i in range(30)),
               "".join(f"a=rtpmap:{96 + i} codec{i}/8000\r\na=fmtp:{96 + i} mode=long-parameter-{i}\r\n"
                       for i in range(30)))
    invite = sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE", body=body)
    assert len(invite) > 2000
    if transport == "UDP":
        whole = udp(A, B, invite, T0)
        pkts = fragment(whole, fragsize=1400)
        for p in pkts:
            p.time = T0
        pkts.append(udp(A, B, b"\x00" * 20, T0 + 3, 9, 9))
    else:
        pkts = [tcp(A, B, invite, T0, seq=1, flags="PA"), tcp(A, B, b"", T0 + 3, seq=1 + len(invite), flags="A")]
    report = analyze_file(write(tmp_path / "big.pcap", pkts))
    big = [f for f in report.all_findings() if f.code == "sip.udp_too_large"]
    if transport == "TCP":
        assert big == []
        return
    (finding,) = big
    assert finding.severity == "error" and "IP-fragmented" in finding.title and len(finding.frames) == 2
    assert "TCP" in finding.fix and finding.evidence["bytes"] == len(invite)


def test_stream_outside_any_call_is_judged(tmp_path):
    """RTP that no SDP in the capture announced (a relay's leg, a filtered capture) still gets its
    loss verdict, saying no SDP was found."""
    pkts = [rtp("192.0.2.10", 30000, "192.0.2.20", 40000, seq, 0x99, T0 + seq * 0.02)
            for seq in range(200) if seq % 3]
    report = analyze_file(write(tmp_path / "x.pcap", pkts))
    (stream,) = report.streams
    (loss,) = [f for f in report.findings if f.code == "media.loss"]
    assert loss.severity == "error" and "no SDP" in loss.title and loss.call is None
    assert stream.mos is not None and stream.media == "audio"


def test_mos_is_for_audio_only(tmp_path):
    """A DTMF-only stream (telephone-event) and a video stream get no MOS and no audio verdicts."""
    offer = sdp(A, 4000, "101", "a=rtpmap:101 telephone-event/8000\r\n") + "m=video 4002 RTP/AVP 34\r\n"
    answer = sdp(B, 5000, "101", "a=rtpmap:101 telephone-event/8000\r\n") + "m=video 5002 RTP/AVP 34\r\n"
    pkts = [udp(A, B, sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE", body=offer), T0),
            udp(B, A, sip("SIP/2.0 200 OK", "1 INVITE", to_tag=";tag=b", body=answer), T0 + 0.1),
            udp(A, B, sip(f"ACK sip:bob@{B} SIP/2.0", "1 ACK", to_tag=";tag=b", branch="z9hG4bK-a"), T0 + 0.11)]
    for k in range(100):
        t = T0 + 0.2 + k * 0.05
        pkts.append(rtp(A, 4000, B, 5000, k, 0x1, t, pt=101, ts=8000 * (k // 10),
                        payload=bytes([k % 10, 0x0A, 0, 160])))
        pkts.append(rtp(A, 4002, B, 5002, k, 0x2, t, pt=34, ts=90000 * k // 20, payload=b"\x00" * 300))
        if k % 7:  # the video loses a seventh of its packets: still no audio verdict on it
            pkts.append(rtp(B, 5002, A, 4002, k, 0x3, t, pt=34, ts=90000 * k // 20, payload=b"\x00" * 300))
    report = analyze_file(write(tmp_path / "x.pcap", pkts))
    (call,) = report.calls
    kinds = sorted((s.media, s.mos) for s in call.streams)
    assert kinds == [("event", None), ("video", None), ("video", None)]
    assert not [f for f in call.findings if f.code in ("media.mos", "media.loss", "media.jitter")]


@needs_shared
def test_video_over_rtp_has_no_mos():
    report = analyze_file(SHARED / "wsc_h263-over-rtp.pcap")
    (stream,) = [s for c in report.calls for s in c.streams]
    assert stream.media == "video" and stream.mos is None


@pytest.mark.parametrize("ip, kind", [
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("100.64.1.1", "cgnat"), ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("127.0.0.2", "loopback"),
    ("203.0.113.7", "public"), ("198.51.100.1", "public"), ("192.0.2.1", "public"), ("2001:db8::1", "public"),
    ("8.8.8.8", "public"), ("::ffff:10.0.0.1", "private"), ("0.0.0.0", "unspecified"), ("239.1.1.1", "multicast"),
    ("not-an-ip", "unknown")])
def test_address_kinds(ip, kind):
    """Documentation ranges stand for public hosts (labs and the NAT fixture use them); only the
    ranges the Internet cannot route are private."""
    assert address_kind(ip) == kind


@needs_shared
def test_proxy_capture_sides_and_all_lan_wording():
    """wsc_SIP_DTMF2: both phones behind one proxy on a LAN. Sides come from the tags, so the caller's
    SDP (sent twice, once by the proxy) is the caller's; the one-way finding blames no private address."""
    report = analyze_file(SHARED / "wsc_SIP_DTMF2.cap")
    call = next(c for c in report.calls if c.kind == "call" and c.answer is not None)
    assert {(e.frame, e.side) for e in call.sdp} == {(20, "callee"), (21, "callee"), (22, "caller"), (23, "caller")}
    (one_way,) = [f for f in call.findings if f.code == "media.one_way"]
    assert one_way.evidence["hears_nothing"] == "caller" and one_way.evidence["sdp_said"] == "192.168.105.110:4374"
    assert one_way.evidence["cause"] == "not_sent" and "private" not in one_way.explanation
