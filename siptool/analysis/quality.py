"""Stream quality: loss, jitter, timestamp jumps, MOS, and what the receiver's RTCP reports say.
Judged against the Thresholds in the Context (docs/findings.md)."""

from __future__ import annotations

from typing import Iterable

from ..report.model import Call, Finding, Severity, Stream
from .context import Context
from .thresholds import Thresholds


def stream_quality(call: Call, ctx: Context) -> Iterable[Finding]:
    for s in call.streams:
        yield from quality_findings(s, ctx, call.call_id)


def judged(s: Stream) -> bool:
    """Whether a stream gets audio verdicts: video spreads frames over packets and DTMF-only streams
    carry no voice, and a handful of packets says nothing."""
    return s.packets >= 10 and s.media in ("audio", "other")


def past_limits(s: Stream, t: Thresholds) -> bool:
    """Loss, voice jitter or MOS past a limit: what media.loss, media.jitter and media.mos fire on
    (Stream.past_limits, which ladders colour)."""
    return judged(s) and (t.too_lossy(s.loss_pct) or t.too_jittery(s.max_voice_jitter_ms) or t.too_low(s.mos))


def quality_findings(s: Stream, ctx: Context, call_id: str | None) -> Iterable[Finding]:
    """Loss, jitter, timestamp jumps, receiver reports and MOS of one audio stream. A stream that
    belongs to no call (no SDP for it was captured) is judged too, and says so."""
    if not judged(s):
        return
    t = ctx.thresholds
    where = f"{s.src} -> {s.dst}" + ("" if call_id is not None else " (no SDP for it in the capture)")
    if t.too_lossy(s.loss_pct):
        yield Finding(
            code="media.loss", severity=Severity.ERROR if s.loss_pct >= t.loss_pct_error else Severity.WARNING,
            title=f"{s.loss_pct:.1f}% packet loss on {where}",
            explanation=f"{s.lost} of {s.expected} RTP packets never arrived (RFC 3550 A.3). Above ~1% "
                        "G.711 audio becomes choppy.",
            fix="Find the lossy hop: compare captures on both sides of the path; check link congestion, "
                "QoS marking (DSCP EF) and Wi-Fi.",
            call_id=call_id, frames=[s.first_frame], evidence={"lost": s.lost, "expected": s.expected})
    if t.too_jittery(s.max_voice_jitter_ms):
        digits = (f" Telephone-event packets (DTMF {s.dtmf}) are left out: their timestamps stand still by "
                  f"design (RFC 4733 2.2.1); tshark's Max Jitter with them is {s.max_jitter_ms:.1f} ms.") \
            if s.max_voice_jitter_ms != s.max_jitter_ms else ""
        yield Finding(
            code="media.jitter", severity=Severity.WARNING,
            title=f"Jitter up to {s.max_voice_jitter_ms:.1f} ms on {where}",
            explanation=f"Interarrival jitter (RFC 3550 6.4.1) reached {s.max_voice_jitter_ms:.1f} ms "
                        f"(mean {s.mean_jitter_ms:.1f} ms); the largest gap between packets was {s.max_delta_ms:.0f} ms. "
                        "Jitter buffers discard late packets, which sounds like loss." + digits,
            fix="Prioritise voice (DSCP EF), avoid congested or wireless links.",
            call_id=call_id, frames=_at(s.max_delta_frame, s),
            evidence={"max_jitter_ms": s.max_voice_jitter_ms, "tshark_max_jitter_ms": s.max_jitter_ms})
    if s.timestamp_jumps:
        yield Finding(
            code="media.timestamp_jump", severity=Severity.WARNING,
            title=f"RTP timestamp jumped {s.timestamp_jumps} time(s) on {where}",
            explanation="Between packets with consecutive sequence numbers the RTP timestamp moved more than "
                        "0.5 s away from the time that passed. Receivers' jitter buffers resynchronise or drop "
                        "audio there (clicks, gaps). Usually a media server or SBC splicing two sources "
                        "(announcement then call, transfer) without a new SSRC or marker bit.",
            fix="Have the sender set the marker bit / change SSRC on source changes, or enable RTP "
                "re-timestamping on the SBC.",
            call_id=call_id, frames=_at(s.timestamp_jump_frame, s), evidence={"timestamp_jumps": s.timestamp_jumps})
    yield from receiver_reports(s, ctx, call_id, where)
    if t.too_low(s.mos):
        yield Finding(
            code="media.mos", severity=Severity.ERROR if s.mos < t.mos_error else Severity.WARNING,
            title=f"Estimated MOS {s.mos:.2f} on {where}",
            explanation=f"The E-model (ITU-T G.107) rates this stream R={s.r_factor:.0f}, MOS {s.mos:.2f}: "
                        "users will notice poor audio.",
            fix="See the loss and jitter findings for the cause.", call_id=call_id, frames=[s.first_frame])


