"""The verdict on a call siptool placed itself (`call`, `check`): read from the Analyzer's Call of it
(its streams, findings, post-dial delay and length, exactly as `analyze` gives them for the call's
pcap), the facts only the agent knows (call.agent: which streams are ours, what it sent, the media
gaps it saw live, the far end's packets due after its media stopped, the far end's RTCP reports
about our stream), and the one Thresholds object. Nothing here measures: each figure is the
Analyzer's or the agent's.

    judge(call, thresholds) -> bool   fills call.agent.tx, .rx, .one_way, .voice and .problems

A voice test (the agent said prompts: call.agent.said) is judged on its latencies too (voice.py).
"""

from __future__ import annotations

from ..report.model import AgentView, Call, MediaFigures, Severity, Stream
from ..rtp.mos import mos_for_stream
from .media import mos_delay_ms
from . import voice
from .thresholds import Thresholds

# The Analyzer's findings that fail a test call whatever its figures say (as they fail a check).
FAILS_CALL = ("sip.ack_missing", "media.one_way", "media.none", "codec.no_common", "srtp.auth_failed",
              "srtp.refused")
ONE_WAY = ("media.one_way", "media.none", "srtp.auth_failed")  # srtp.auth_failed as an error: one-way audio
REFUSED = ("codec.no_common", "srtp.refused")  # why an offer was refused: said for a call that failed so


def ours(call: Call) -> tuple[Stream | None, Stream | None]:
    """(sent, received): the call's first stream from our media address, and the first to it."""
    here = call.agent.media if call.agent else ""
    sent = next((s for s in call.streams if s.src == here and s.media == "audio"), None)
    received = next((s for s in call.streams if s.dst == here and s.media == "audio"), None)
    return sent, received


def received_figures(s: Stream | None, missing_at_end: int) -> MediaFigures:
    """What came to us: the Analyzer's stream; packets due after the far end's media stopped (the
    agent's count) are lost too, as a listener lost them (RFC 3550 counts loss only up to the last
    sequence number received). Of an SRTP stream a receiver hears only the packets that authenticate
    (RFC 3711 3.3: the Analyzer checked each with the SDP's keys): those that came but fail, or come
    again past the replay window, are lost too (`srtp_dropped`); a duplicate's copy is not."""
    if s is None:
        return MediaFigures(source="measured")
    packets, dropped = s.packets, 0
    if s.srtp is not None and s.srtp.packets:
        packets = s.srtp.authenticated
        dropped = max(max(s.expected - packets, 0) - max(s.lost, 0), 0)
    expected = max(s.expected, 1) + missing_at_end
    lost = max(s.lost, 0) + missing_at_end + dropped
    mos, r = s.mos, s.r_factor
    if missing_at_end or dropped:
        effective = (s.effective_loss_pct * max(s.expected, 1) / 100.0 + missing_at_end + dropped) * 100.0 / expected
        r, mos = mos_for_stream(s.codec, min(effective, 100.0), mos_delay_ms(s))
        r, mos = (round(r, 1), round(mos, 2)) if packets else (None, None)  # nothing heard: one-way audio
    return MediaFigures(packets=packets, lost=lost, loss_pct=round(min(lost * 100.0 / expected, 100.0), 3),
                        missing_at_end=missing_at_end, srtp_dropped=dropped, jitter_ms=s.mean_jitter_ms,
                        max_jitter_ms=s.max_voice_jitter_ms, mos=mos, r=r, source="measured",
                        mos_model=s.mos_model)


def sent_figures(s: Stream | None, a: AgentView) -> MediaFigures:
    """What we sent (the Analyzer's stream of it), as the far end's RTCP report about it said when
    one came: its loss and jitter, and the E-model's MOS of that loss (delay: half the round trip,
    by correlation, else RTCP's)."""
    f = MediaFigures(packets=s.packets if s is not None else 0, source="sent")
    far = a.far_end
    if s is not None and far is not None:
        rtt = a.audio_rtt_ms or far.rtt_ms
        f.lost, f.loss_pct, f.jitter_ms = max(far.lost, 0), round(far.loss_pct, 2), round(far.jitter_ms, 3)
        r, mos = mos_for_stream(s.codec, f.loss_pct, rtt / 2 if rtt else None)
        f.mos, f.r, f.source = round(mos, 2), round(r, 1), "rtcp"
        f.mos_model = s.mos_model
    return f


