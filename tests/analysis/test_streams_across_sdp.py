"""Streams across SDP changes within one call, against tshark's `-z rtp,streams` run live (issue 13).

tshark keeps one stream per 5-tuple and SSRC, and decodes a port by the SDP in force for the
packet's destination (else its source): RTP, or T.38 (UDPTL) after an m=image offer. siptool cuts
flows at announcements so that a port re-used by another call starts new streams; within one call
an answer or a re-INVITE must not split a stream that goes on. Crafted with scapy: no peer here
sends RTP ahead of its answer on demand, re-INVITEs to T.38 and back, or a NAT-fixing re-INVITE.
"""

from __future__ import annotations

import pytest
from crafted_calls import A, B, T0, Dialog, audio, image, rtp, sdp, udptl, write
from support import FIXTURES, require_binary
from tshark_rtp import tshark_streams

from siptool.drivers import files
from siptool.drivers.files import analyze_file
from siptool.report.jsonout import report_dict

PUBLIC = "192.0.2.44"  # the caller's address after NAT (its SDP says 10.1.2.3)


def _media(packets, src, sport, dst, dport, ssrc, start, n, seq0=0, ts0=0, step=0.02):
    """n packets of 20 ms PCMU from start; returns the next (time, seq, ts)."""
    for i in range(n):
        packets.append(rtp(src, sport, dst, dport, start + i * step, seq0 + i, ts0 + 160 * i, ssrc))
    return start + n * step, seq0 + n, ts0 + 160 * n


def rtp_before_answer(path):
    """The callee's first RTP packet overtakes its 200 OK (capture taken at the caller's side)."""
    d = Dialog("early-1")
    pk = [d.request(A, "INVITE", T0, sdp(A, audio(20000)), initial=True)]
    _media(pk, B, 30000, A, 20000, 0xB, T0 + 0.05, 1)
    pk += [d.response(200, "OK", T0 + 0.06, sdp(B, audio(30000))), d.ack(T0 + 0.07)]
    _media(pk, A, 20000, B, 30000, 0xA, T0 + 0.08, 100)
    _media(pk, B, 30000, A, 20000, 0xB, T0 + 0.07, 100, seq0=1, ts0=160)
    pk.append(d.request(A, "BYE", T0 + 2.2))
    write(path, pk)


def reinvites(path):
    """Re-INVITEs from each side while both streams go on, the last one just before the end."""
    d = Dialog("reinvite-1")
    pk = [d.request(A, "INVITE", T0, sdp(A, audio(20000)), initial=True),
          d.response(200, "OK", T0 + 0.01, sdp(B, audio(30000))), d.ack(T0 + 0.02)]
    t, sa, ta = _media(pk, A, 20000, B, 30000, 0xA, T0 + 0.1, 300)
    _, sb, tb = _media(pk, B, 30000, A, 20000, 0xB, T0 + 0.101, 300)
    pk += [d.request(B, "INVITE", t - 2.0, sdp(B, audio(30000, (0, 8)), 2)),
           d.response(200, "OK", t - 1.99, sdp(A, audio(20000, (0, 8)), 2)), d.ack(t - 1.98)]
    pk += [d.request(A, "INVITE", t - 0.005, sdp(A, audio(20000), 3)),
           d.response(200, "OK", t + 0.004, sdp(B, audio(30000), 3)), d.ack(t + 0.005)]
    _media(pk, A, 20000, B, 30000, 0xA, t, 1, sa, ta)  # one packet after the last re-INVITE
    _media(pk, B, 30000, A, 20000, 0xB, t + 0.001, 1, sb, tb)
    pk.append(d.request(A, "BYE", t + 0.5))
    write(path, pk)


def nat_fixed_by_reinvite(path):
    """The caller's SDP names its private address; its RTP comes from the NAT's public one, which a
    re-INVITE (an SBC fixing the SDP) then announces: the streams on that 5-tuple go on."""
    d = Dialog("nat-1")
    pk = [d.request(A, "INVITE", T0, sdp("10.1.2.3", audio(7078)), initial=True),
          d.response(200, "OK", T0 + 0.01, sdp(B, audio(30000))), d.ack(T0 + 0.02)]
    t, sa, ta = _media(pk, PUBLIC, 7080, B, 30000, 0xA, T0 + 0.1, 50)
    _, sb, tb = _media(pk, B, 30000, PUBLIC, 7080, 0xB, T0 + 0.101, 50)
    pk += [d.request(A, "INVITE", t - 0.001, sdp(PUBLIC, audio(7080), 2)),
           d.response(200, "OK", t + 0.005, sdp(B, audio(30000), 2)), d.ack(t + 0.006)]
    _media(pk, PUBLIC, 7080, B, 30000, 0xA, t, 150, sa, ta)
    _media(pk, B, 30000, PUBLIC, 7080, 0xB, t + 0.001, 150, sb, tb)
    write(path, pk)


