"""What the audio itself says (content analysis): silence where RTP flows, a late greeting, slow
turns, talk-over, clipping and low level. Rules read `Stream.content` and `Call.conversation`;
without content analysis they find nothing. Thresholds: analysis/thresholds.Thresholds.
"""

from __future__ import annotations

from typing import Iterable

from ..report.model import Call, Finding, Severity, Stream
from .context import Context

MIN_SILENT_S = 2.0  # a direction is judged silent only after this much audio
MIN_SPEECH_S = 1.0  # levels are judged only over this much speech
COLLISION_S = 0.2  # both starting within this is a collision, not the caller barging in


def _sides(call: Call) -> list[tuple[str, Stream]]:
    """(sending side, stream) for the call's audio streams whose content was decoded (the side as
    conversation.py found it; "?" when not known)."""
    return [(s.content.side or "?", s) for s in call.streams
            if s.media == "audio" and s.content is not None and s.content.decoded]


def _where(side: str, s: Stream) -> str:
    return f"the {side}'s audio ({s.src} -> {s.dst})" if side != "?" else f"{s.src} -> {s.dst}"


def _about(side: str, s: Stream, **figures) -> dict:
    """A stream finding's evidence: whose stream, which, and the figures that decided."""
    return {"side": side, "stream": f"{s.src} -> {s.dst}", **figures}


def _callee_frames(call: Call) -> list[int]:
    """The answering side's first RTP packet: where a finding about its speech points."""
    return [s.first_frame for side, s in _sides(call) if side == "callee"][:1]


def silent_media(call: Call, ctx: Context) -> Iterable[Finding]:
    """RTP flows but carries silence: a whole direction, or seconds of digital silence mid-call in a
    stream whose pauses otherwise carry sound (its source was cut: mute, a bridge losing its input)."""
    if call.kind != "call" or call.answer is None:
        return
    for side, s in _sides(call):
        c = s.content
        if c.silent and c.audio_s >= MIN_SILENT_S and not c.speech_s:
            kind = "comfort noise only" if c.comfort_noise and not c.packets else \
                "digital silence" if c.peak_dbfs is None or c.peak_dbfs <= -72 else "inaudible sound"
            yield Finding(
                code="media.silent", severity=Severity.ERROR,
                title=f"Silent media: {_where(side, s)} carries {kind}",
                explanation=f"{s.packets} RTP packets flowed, so the network path works, but nothing in them "
                            f"reaches -60 dBFS (loudest {_db(c.peak_dbfs)}): the listener hears nothing. This is "
                            "one-way audio that packet counts cannot see: the sender's audio source is muted, "
                            "not connected, or a media server sends silence instead of the call's audio.",
                fix="Check the sender's audio path: microphone or mute, the media server's or SBC's bridge "
                    "between the call legs, transcoding, and that the far end's audio source starts.",
                call_id=call.call_id, frames=[s.first_frame],
                evidence=_about(side, s, packets=s.packets, peak_dbfs=c.peak_dbfs, comfort_noise=c.comfort_noise,
                                audio_s=c.audio_s))
            continue
        if c.noise_dbov is None or not c.talk_spurts:
            continue  # pauses that are digital silence anyway (many agents send it): a cut cannot be told
        cuts = [x for x in c.digital_silence if x.end - x.start >= ctx.thresholds.silent_gap_s
                and x.start >= c.talk_spurts[0].start]
        if cuts:
            longest = max(cuts, key=lambda x: x.end - x.start)
            yield Finding(
                code="media.silent", severity=Severity.WARNING,
                title=f"{longest.end - longest.start:.1f} s of digital silence mid-call in {_where(side, s)}",
                explanation=f"RTP kept flowing but carried exact digital silence for {longest.end - longest.start:.1f} s "
                            f"(from {longest.start - call.answer:.1f} s after the answer), while this stream's other "
                            f"pauses carry background sound ({_db(c.noise_dbov, 'dBov')}): its audio source was cut "
                            "(muted, or a bridge or media server lost its input) and the listener heard nothing.",
                fix="Find what switched the sender's audio off: a mute, a transfer or conference bridge, a media "
                    "server's announcement, or an SBC or transcoder losing its input.",
                call_id=call.call_id, frames=[s.first_frame],
                evidence=_about(side, s, cuts=len(cuts), longest_s=round(longest.end - longest.start, 3),
                                at_s=round(longest.start - call.answer, 3), noise_dbov=c.noise_dbov))