def receiver_reports(s: Stream, ctx: Context, call_id: str | None, where: str) -> Iterable[Finding]:
    """What the receiver said in RTCP (RR cumulative lost, XR VoIP Metrics loss and discard) against
    what the capture saw: loss the capture did not see happened after the capture point."""
    t = ctx.thresholds
    # Whole-stream figures on both sides: RR cumulative lost over what the capture expected (not the
    # highest per-interval fraction, which a burst the capture also saw can push over the threshold),
    # and XR's loss rate, which counts since the start of reception (RFC 3611 4.7.1).
    rr = s.rtcp_lost * 100.0 / s.expected if s.rtcp_lost is not None and s.expected else None
    reported = max([v for v in (rr, s.rtcp_xr.loss_pct if s.rtcp_xr else None) if v is not None], default=None)
    if reported is not None and reported >= t.loss_pct and s.loss_pct < t.loss_pct:
        yield Finding(
            code="media.loss_downstream", severity=Severity.WARNING,
            title=f"Receiver reports {reported:.1f}% loss on {where}; the capture saw {s.loss_pct:.1f}%",
            explanation="The receiver's RTCP reports (RFC 3550 6.4 cumulative lost, RFC 3611 VoIP Metrics) count "
                        "packets missing that passed this capture point, so they were lost between here and "
                        "the receiver.",
            fix="Capture again nearer the receiver (its SBC or host) to find the lossy hop past this point; "
                "check that link's congestion, QoS marking (DSCP EF) and firewall rate limits.",
            call_id=call_id, frames=[s.first_frame],
            evidence={"reported_loss_pct": round(reported, 2), "captured_loss_pct": s.loss_pct})
    if s.rtcp_xr is not None and s.rtcp_xr.discard_pct >= t.loss_pct:
        x = s.rtcp_xr
        yield Finding(
            code="media.jitter_buffer_discards", severity=Severity.WARNING,
            title=f"Receiver's jitter buffer discarded {x.discard_pct:.1f}% of {where}",
            explanation=f"The receiver's RTCP XR VoIP Metrics (RFC 3611 4.7) report {x.discard_pct:.1f}% of "
                        f"packets discarded as too late or early (jitter buffer {x.jitter_buffer_nominal_ms} ms "
                        f"nominal, {x.jitter_buffer_max_ms} ms max): heard as loss although the network "
                        "delivered them.",
            fix="Reduce jitter on the path (DSCP EF, avoid congested or wireless links) or let the receiver's "
                "adaptive jitter buffer grow larger.",
            call_id=call_id, frames=[s.first_frame],
            evidence={"discard_pct": x.discard_pct, "jitter_buffer_max_ms": x.jitter_buffer_max_ms})


def _at(frame: int, s: Stream) -> list[int]:
    """The frame of the event first (plots mark it there), then the stream's first frame."""
    return [frame, s.first_frame] if frame and frame != s.first_frame else [s.first_frame]
