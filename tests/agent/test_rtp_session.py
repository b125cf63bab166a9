"""The RTP session (agent/rtpsession.py) is sans-I/O: a caller's session and an echo's exchange
packets in memory with a fake clock and a link that loses what a test says, in milliseconds. What
goes on the wire is checked against RFC 3550 / RFC 4733 directly, and what the session measured
against the losses the test made."""

from __future__ import annotations

import heapq
import itertools
import random

from siptool.agent.events import MediaResumed, MediaStopped
from siptool.agent.rtpsession import RtpSession
from siptool.rtp import codecs, g711
from siptool.rtp.packet import RTCP_BYE, parse_rtcp, parse_rtp, parse_telephone_event

CALLER, ECHO = ("10.0.0.1", 40000), ("10.0.0.2", 40002)
PCMU = codecs.coder("PCMU")


def media(seconds: float, lost=lambda where, seq, t: False, dtmf: str = "", delay: float = 0.010,
          caller_hooks: dict | None = None, echo_hooks: dict | None = None, dup=lambda where, data: False):
    """A call's media for `seconds`: the caller sends (speech-like G.711, digits at 0.5 s), the echo
    sends every packet back. `lost(where, seq, t)`: whether a packet ("out" to the echo, "back" to the
    caller) with that RTP sequence number is lost at time t; `dup(where, data)`: whether it arrives
    twice. `*_hooks`: the sessions' protect/unprotect (SRTP). Returns the two sessions and the wire."""
    caller = RtpSession(PCMU, gap_s=0.5, rng=random.Random(1), **(caller_hooks or {}))
    echo = RtpSession(PCMU, echo=True, rng=random.Random(2), **(echo_hooks or {}))
    caller.set_remote(*ECHO, PCMU, 0, 101)
    echo.set_remote(*CALLER, PCMU, 0, 101)
    now = 1_000.0
    caller.start(now, g711.speech_like(2.0), seconds, dtmf, dtmf_at=0.5)
    echo.start_rtcp(now)
    wire, inflight, seq = [], [], itertools.count()
    sessions = {CALLER[0]: caller, ECHO[0]: echo}
    end = now + seconds + 1.0
    while now <= end:
        for here, s in ((CALLER, caller), (ECHO, echo)):
            for data, addr, rtcp in s.datagrams_to_send():
                where = "out" if here == CALLER else "back"
                h = None if rtcp else parse_rtp(data)
                gone = h is not None and lost(where, h.sequence, now)
                wire.append((now, where, rtcp, data, gone))
                if not gone:
                    src = (here[0], here[1] + (1 if rtcp else 0))
                    for _ in range(2 if dup(where, data) else 1):
                        heapq.heappush(inflight, (now + delay, next(seq), addr[0], src, data, rtcp))
        due = [t for t in (caller.next_timer(), echo.next_timer()) if t is not None]
        now = min(due + [inflight[0][0]] if inflight else due, default=end + 1)
        while inflight and inflight[0][0] <= now:
            _, _, host, src, data, rtcp = heapq.heappop(inflight)
            (sessions[host].receive_rtcp if rtcp else sessions[host].receive_rtp)(data, src, now)
        for s in (caller, echo):
            if s.next_timer() is not None and s.next_timer() <= now:
                s.handle_timer(now)
    caller.close(now)
    wire += [(now, "out", True, d, False) for d, _, _ in caller.datagrams_to_send()]
    return caller, echo, wire


