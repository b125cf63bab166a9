"""What rules judge a call by besides the call itself: the limits, and how far the capture reaches."""

from __future__ import annotations

from dataclasses import dataclass

from .thresholds import DEFAULT, Thresholds


@dataclass(frozen=True, slots=True)
class Context:
    thresholds: Thresholds = DEFAULT
    capture_end: float | None = None  # time of the capture's last packet: verdicts need it to cover the event
