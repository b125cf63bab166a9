"""Media diagnosis on the project's real captures: each problem is found, clean calls stay quiet."""

from __future__ import annotations

import json

import pytest
from support import FIXTURES

from siptool.drivers.files import analyze_file


def report_of(name):
    return analyze_file(FIXTURES / name)


def codes(report, severities=("critical", "error", "warning")):
    return sorted(f.code for f in report.all_findings() if f.severity in severities)


def test_clean_call_has_no_warnings():
    report = report_of("media_ok.pcap")
    assert codes(report, ("critical", "error", "warning", "info")) == []
    (call,) = report.calls
    assert [s.codec for s in call.streams] == ["PCMU", "PCMU"]
    assert {s.call_id for s in call.streams} == {call.call_id}


def test_one_way_audio_names_the_silent_side():
    report = report_of("media_oneway.pcap")
    assert codes(report) == ["media.one_way"]
    (finding,) = report.all_findings()
    (call,) = report.calls
    (stream,) = call.streams
    assert finding.evidence["missing_from"] == "callee"
    assert finding.evidence["flowing"] == f"{stream.src} -> {stream.dst}"
    assert stream.first_frame in finding.frames and finding.fix


def test_nat_sdp_address_is_explained():
    report = report_of("media_nat_sdp.pcap")
    assert codes(report) == ["nat.rtp_source"]
    (finding,) = report.all_findings()
    assert finding.evidence["sdp_said"].startswith("192.168.1.10:")
    assert "private address" in finding.explanation and "behind NAT" in finding.explanation


def test_488_is_a_codec_problem():
    report = report_of("reject_488.pcap")
    assert codes(report) == ["codec.no_common", "sip.failed.488"]
    (call,) = report.calls
    assert call.streams == []
    no_common = next(f for f in report.all_findings() if f.code == "codec.no_common")
    assert no_common.evidence["offered"] == ["18 G729/8000"]


def test_impaired_leg_matches_what_the_relay_did():
    log = json.loads((FIXTURES / "media_impaired.relay.json").read_text())["summary"]
    report = report_of("media_impaired.pcap")
    streams = [s for c in report.calls for s in c.streams] + report.streams
    impaired = [s for s in streams if s.lost]
    assert impaired, "the relay dropped packets; some stream must show loss"
    for s in impaired:
        # tshark-style lost = expected - received, where duplicates count as received
        assert s.lost + s.duplicates == log["dropped"]
        assert s.duplicates == log["duplicated"]
        assert s.out_of_order >= 1
        assert s.mos < 4.41
    assert "media.loss" in codes(report)
    clean = [s for s in streams if not s.lost and not s.duplicates]
    assert clean and all(s.mos == pytest.approx(4.41, abs=0.01) for s in clean)


def test_signalling_only_capture_says_media_was_not_captured():
    report = report_of("call_ok.pcap")
    assert codes(report) == []
    assert [f.code for f in report.findings] == ["capture.no_media"]


def test_rtcp_round_trip_and_no_junk_streams(shared_pcaps):
    # FreePBX call with RTCP: round trips from SR/RR pairs; LLMNR/SSDP chatter is not taken for RTP.
    report = analyze_file(shared_pcaps / "voipshark_SIP-RTP-Normal_Call_two_parties.pcap")
    assert report.streams == []
    streams = [s for c in report.calls for s in c.streams]
    assert len(streams) == 4
    with_rtt = [s for s in streams if s.rtcp_rtt_ms is not None]
    assert with_rtt and all(0 < s.rtcp_rtt_ms < 50 for s in with_rtt)
    assert all(s.rtcp_loss_pct == 0.0 for s in with_rtt)
    # the B2BUA's callee leg answered with a private SDP address behind 192.168.20.1
    nat = [f for f in report.all_findings() if f.code == "nat.rtp_source"]
    assert len(nat) == 1 and nat[0].evidence["sdp_said"] == "192.168.5.151:4000"


def test_video_stream_is_not_judged_by_audio_rules(shared_pcaps):
    report = analyze_file(shared_pcaps / "wsc_h263-over-rtp.pcap")
    assert [f.code for f in report.all_findings() if f.severity != "info"] == []