def test_packetiser_paces_by_the_codecs_clock_and_sends_digits():
    caller, echo, wire = media(2.0, dtmf="12")
    out = [(t, parse_rtp(d), d) for t, where, rtcp, d, _ in wire if where == "out" and not rtcp]
    audio = [(t, h) for t, h, _ in out if h.payload_type == 0]
    events = [(t, h, d) for t, h, d in out if h.payload_type == 101]
    assert len(audio) + len({h.timestamp for _, h, _ in events}) * 5 == 100  # 2 s of 20 ms frames
    assert all(b[1].timestamp - a[1].timestamp == 160 * round((b[0] - a[0]) / 0.02) for a, b in zip(audio, audio[1:]))
    assert all(round(b[0] - a[0], 6) == 0.02 for a, b in zip(audio[:20], audio[1:21]))  # one frame per 20 ms
    assert [h.sequence for _, h, _ in out] == list(range(out[0][1].sequence, out[0][1].sequence + len(out)))
    # RFC 4733 2.5: 5 packets of 20 ms a digit, the end packet sent three times, marker on the first
    digits = [parse_telephone_event(d[h.payload_offset:]) for _, h, d in events]
    assert [e.digit for e in digits] == ["1"] * 7 + ["2"] * 7 and [e.end for e in digits].count(True) == 6
    assert [h.marker for _, h, _ in events][::7] == [True, True] and caller.dtmf_sent == "12"
    assert events[0][0] - audio[0][0] == 0.5  # at dtmf_at
    assert echo.echoed == caller.tx_packets == caller.rx_packets == len(out)


def test_opus_and_g722_frames_advance_their_clocks_and_digits_count_8_khz():
    """Opus (RFC 7587): 960 samples and 960 timestamp units a 20 ms packet; G.722: 320 samples on its
    8000 Hz clock (RFC 3551 4.5.2); each payload decodes to a packet's samples. An RFC 4733 digit's
    duration counts telephone-event/8000's clock (what the agent offers), its timestamp the stream's."""
    for name, samples, ticks in (("opus", 960, 960), ("G722", 320, 160)):
        coder = codecs.coder(name)
        s = RtpSession(coder, rng=random.Random(3))
        s.set_remote("127.0.0.1", 4000, coder, 96, 101)
        s.start(10.0, g711.speech_like(1.0, coder.rate), 0.6, "5", dtmf_at=0.2)
        s.handle_timer(11.0)
        sent = [(parse_rtp(d), d) for d, _, rtcp in s.datagrams_to_send() if not rtcp]
        audio = [(h, d) for h, d in sent if h.payload_type == 96]
        events = [(h, parse_telephone_event(d[h.payload_offset:])) for h, d in sent if h.payload_type == 101]
        assert (s.frame_samples, s.frame_ticks) == (samples, ticks) and len(audio) + 5 == 30
        ts0 = audio[0][0].timestamp
        assert all((h.timestamp - ts0) % ticks == 0 for h, _ in audio + events)
        assert events[0][0].timestamp - ts0 == 10 * ticks  # the digit starts at 0.2 s, in the stream's clock
        assert [e.duration for _, e in events][:5] == [160, 320, 480, 640, 800] and events[-1][1].end
        decoder = coder.decoder()
        assert [len(decoder.decode(d[h.payload_offset:])) for h, d in audio[:5]] == [samples] * 5


def test_losses_reach_the_statistics_and_the_receiver_report():
    caller, echo, wire = media(2.0, lost=lambda where, seq, t: where == "back" and seq % 20 == 7)
    dropped = sum(1 for _, where, _, _, gone in wire if gone)
    m = caller.stats.finish()
    assert dropped == 5 and m.lost_rfc3550 == dropped and caller.rx_packets == caller.tx_packets - dropped
    reports = [parse_rtcp(d) for _, where, rtcp, d, _ in wire if where == "out" and rtcp]
    last = reports[-1]
    assert last[-1].packet_type == RTCP_BYE and last[0].packet_type == 200  # SR (we sent), then BYE
    block = last[0].reports[0]
    assert block.cumulative_lost == dropped and block.highest_seq == int(m.sequence.max())
    assert block.jitter == round(m.last_jitter_ms * 8)  # in timestamp units, the codec's clock


def test_the_far_ends_media_stopping_and_coming_back_are_events():
    caller, _, _ = media(3.0, lost=lambda where, seq, t: where == "back" and 1_001.0 <= t < 1_002.0)
    # the last packet before the cut came at 1.0 s, the first after it (sent at 2.0 s, echoed at 2.01 s)
    # at 2.02 s: stopped is said 0.5 s (gap_s) after the last one, back when one comes
    kinds = [(round(t - 1_000.0, 3), type(e)) for t, e in caller.events]
    assert kinds[:2] == [(1.5, MediaStopped), (2.02, MediaResumed)]
    assert caller.gaps(1_003.0, 0.5) == [(1.0, 2.02)]
