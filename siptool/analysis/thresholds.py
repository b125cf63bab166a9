"""The limits findings judge media by: one object, passed in (docs/findings.md lists the defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Media limits. `jitter_ms` judges the stream's maximum RFC 3550 interarrival jitter over its
    voice packets (tshark's "Max Jitter" without RFC 4733 events); loss is tshark's lost / expected (RFC 3550 A.3)."""

    loss_pct: float = 1.0  # media.loss from this packet loss %, a warning ...
    loss_pct_error: float = 5.0  # ... an error from this one
    jitter_ms: float = 30.0  # media.jitter from this maximum interarrival jitter
    mos: float = 3.6  # media.mos below this E-model MOS, a warning ...
    mos_error: float = 3.1  # ... an error below this one

    @classmethod
    def from_limits(cls, loss_pct: float = 1.0, jitter_ms: float = 30.0, mos: float = 3.6) -> "Thresholds":
        """The three user-facing limits (analyze --loss/--jitter/--mos); the error levels follow them."""
        return cls(loss_pct=loss_pct, loss_pct_error=max(5.0, loss_pct), jitter_ms=jitter_ms, mos=mos,
                   mos_error=min(3.1, mos))


DEFAULT = Thresholds()