def _telephone_event_answered(call: Call) -> bool:
    answers = [e for e in call.sdp if e.media == "audio" and e.role == "answer" and e.sender != call.caller]
    return bool(answers) and any("telephone-event" in c.lower() for c in answers[0].codecs)


def judge(call: Call, th: Thresholds) -> bool:
    """Whether the placed call passed: answered, media negotiated, no failing finding, every limit
    met. Every reason it failed goes to call.agent.problems, one line each."""
    a = call.agent
    sent, received = ours(call)
    a.tx, a.rx = sent_figures(sent, a), received_figures(received, a.missing_at_end)
    problems = a.problems = list(a.notes)
    if call.final_status is None or not 200 <= call.final_status < 300 or a.codec is None:
        problems += [f.title for f in call.findings if f.code in REFUSED and f.title not in problems]
        return False
    one_way = [f for f in call.findings if f.code in ONE_WAY and f.severity.rank <= Severity.ERROR.rank]
    srtp = next((f for f in one_way if f.code == "srtp.auth_failed"), None)
    if srtp is not None:  # packets came, but the far end's key does not open them
        a.one_way = srtp.title
    elif one_way:
        a.one_way = ("no audio sent" if not a.tx.packets else
                     "no audio received (far end sent no RTP, or it did not reach us: check NAT/SDP address)"
                     if not a.rx.packets else one_way[0].title)
    else:
        for start, end in a.media_gaps:
            where = " (until the end of the call)" if a.media_s is not None and end >= a.media_s else ""
            problems.append(f"no media from the far end for {end - start:.1f} s at {start:.1f}-{end:.1f} s{where}")
    if call.pdd_ms is not None and call.pdd_ms > th.pdd_ms:
        problems.append(f"post-dial delay {call.pdd_ms:.0f} ms > {th.pdd_ms:.0f} ms")
    for name, f in (("received", a.rx), ("sent", a.tx)):  # the limits as analyze applies them
        if th.too_low(f.mos):
            problems.append(f"MOS {name} {f.mos:.2f} < {th.mos:g}")
        if f.packets and th.too_lossy(f.loss_pct):
            why = "".join(f" ({text})" for n, text in (
                (f.missing_at_end, f"{f.missing_at_end} due after the far end's media stopped"),
                (f.srtp_dropped, f"{f.srtp_dropped} SRTP packets that came were dropped: failed authentication or "
                                  "past the replay window"))
                if n)
            problems.append(f"loss {name} {f.loss_pct:.2f}% >= {th.loss_pct:g}%{why}")
        if f.packets and th.too_jittery(f.judged_jitter_ms):
            what = "max jitter" if f.source == "measured" else "jitter (far end's RTCP)"
            problems.append(f"{what} {name} {f.judged_jitter_ms:.1f} ms >= {th.jitter_ms:g} ms")
    if a.dtmf_asked and a.dtmf_sent != a.dtmf_asked:
        if not _telephone_event_answered(call):
            why = "the answer has no telephone-event (RFC 4733), so no digits were sent"
        else:
            why = f"the call ended after {call.duration_s or 0:g} s, before all digits were sent"
        problems.append(f"DTMF: sent {a.dtmf_sent!r} of {a.dtmf_asked!r}: {why}")
    for f in call.findings:
        if f.code in FAILS_CALL and f.severity.rank <= Severity.ERROR.rank and f.title not in problems:
            problems.append(f.title)
    a.voice = voice.voice_test(call)
    if a.voice is not None:
        problems += voice.problems(a.voice, th)
    return passed(call)


def passed(call: Call) -> bool:
    """The verdict `judge` gave a call: answered, a codec agreed, no problem."""
    a = call.agent
    return (a is not None and call.final_status is not None and 200 <= call.final_status < 300
            and a.codec is not None and not a.problems)