def test_private_contact_from_public_source():
    from siptool.analysis.media_rules import sip_header_nat
    from siptool.report.model import Call
    from siptool.sip.dialogs import Hop
    from siptool.sip.message import parse

    raw = (b"INVITE sip:bob@185.12.64.3 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\n"
           b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: x1\r\nCSeq: 1 INVITE\r\n"
           b"Contact: <sip:a@10.0.0.5:5060>\r\nContent-Length: 0\r\n\r\n")
    call = Call(call_id="x1", kind="call", method="INVITE")
    public = Hop(7, 1.0, "192.0.32.10", 40000, "185.12.64.3", 5060, "UDP")
    finding = sip_header_nat(parse(raw), public, call)
    assert finding.code == "nat.private_contact" and finding.frames == [7]
    assert finding.evidence == {"header": "Contact", "address": "10.0.0.5", "source": "192.0.32.10:40000"}
    inside = Hop(7, 1.0, "10.0.0.5", 5060, "185.12.64.3", 5060, "UDP")
    assert sip_header_nat(parse(raw), inside, call) is None  # no NAT between: nothing to say


def test_private_contact_in_real_capture(shared_pcaps):
    report = analyze_file(shared_pcaps / "suricata_sip_compact_form.pcap")
    (finding,) = [f for f in report.all_findings() if f.code == "nat.private_contact"]
    assert finding.evidence["address"] == "192.168.1.2"


def test_call_dropped_after_30_seconds():
    from siptool.analysis.context import Context
    from siptool.analysis.judge import judge_call
    from siptool.report.model import Call, LadderStep

    bye = LadderStep(frame=40, time=131.0, src="b:5060", dst="a:5060", transport="UDP", label="BYE",
                     method="BYE", status=None, cseq=2)
    call = Call(call_id="d1", kind="call", method="INVITE", answer=100.0, end=131.0, duration_s=31.0,
                ended_by="callee", end_reason="BYE from callee", final_status=200, ladder=[bye])
    (finding,) = [f for f in judge_call(call, Context()) if f.code == "sip.dropped_30s"]
    assert finding.frames == [40] and "32 s" in finding.explanation
    call.duration_s = 95.0
    assert not [f for f in judge_call(call, Context()) if f.code == "sip.dropped_30s"]


def test_bundled_example_shows_each_problem_once():
    # fixtures/pcaps/example.pcap = several captures merged; ports are re-used from call to call, so
    # this also checks that RTP is attributed by the SDP in force (not to the first call on the port).
    report = report_of("example.pcap")
    assert sorted(c.final_status for c in report.calls) == [200, 200, 200, 200, 486, 487, 488]
    # media.loss three times: the callee's leg of the impaired call, and the relay's two legs, which no
    # SDP in the capture names (judged as streams outside any call)
    assert codes(report) == ["codec.no_common", "media.loss", "media.loss", "media.loss", "media.one_way",
                             "nat.rtp_source", "sip.failed.488"]
    outside = [f for f in report.findings if f.code == "media.loss"]
    assert len(outside) == 2 and all("no SDP" in f.title and f.call is None for f in outside)
    packets = {c.call_id.split("@")[0]: sorted(s.packets for s in c.streams) for c in report.calls}
    assert packets["1-media_ok"] == [200, 200] and packets["1-media_oneway"] == [200]
    assert packets["1-media_impaired"] == [196, 200]


def _call_with_sdp(caller_sdp, callee_sdp, streams, caller="203.0.113.1:5060", callee="198.51.100.7:5060"):
    from siptool.report.model import Call, SdpEntry

    sdp = [SdpEntry(frame=1, time=1.0, sender=caller, message="INVITE", role="offer", media="audio",
                    address=caller_sdp[0], port=caller_sdp[1], side="caller"),
           SdpEntry(frame=3, time=1.1, sender=callee, message="200 OK", role="answer", media="audio",
                    address=callee_sdp[0], port=callee_sdp[1], side="callee")]
    return Call(call_id="n1", kind="call", method="INVITE", caller=caller, callee=callee, answer=1.1,
                end=11.1, duration_s=10.0, sdp=sdp, streams=streams)


