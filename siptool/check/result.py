"""What a check produces: pass/fail, figures, findings and the text ladder of its signalling."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..report.model import Finding
from ..status import ExitStatus

PASS, FAIL, ERROR, SKIPPED = "pass", "fail", "error", "skipped"
STATUSES = (PASS, FAIL, ERROR, SKIPPED)


@dataclass
class CheckResult:
    name: str
    type: str
    status: str = PASS  # pass, fail (an expectation was not met), error (could not run), skipped (could
    # not judge: nothing was tested, e.g. the target answered before the CANCEL; never a pass)
    message: str = ""  # one line: why it failed, or what it measured
    duration_s: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)  # pdd_ms, mos_tx, loss_pct_rx, ...
    findings: list[Finding] = field(default_factory=list)
    ladder: str = ""  # text ladder of the signalling the check exchanged

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def skip(self, message: str) -> None:
        """The check could not judge the target (nothing was tested); a failure already found stays."""
        if self.status == PASS:
            self.status, self.message = SKIPPED, message

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
        """Every check ran and passed (a skipped check is not a pass)."""
        return bool(self.results) and all(r.passed for r in self.results)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def counts(self) -> dict[str, int]:
        return {s: self.count(s) for s in STATUSES}

    def exit_status(self, allow_skipped: bool = False) -> ExitStatus:
        """0 when every check passed; 1 when one failed or could not run, or was skipped (unless
        `allow_skipped`: then skipped checks are reported but do not fail the run)."""
        bad = self.count(FAIL) + self.count(ERROR) + (0 if allow_skipped else self.count(SKIPPED))
        return ExitStatus.FAILED if bad or not self.results else ExitStatus.OK

    def summary(self) -> str:
        """'7 passed, 1 failed, 2 skipped of 10'; 'all 10 checks passed' only when every check passed."""
        n = len(self.results)
        if self.passed:
            return f"all {n} checks passed"
        c = self.counts()
        errors = f"{c[ERROR]} error" + ("s" if c[ERROR] != 1 else "")
        parts = [f"{c[PASS]} passed"] + [w for s, w in ((FAIL, f"{c[FAIL]} failed"), (ERROR, errors),
                                                        (SKIPPED, f"{c[SKIPPED]} skipped")) if c[s]]
        return ", ".join(parts) + f" of {n}"


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
