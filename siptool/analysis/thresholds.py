"""The limits calls are judged by: one object, passed in, the same for `analyze` (findings), `call`
(its verdict) and a check suite's [thresholds] (docs/findings.md lists the defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Limits. `jitter_ms` judges a stream's maximum RFC 3550 interarrival jitter over its voice
    packets (tshark's "Max Jitter" without RFC 4733 events; a test call's sent direction, which only
    the far end measures, by the jitter of its last RTCP report); loss is lost / expected (RFC 3550
    A.3); MOS the ITU-T G.107 E-model's. `pdd_ms` and `media_gap_s` judge test calls."""

    loss_pct: float = 1.0  # media.loss from this packet loss %, a warning ...
    loss_pct_error: float = 5.0  # ... an error from this one
    jitter_ms: float = 30.0  # media.jitter from this maximum interarrival jitter
    mos: float = 3.6  # media.mos below this E-model MOS, a warning ...
    mos_error: float = 3.1  # ... an error below this one
    pdd_ms: float = 5000.0  # a test call fails above this post-dial delay (INVITE to first 18x/2xx, RFC 6076)
    media_gap_s: float = 2.0  # a test call fails when the far end's RTP stops this long (a media timeout)
    # capacity.concurrency_limit: failures of one status (503/486/480) that begin at a concurrency level:
    onset_failures: int = 3  # at least this many of them ...
    onset_below: int = 10  # ... none among at least this many attempts that arrived with fewer calls up ...
    onset_pct: float = 50.0  # ... and at least this percent of the attempts from that level up
    # Content analysis (docs/findings.md says where each default comes from):
    response_ms: float = 800.0  # media.slow_turns: the far side's response gap above this
    greeting_ms: float = 2000.0  # media.late_audio: the answering side's first speech (its greeting) later than this
    talk_over_s: float = 1.0  # media.talk_over: the answering side speaks this long over the caller
    silent_gap_s: float = 3.0  # media.silent: digital silence this long mid-call, in a stream whose pauses carry sound
    clipping_pct: float = 0.5  # media.clipping: this % of the speech samples at full scale
    low_level_dbov: float = -38.0  # media.low_level: active speech level below this

    @classmethod
    def from_limits(cls, loss_pct: float = 1.0, jitter_ms: float = 30.0, mos: float = 3.6, pdd_ms: float = 5000.0,
                    media_gap_s: float = 2.0) -> "Thresholds":
        """The user-facing limits (--loss/--jitter/--mos/--pdd/--max-gap, a suite's [thresholds]); the
        error levels follow them."""
        return cls(loss_pct=loss_pct, loss_pct_error=max(5.0, loss_pct), jitter_ms=jitter_ms, mos=mos,
                   mos_error=min(3.1, mos), pdd_ms=pdd_ms, media_gap_s=media_gap_s)

    # One meaning wherever a limit is applied (analysis rules, a test call's verdict, a check):
    def too_lossy(self, loss_pct: float) -> bool:
        """At or above the loss limit (and some loss: a limit of 0 means none allowed)."""
        return loss_pct >= self.loss_pct and loss_pct > 0

    def too_jittery(self, jitter_ms: float) -> bool:
        return jitter_ms >= self.jitter_ms and jitter_ms > 0

    def too_low(self, mos: float | None) -> bool:
        return mos is not None and mos < self.mos


LIMITS = ("loss_pct", "jitter_ms", "mos", "pdd_ms", "media_gap_s")  # what a suite's [thresholds] may set


DEFAULT = Thresholds()