def test_rtp_to_private_address_that_never_answers():
    """Outside a NAT: the caller offered its private address; the callee's RTP goes there, nothing comes
    from it, and the caller's own RTP arrives from its NAT. The caller hears nothing: an error that
    names it, with the NAT evidence."""
    from siptool.analysis.context import Context
    from siptool.analysis.judge import judge_call
    from siptool.report.model import Stream

    out = Stream(ssrc=1, src="198.51.100.7:30000", dst="192.168.1.20:4000", payload_type=0, codec="PCMU",
                 packets=250, first_frame=12, from_sdp=True)
    up = Stream(ssrc=2, src="203.0.113.1:61000", dst="198.51.100.7:30000", payload_type=0, codec="PCMU",
                packets=250, first_frame=11, from_sdp=True)
    call = _call_with_sdp(("192.168.1.20", 4000), ("198.51.100.7", 30000), [up, out])
    found = {f.code: f for f in judge_call(call, Context(capture_end=12.0))}
    one_way = found["media.one_way"]
    assert one_way.severity == "error" and "the caller hears nothing" in one_way.title
    assert one_way.evidence["cause"] == "nat" and one_way.evidence["sent_to"] == "192.168.1.20:4000"
    assert one_way.evidence["media_from"] == "203.0.113.1:61000" and one_way.frames[0] == 12
    assert "latch" in one_way.fix
    assert found["nat.rtp_source"].evidence == {"rtp_source": "203.0.113.1:61000", "sdp_said": "192.168.1.20:4000"}
    # the callee latches (sends to where the caller's RTP comes from): both hear each other
    out.dst = "203.0.113.1:61000"
    assert "media.one_way" not in {f.code for f in judge_call(call, Context(capture_end=12.0))}


def test_all_lan_one_way_does_not_blame_nat():
    """Inside one LAN nothing is behind NAT: the finding states what flowed, without a private-address cause."""
    from siptool.analysis.context import Context
    from siptool.analysis.judge import judge_call
    from siptool.report.model import Stream

    up = Stream(ssrc=2, src="192.168.5.10:4000", dst="192.168.5.20:5000", payload_type=0, codec="PCMU",
                packets=250, first_frame=11, from_sdp=True)
    call = _call_with_sdp(("192.168.5.10", 4000), ("192.168.5.20", 5000), [up],
                          caller="192.168.5.10:5060", callee="192.168.5.20:5060")
    (one_way,) = [f for f in judge_call(call, Context(capture_end=12.0)) if f.code == "media.one_way"]
    assert one_way.evidence["cause"] == "not_sent" and one_way.evidence["hears_nothing"] == "caller"
    assert "private" not in one_way.explanation and "192.168.5.10:4000" in one_way.explanation
    # a capture that covers only 0.5 s of the answered call says nothing about media
    call.end, call.duration_s = 1.6, 0.5
    assert not [f for f in judge_call(call, Context(capture_end=1.6)) if f.code.startswith("media.")]


