"""Typed events for monitoring (Prometheus, report/prometheus.py): what happened, in bounded terms.

The same events come from a finished Report (`from_report`, which only reads it) and from a live
capture as it goes (analysis/events.CallWatch, fed the SIP records of the calls in progress at each
refresh, as the Analyzer's on_message hook hands them; the live driver adds `Packets` from the
kernel's counters and `FindingRaised` as findings appear, from its on_finding hook). Consumers
never see a Call-ID: every field is from a bounded set, so metrics built on them keep a bounded
number of series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .model import Report, Severity

# The IANA registry of SIP response codes (Session Initiation Protocol Parameters, Response Codes).
# A status outside it (a peer may send any 100-699) is reported as "other".
REGISTERED_STATUS = frozenset((
    100, 180, 181, 182, 183, 199, 200, 202, 204, 300, 301, 302, 305, 380, 400, 401, 402, 403, 404, 405, 406,
    407, 408, 410, 412, 413, 414, 415, 416, 417, 420, 421, 422, 423, 424, 425, 428, 429, 430, 433, 436, 437,
    438, 439, 440, 469, 470, 480, 481, 482, 483, 484, 485, 486, 487, 488, 489, 491, 493, 494, 500, 501, 502,
    503, 504, 505, 513, 555, 580, 600, 603, 604, 606, 607, 608))


def status_labels(status: int | None) -> tuple[str, str]:
    """(class, code) for a final status: ("4xx", "486"); ("none", "none") when there was none."""
    if status is None or not 100 <= status <= 699:
        return "none", "none"
    return f"{status // 100}xx", str(status) if status in REGISTERED_STATUS else "other"


def finding_label(code: str) -> str:
    """A finding code as a bounded label: codes come from siptool's own catalogue
    (docs/findings.md), except the status in `sip.failed.<status>`, bounded as above."""
    head, _, status = code.rpartition(".")
    if head == "sip.failed":
        return f"{head}.{status_labels(int(status) if status.isdigit() else None)[1]}"
    return code


@dataclass(frozen=True, slots=True)
class CallEnded:
    """An INVITE session reached its final response (or the capture ended without one: status None)."""

    status: int | None
    pdd_ms: float | None


@dataclass(frozen=True, slots=True)
class ActiveCalls:
    """INVITE sessions in progress now (no final failure, no BYE yet)."""

    count: int


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """An RTP stream's figures once judged."""

    media: str
    loss_pct: float
    mos: float | None


@dataclass(frozen=True, slots=True)
class FindingRaised:
    code: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class Packets:
    """Packets captured and dropped by the kernel since the last such event (increments)."""

    captured: int
    kernel_drops: int = 0


Event = CallEnded | ActiveCalls | StreamEnded | FindingRaised | Packets


def from_report(report: Report) -> Iterator[Event]:
    """Every event a finished Report stands for: its calls, streams, findings and packets."""
    for call in report.calls:
        if call.kind == "call":
            yield CallEnded(call.final_status, call.pdd_ms)
        for stream in call.streams:
            yield StreamEnded(stream.media, stream.loss_pct, stream.mos)
    for stream in report.streams:
        yield StreamEnded(stream.media, stream.loss_pct, stream.mos)
    drops = 0
    for f in report.all_findings():
        yield FindingRaised(f.code, f.severity)
        if f.code == "capture.kernel_drops":
            drops += int(f.evidence.get("kernel_drops", 0))
    yield Packets(report.capture.packets, drops)
    yield ActiveCalls(sum(1 for c in report.calls if c.kind == "call" and c.state in ("answered", "in-progress")))