def fax(path, t38_port_shift=0, udptl_seq0=0x8000):
    """A G.711 call switched to T.38 by a re-INVITE from the callee (on the same ports, or on the
    next pair), 9 s of UDPTL, and back to G.711 by another re-INVITE; both senders keep their
    SSRC. UDPTL sequence numbers from 0x8000 make its first octet look like RTP version 2. Two RTP
    packets of the caller are still in flight after the T.38 offer."""
    d = Dialog("fax-1")
    pk = [d.request(A, "INVITE", T0, sdp(A, audio(20000, (0, 8))), initial=True),
          d.response(200, "OK", T0 + 0.01, sdp(B, audio(30000, (0, 8)))), d.ack(T0 + 0.02)]
    t, sa, ta = _media(pk, A, 20000, B, 30000, 0xA, T0 + 0.1, 150)
    _, sb, tb = _media(pk, B, 30000, A, 20000, 0xB, T0 + 0.1005, 150)
    pa, pb = 20000 + t38_port_shift, 30000 + t38_port_shift
    pk.append(d.request(B, "INVITE", t, sdp(B, image(pb), 2)))
    t, sa, ta = _media(pk, A, 20000, B, 30000, 0xA, t + 0.001, 2, sa, ta)  # in flight
    pk += [d.response(200, "OK", t, sdp(A, image(pa), 2)), d.ack(t + 0.001)]
    for i in range(300):  # 9 s of fax, both ways
        pk += [udptl(B, pb, A, pa, t + 0.01 + i * 0.03, udptl_seq0 + i),
               udptl(A, pa, B, pb, t + 0.011 + i * 0.03, udptl_seq0 + 5 + i)]
    t += 9.02
    pk += [d.request(B, "INVITE", t, sdp(B, audio(30000, (0, 8)), 3)),
           d.response(200, "OK", t + 0.01, sdp(A, audio(20000, (0, 8)), 3)), d.ack(t + 0.02)]
    _media(pk, A, 20000, B, 30000, 0xA, t + 0.03, 100, sa, ta + 9 * 8000)
    _media(pk, B, 30000, A, 20000, 0xB, t + 0.0305, 100, sb, tb + 9 * 8000)
    pk.append(d.request(A, "BYE", t + 2.1))
    write(path, pk)


CASES = {"rtp_before_answer": rtp_before_answer, "reinvites": reinvites, "nat_fixed_by_reinvite": nat_fixed_by_reinvite,
         "fax_same_ports": fax, "fax_other_ports": lambda p: fax(p, t38_port_shift=2)}


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sdp_changes")
    out = {}
    for name, make in CASES.items():
        make(folder / f"{name}.pcap")
        out[name] = folder / f"{name}.pcap"
    return out


def _rows(path):
    return {(t["src"], t["dst"], int(t["ssrc"], 16)): t for t in tshark_streams(require_binary("tshark"), path)}


@pytest.mark.parametrize("name", list(CASES))
def test_streams_equal_tshark(captures, name):
    theirs = _rows(captures[name])
    report = analyze_file(captures[name])
    (call,) = report.calls
    assert report.streams == []  # nothing RTP-looking outside the call (no UDPTL taken for RTP)
    ours = {(s.src, s.dst, s.ssrc): s for s in call.streams}
    assert len(ours) == len(call.streams), "a stream was split"
    assert sorted(ours) == sorted(theirs)
    for key, t in theirs.items():
        s = ours[key]
        assert (s.packets, s.lost) == (t["packets"], t["lost"]), key
        for f in ("max_delta_ms", "mean_jitter_ms", "max_jitter_ms"):
            assert getattr(s, f) == pytest.approx(t[f], abs=0.0015), (key, f)


def test_fax_counts_only_rtp_while_sdp_says_rtp(captures):
    """While T.38 is in force no UDPTL datagram counts as RTP, and the caller's two packets sent after
    the callee offered T.38 on its port are UDPTL to tshark too (its SDP for that destination);
    after the switch back each direction is one stream again, its 9 s fax gap its max delta."""
    report = analyze_file(captures["fax_same_ports"])
    (call,) = report.calls
    by_src = {s.src: s for s in call.streams}
    assert sorted(by_src) == [f"{B}:30000", f"{A}:20000"]
    caller, callee = by_src[f"{A}:20000"], by_src[f"{B}:30000"]
    assert (caller.packets, caller.lost) == (250, 2) and (callee.packets, callee.lost) == (250, 0)
    assert caller.max_delta_ms > 9000 and callee.max_delta_ms > 9000
    assert [e.protocol for e in call.sdp].count("udptl") == 2


@pytest.mark.parametrize("name", list(CASES))
def test_batch_path_equals_packet_path(captures, name, monkeypatch):
    fast = report_dict(analyze_file(captures[name]))
    monkeypatch.setattr(files, "batches_supported", lambda capture: False)
    assert report_dict(analyze_file(captures[name])) == fast


def test_port_and_ssrc_reused_by_another_call_is_another_stream():
    """Where siptool is right and tshark is not: example.pcap merges captures whose calls re-use
    127.0.0.1:6000 -> 127.0.0.2:6000 with the same SSRC (SIPp plays one RTP file). tshark joins them
    into one stream of 400 packets, lost -200 and ~300 ms of jitter from comparing one call's clock
    with the other's; siptool gives each call its own stream, each equal to tshark's figures on that
    call's capture alone."""
    key = ("127.0.0.1:6000", "127.0.0.2:6000", 0x1A2B3C4D)
    merged = _rows(FIXTURES / "example.pcap")[key]
    assert (merged["packets"], merged["lost"]) == (400, -200) and merged["max_jitter_ms"] > 100
    report = analyze_file(FIXTURES / "example.pcap")
    ours = {c.call_id.split("@")[0]: s for c in report.calls for s in c.streams if (s.src, s.dst, s.ssrc) == key}
    assert sorted(ours) == ["1-media_ok", "1-media_oneway"]
    for name, s in ours.items():
        alone = _rows(FIXTURES / f"{name[2:]}.pcap")[key]
        assert (s.packets, s.lost) == (alone["packets"], alone["lost"]) == (200, 0)
        assert s.max_jitter_ms == pytest.approx(alone["max_jitter_ms"], abs=0.0015)
        assert s.max_delta_ms == pytest.approx(alone["max_delta_ms"], abs=0.0015)