def _xr_voip_metrics(sender: int, about: int) -> bytes:
    """RTCP XR (RFC 3611) with one VoIP Metrics block: loss 5/256, discard 13/256, RTT 42 ms, end system
    delay 60 ms, R 88, MOS-LQ 4.1, MOS-CQ 4.0, jitter buffer 40 ms nominal / 80 ms max."""
    import struct

    block = struct.pack("!BBH", 7, 0, 8) + struct.pack(
        "!IBBBBHHHHbbBBBBBBBBHHH", about, 5, 13, 0, 0, 0, 0, 42, 60, 127, 127, 127, 16, 88, 127, 41, 40,
        0, 0, 40, 80, 120)
    body = struct.pack("!I", sender) + block
    return struct.pack("!BBH", 0x80, 207, (4 + len(body)) // 4 - 1) + body


def test_rtcp_xr_voip_metrics_agree_with_tshark(tmp_path):
    """An XR VoIP Metrics report about the caller's stream, sent on the RTCP port (RTP + 1) by its
    receiver: siptool reports the receiver's figures on that stream, as tshark decodes them, and takes
    the round trip into the MOS (one-way delay = RTT / 2, since no SR/RR measured one)."""
    import subprocess

    from scapy.all import IP, UDP, Ether, Raw, rdpcap, wrpcap

    from support import require_binary

    base = report_of("media_ok.pcap")
    (call,) = base.calls
    fwd = next(s for s in call.streams if s.src.endswith(":6000") and s.src.startswith("127.0.0.1"))
    frames = list(rdpcap(str(FIXTURES / "media_ok.pcap")))
    xr = (Ether() / IP(src="127.0.0.2", dst="127.0.0.1") / UDP(sport=6001, dport=6001)
          / Raw(_xr_voip_metrics(0x5E6F7A8B, fwd.ssrc)))
    at = max(i for i, p in enumerate(frames) if UDP in p and p[UDP].dport == 6000 and p[IP].dst == "127.0.0.2")
    xr.time = frames[at].time
    frames.insert(at + 1, xr)
    out = tmp_path / "xr.pcap"
    wrpcap(str(out), frames)

    report = analyze_file(out)
    (call,) = report.calls
    stream = next(s for s in call.streams if s.ssrc == fwd.ssrc and s.src == fwd.src)
    x = stream.rtcp_xr
    assert x is not None and x.reports == 1
    assert (x.loss_pct, x.discard_pct) == (round(5 * 100 / 256, 2), round(13 * 100 / 256, 2))
    assert (x.round_trip_ms, x.end_system_delay_ms, x.r_factor, x.mos_lq, x.mos_cq) == (42, 60, 88, 4.1, 4.0)
    assert (x.jitter_buffer_nominal_ms, x.jitter_buffer_max_ms) == (40, 80)
    assert stream.mos is not None and stream.mos < fwd.mos  # 21 ms one-way delay now counted
    other = next(s for s in call.streams if s is not stream)
    assert other.rtcp_xr is None
    # the receiver saw loss (1.95%) and discards (5.08%) that the capture point did not
    found = {f.code: f for f in report.all_findings()}
    assert set(found) == {"media.loss_downstream", "media.jitter_buffer_discards"}
    assert found["media.loss_downstream"].evidence == {"reported_loss_pct": 1.95, "captured_loss_pct": 0.0}
    assert found["media.jitter_buffer_discards"].evidence["discard_pct"] == 5.08

    require_binary("tshark")
    fields = ["rtcp.xr.voipmetrics.rtdelay", "rtcp.xr.voipmetrics.esdelay", "rtcp.xr.voipmetrics.rfactor",
              "rtcp.xr.voipmetrics.moslq", "rtcp.xr.voipmetrics.moscq", "rtcp.xr.voipmetrics.jbnominal",
              "rtcp.xr.voipmetrics.jbmax", "rtcp.ssrc.fraction", "rtcp.ssrc.discarded"]
    cmd = ["tshark", "-r", str(out), "-d", "udp.port==6001,rtcp", "-Y", "rtcp.xr.bt == 7", "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    (line,) = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    got = dict(zip(fields, line.split("\t")))
    assert got["rtcp.xr.voipmetrics.rtdelay"] == str(x.round_trip_ms)
    assert got["rtcp.xr.voipmetrics.esdelay"] == str(x.end_system_delay_ms)
    assert got["rtcp.xr.voipmetrics.rfactor"] == str(x.r_factor)
    assert float(got["rtcp.xr.voipmetrics.moslq"]) == x.mos_lq
    assert float(got["rtcp.xr.voipmetrics.moscq"]) == x.mos_cq
    assert got["rtcp.xr.voipmetrics.jbnominal"] == str(x.jitter_buffer_nominal_ms)
    assert got["rtcp.xr.voipmetrics.jbmax"] == str(x.jitter_buffer_max_ms)
    assert round(int(got["rtcp.ssrc.fraction"]) * 100 / 256, 2) == x.loss_pct  # tshark: the raw x/256
    assert round(int(got["rtcp.ssrc.discarded"]) * 100 / 256, 2) == x.discard_pct


def _rr(sender: int, about: int, fraction: int, cumulative: int) -> bytes:
    """RTCP RR (RFC 3550 6.4.2) with one report block."""
    import struct

    block = struct.pack("!IIIIII", about, (fraction << 24) | (cumulative & 0xFFFFFF), 0x10000, 0, 0, 0)
    body = struct.pack("!I", sender) + block
    return struct.pack("!BBH", 0x81, 201, (4 + len(body)) // 4 - 1) + body


@pytest.mark.parametrize("fraction, cumulative, expect", [
    (0, 10, True),  # 10 of 200 packets (5 %) lost after the capture point
    (40, 1, False),  # a 15.6 % interval fraction, but 1 packet in all: below the 1 % threshold
])
def test_receiver_report_loss_downstream(tmp_path, fraction, cumulative, expect):
    from scapy.all import IP, UDP, Ether, Raw, rdpcap, wrpcap

    frames = list(rdpcap(str(FIXTURES / "media_ok.pcap")))
    ssrc = 0x1A2B3C4D  # the caller's stream 127.0.0.1:6000 -> 127.0.0.2:6000
    rr = Ether() / IP(src="127.0.0.2", dst="127.0.0.1") / UDP(sport=6001, dport=6001) / Raw(_rr(7, ssrc, fraction,
                                                                                                   cumulative))
    rr.time = frames[-5].time
    frames.insert(len(frames) - 4, rr)
    out = tmp_path / "rr.pcap"
    wrpcap(str(out), frames)
    report = analyze_file(out)
    (call,) = report.calls
    stream = next(s for s in call.streams if s.src == "127.0.0.1:6000")
    assert (stream.rtcp_lost, stream.rtcp_loss_pct) == (cumulative, round(fraction * 100 / 256, 2))
    found = [f for f in report.all_findings() if f.code == "media.loss_downstream"]
    assert bool(found) == expect
    if expect:
        assert found[0].evidence == {"reported_loss_pct": 5.0, "captured_loss_pct": 0.0}


def test_a_report_belongs_to_the_stream_its_reporter_receives(tmp_path):
    """Report blocks name the source by SSRC only; an echo sends the caller's packets back with the
    caller's SSRC, so the caller's report about what came back names its own SSRC. Such a report,
    sent from the caller's RTCP port, is about the stream the caller receives, never about the one
    it sends (analysis/reception.py): the caller's own stream keeps only its receiver's report."""
    from scapy.all import IP, UDP, Ether, Raw, rdpcap, wrpcap

    frames = list(rdpcap(str(FIXTURES / "media_ok.pcap")))
    ssrc = 0x1A2B3C4D  # the caller's stream 127.0.0.1:6000 -> 127.0.0.2:6000
    at = frames[-5].time

    def rr(src, dst, fraction, cumulative):
        pkt = Ether() / IP(src=src, dst=dst) / UDP(sport=6001, dport=6001) / Raw(_rr(7, ssrc, fraction, cumulative))
        pkt.time = at
        return pkt

    def caller_stream(extra):
        out = tmp_path / "rr.pcap"
        wrpcap(str(out), frames[:-4] + extra + frames[-4:])
        (call,) = analyze_file(out).calls
        return next(s for s in call.streams if s.src == "127.0.0.1:6000")

    # from the stream's own sender (as an echo's caller reports on its SSRC come back): not about it
    mine = caller_stream([rr("127.0.0.1", "127.0.0.2", 40, 7)])
    assert (mine.rtcp_lost, mine.rtcp_loss_pct, mine.rtcp_jitter_ms) == (None, None, None)
    # with its receiver's report beside it, the receiver's is the one
    both = caller_stream([rr("127.0.0.1", "127.0.0.2", 40, 7), rr("127.0.0.2", "127.0.0.1", 0, 3)])
    assert (both.rtcp_lost, both.rtcp_loss_pct) == (3, 0.0)
    # from a third address (a receiver behind NAT, RTCP from elsewhere): it stands in
    other = caller_stream([rr("127.0.0.9", "127.0.0.1", 0, 5)])
    assert other.rtcp_lost == 5


def test_a_relayed_call_reports_its_receivers_jitter(shared_pcaps):
    """A call through a media relay (200.57.7.196) whose far end (200.57.7.204) puts a block about its
    own SSRC, jitter 0, in each of its SRs: the stream 204 -> 196 takes the reports the relay sends
    from its own RTCP port (40377, the stream's destination port + 1), as tshark decodes them, not
    the sender's report on itself (the report said 0.0 ms before analysis/reception.py)."""
    from agent.helpers import rtcp_blocks

    path = shared_pcaps / "wsc_SIP_CALL_RTP_G711.pcap"
    stream = next(s for c in analyze_file(path).calls for s in c.streams if s.src == "200.57.7.204:8000")
    assert stream.dst == "200.57.7.196:40376"
    received = [b for b in rtcp_blocks(path, 40377) if b[0] == stream.ssrc]
    assert received and received[-1][3] > 0
    assert stream.rtcp_jitter_ms == round(received[-1][3] * 1000 / stream.clock_rate, 3)
    assert stream.rtcp_lost == received[-1][2]
