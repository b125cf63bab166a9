"""What a check produces: pass/fail, figures, findings and the text ladder of its signalling."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..report.model import Finding

PASS, FAIL, ERROR, SKIPPED = "pass", "fail", "error", "skipped"


@dataclass
class CheckResult:
    name: str
    type: str
    status: str = PASS  # pass, fail (an expectation was not met), error (could not run), skipped
    message: str = ""  # one line: why it failed, or what it measured
    duration_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)  # pdd_ms, mos_tx, loss_pct_rx, ...
    findings: list[Finding] = field(default_factory=list)
    ladder: str = ""  # text ladder of the signalling the check exchanged

    @property
    def passed(self) -> bool:
        return self.status in (PASS, SKIPPED)

    def fail(self, message: str) -> None:
        """Record a failed expectation; the first message stays the headline, later ones are appended."""
        self.status = FAIL if self.status != ERROR else ERROR
        self.message = f"{self.message}; {message}" if self.message and self.status == FAIL else message


@dataclass
class SuiteResult:
    name: str
    target: str
    results: list[CheckResult] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    duration_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def ladder_text(steps, origin: float | None = None) -> str:
    """A Call's LadderSteps as plain text, one message a line:  +0.012s  A:5060 -> B:5060  INVITE (SDP)."""
    steps = list(steps)
    if not steps:
        return ""
    t0 = steps[0].time if origin is None else origin
    width = max(len(s.src) for s in steps)
    lines = []
    for s in steps:
        extra = []
        if s.sdp:
            extra.append("SDP")
        if s.summary:
            extra.append(s.summary)
        if s.retransmission:
            extra.append("retransmission")
        tail = f" ({', '.join(extra)})" if extra else ""
        lines.append(f"+{s.time - t0:8.3f}s  {s.src:>{width}} -> {s.dst}  {s.label}{tail}")
    return "\n".join(lines)
