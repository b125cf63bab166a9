"""Every rule that judges a finished call, listed here in the order their findings are shown. Adding a
diagnosis: one function (call, ctx) -> findings in findings.py, media_rules.py or quality.py, one line
here, one entry in docs/findings.md and a test."""

from __future__ import annotations

from ..report.model import Call, Finding, Stream
from . import content_rules, findings, media_rules, quality, security
from .context import Context
from .thresholds import Thresholds

CALL_RULES = (
    findings.failed_call,
    findings.missing_ack,
    findings.no_final_response,
    findings.dropped_after_30s,
    media_rules.one_way_audio,
    media_rules.nat_addresses,
    media_rules.rtp_source_mismatch,
    media_rules.codec_problems,
    security.srtp_refused,
    security.srtp_downgrade,
    quality.stream_quality,
    media_rules.ssrc_change,
    security.srtp_failures,
    content_rules.silent_media,
    content_rules.late_audio,
    content_rules.slow_turns,
    content_rules.talk_over,
    content_rules.clipping,
    content_rules.low_level,
)


def judge_call(call: Call, ctx: Context) -> list[Finding]:
    return [f for rule in CALL_RULES for f in rule(call, ctx)]


def mark_streams(streams: list[Stream], thresholds: Thresholds) -> None:
    """Each stream says whether it was judged past a limit, so a renderer (the ladder's band colour)
    shows the verdict without judging again."""
    for s in streams:
        s.past_limits = quality.past_limits(s, thresholds)


def judge_stream(stream: Stream, ctx: Context) -> list[Finding]:
    """A stream that belongs to no call in the capture (no SDP announced it): its quality still counts."""
    return list(quality.quality_findings(stream, ctx, None)) + list(security.stream_failures(stream, None))