def late_audio(call: Call, ctx: Context) -> Iterable[Finding]:
    """The answering side's first speech comes seconds after the 200 OK (a voice agent's greeting
    latency: TTS or LLM start-up, or media not yet connected)."""
    conv = call.conversation
    if conv is None or call.answer is None:
        return
    limit_ms = ctx.thresholds.greeting_ms
    first = conv.callee_first_speech_ms
    if first is None:
        heard = [s for side, s in _sides(call) if side == "callee" and not s.content.silent]
        end = call.end if call.end is not None else ctx.capture_end
        if not heard or end is None or (end - call.answer) * 1000 < limit_ms:
            return  # no audio from it (one-way, or silent: other findings), or too short to tell
        title = f"The callee never spoke in the {end - call.answer:.1f} s after answering"
    elif first > limit_ms:
        title = f"Late audio: the callee's first speech came {first / 1000:.1f} s after answer"
    else:
        return
    rtp = conv.callee_first_rtp_ms
    caller = conv.caller_first_speech_ms
    said = [f"its first RTP came {rtp / 1000:.2f} s after the 200 OK" if rtp is not None else "no RTP came from it"]
    if caller is not None and (first is None or caller < first):
        said.append(f"the caller spoke first, {caller / 1000:.1f} s after answer (\"hello?\")")
    yield Finding(
        code="media.late_audio", severity=Severity.WARNING, title=title,
        explanation=f"After the 200 OK the answering side stayed silent ({'; '.join(said)}). A person hears a dead "
                    "line; for a voice agent this is its greeting latency: speech synthesis or the language model "
                    "starting up, or media not yet connected.",
        fix="Start the greeting as the call is answered (pre-generate or cache it), answer only once the audio "
            "pipeline is ready, and check that the callee's media is connected at answer time.",
        call_id=call.call_id, frames=_callee_frames(call),
        evidence={"first_speech_ms": first, "first_rtp_ms": rtp, "caller_first_speech_ms": caller,
                  "threshold_ms": limit_ms})


def slow_turns(call: Call, ctx: Context) -> Iterable[Finding]:
    """The callee's response gaps (the caller stops, the callee starts) above the threshold."""
    conv = call.conversation
    if conv is None:
        return
    limit = ctx.thresholds.response_ms
    answers = [t for t in conv.turns if t.by == "callee"]
    slow = [t for t in answers if t.gap_ms > limit]
    if not slow:
        return
    worst = max(slow, key=lambda t: t.gap_ms)
    g = conv.callee_responses
    yield Finding(
        code="media.slow_turns", severity=Severity.WARNING,
        title=f"Slow turns: the callee took up to {worst.gap_ms / 1000:.1f} s to respond "
              f"({len(slow)} of {len(answers)} over {limit:.0f} ms)",
        explanation=f"When the caller stopped speaking, the callee's next speech came after p50 {g.p50_ms:.0f} ms, "
                    f"p95 {g.p95_ms:.0f} ms, max {g.max_ms:.0f} ms (the slowest {worst.start - call.answer:.1f} s "
                    f"after answer). Voice agents aim at about {limit:.0f} ms from the caller's last word to their "
                    "first audio; longer gaps read as a dropped call, and callers start talking again.",
        fix="Measure the agent's pipeline stages (end-of-speech detection, speech recognition, the model's first "
            "token, speech synthesis's first audio) and stream them into each other; check the media path's delay.",
        call_id=call.call_id, frames=_callee_frames(call),
        evidence={"slow": len(slow), "responses": len(answers), "max_ms": worst.gap_ms, "p50_ms": g.p50_ms,
                  "p95_ms": g.p95_ms, "threshold_ms": limit, "at_s": round(worst.start - call.answer, 3)})


def talk_over(call: Call, ctx: Context) -> Iterable[Finding]:
    """The answering side keeps speaking while the caller speaks (barge-in not handled)."""
    conv = call.conversation
    if conv is None:
        return
    limit_ms = ctx.thresholds.talk_over_s * 1000
    over = [o for o in conv.overlaps if o.speaking == "callee" and o.lead_ms >= COLLISION_S * 1000
            and o.duration_ms >= limit_ms]
    if not over:
        return
    worst = max(over, key=lambda o: o.duration_ms)
    yield Finding(
        code="media.talk_over", severity=Severity.WARNING,
        title=f"Talk-over: the callee kept speaking {worst.duration_ms / 1000:.1f} s over the caller",
        explanation=f"The caller started speaking while the callee was ({worst.start - call.answer:.1f} s after "
                    f"answer) and the callee went on for {worst.duration_ms / 1000:.1f} s with both speaking"
                    + (f" ({len(over)} times)" if len(over) > 1 else "") + ". A voice agent that does not stop "
                    "when the caller barges in talks over people.",
        fix="Handle barge-in: stop playback within a few hundred ms of the caller's speech (voice activity on "
            "the incoming audio), and make sure the agent hears the caller while it speaks (no half-duplex path).",
        call_id=call.call_id, frames=_callee_frames(call),
        evidence={"times": len(over), "longest_ms": worst.duration_ms, "at_s": round(worst.start - call.answer, 3),
                  "threshold_ms": limit_ms})


def clipping(call: Call, ctx: Context) -> Iterable[Finding]:
    for side, s in _sides(call):
        c = s.content
        if c.speech_s >= MIN_SPEECH_S and c.clipped_pct >= ctx.thresholds.clipping_pct:
            yield Finding(
                code="media.clipping", severity=Severity.WARNING,
                title=f"Clipped audio: {c.clipped_pct:.1f}% of the speech in {_where(side, s)} at full scale",
                explanation=f"{c.clipped_pct:.2f}% of the samples in its talk spurts sit at the codec's full scale "
                            f"(active speech level {_db(c.level_dbov, 'dBov')}): the audio is too loud somewhere "
                            "before the encoder and its peaks are cut off, which sounds distorted.",
                fix="Lower the gain where the audio is made (microphone, TTS output, a gain stage or AGC in the "
                    "media server); speech belongs near -26 dBov, well below full scale.",
                call_id=call.call_id, frames=[s.first_frame],
                evidence=_about(side, s, clipped_pct=c.clipped_pct, level_dbov=c.level_dbov))


def low_level(call: Call, ctx: Context) -> Iterable[Finding]:
    for side, s in _sides(call):
        c = s.content
        limit = ctx.thresholds.low_level_dbov
        if c.speech_s >= MIN_SPEECH_S and c.level_dbov is not None and c.level_dbov < limit:
            yield Finding(
                code="media.low_level", severity=Severity.WARNING,
                title=f"Very low level: {_where(side, s)} speaks at {c.level_dbov:.0f} dBov",
                explanation=f"The active speech level of its talk spurts is {c.level_dbov:.1f} dBov, more than "
                            f"{-26 - limit:.0f} dB under the -26 dBov that telephony speech is set to (ITU-T P.56 "
                            "active speech level): the listener strains to hear it, and speech recognition "
                            "misses words.",
                fix="Raise the gain where the audio is made (microphone, TTS output level, a gain stage or AGC "
                    "in the media server) and check for a transcoding stage that attenuates.",
                call_id=call.call_id, frames=[s.first_frame],
                evidence=_about(side, s, level_dbov=c.level_dbov, threshold_dbov=limit))


def _db(value: float | None, unit: str = "dBFS") -> str:
    return "none" if value is None else f"{value:.1f} {unit}"
