"""Typed events for monitoring (Prometheus, report/prometheus.py): what happened, in bounded terms.

The same events come from a finished Report (`from_report`, which only reads it; `from_call` for
one call), from a live run as it goes (analysis/events.LiveEvents, a live run's observer: calls at
their final response, findings as they are made, streams as they close, packets and kernel drops
at each refresh), and from the echo agent (agent/echo_metrics.py: its calls, the packets it echoed,
the requests it turned away). Consumers never see a Call-ID: every field is from a bounded set, so
metrics built on them keep a bounded number of series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .model import Call, Report, Severity

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


# The echo agent's own (siptool echo --metrics): how its calls ended, what it echoed, what it turned away.
ECHO_OUTCOMES = frozenset(("ended", "cancelled", "rejected", "unanswered", "ringing"))  # agent/session.py
REFUSALS = ("rate_limit", "max_calls", "malformed")  # why the echo turned requests away


@dataclass(frozen=True, slots=True)
class EchoCallEnded:
    """A call the echo agent answered (or accepted and then refused) is over: how (ECHO_OUTCOMES)."""

    outcome: str


@dataclass(frozen=True, slots=True)
class Echoed:
    """RTP packets echoed since the last such event (an increment)."""

    packets: int


@dataclass(frozen=True, slots=True)
class Refused:
    """Requests the echo agent turned away since the last such event, for one of REFUSALS: over its
    source's rate limit (dropped unread), over --max-calls (503), malformed (400 or dropped)."""

    reason: str
    count: int


Event = CallEnded | ActiveCalls | StreamEnded | FindingRaised | Packets | EchoCallEnded | Echoed | Refused


def from_call(call: Call) -> Iterator[Event]:
    """A finished call's events: how it ended (INVITE sessions), its streams and its findings."""
    if call.kind == "call":
        yield CallEnded(call.final_status, call.pdd_ms)
    for stream in call.streams:
        yield StreamEnded(stream.media, stream.loss_pct, stream.mos)
    for f in call.findings:
        yield FindingRaised(f.code, f.severity)


def from_report(report: Report) -> Iterator[Event]:
    """Every event a finished Report stands for: its calls, streams, findings and packets."""
    for call in report.calls:
        yield from from_call(call)
    for stream in report.streams:
        yield StreamEnded(stream.media, stream.loss_pct, stream.mos)
    for f in report.findings:
        yield FindingRaised(f.code, f.severity)
    yield Packets(report.capture.packets, kernel_drops(report))
    yield ActiveCalls(active_at_end(report))


def active_at_end(report: Report) -> int:
    """INVITE sessions still up (answered, or waiting for a final response) when the capture ended."""
    return sum(1 for c in report.calls if c.kind == "call" and c.state in ("answered", "in-progress"))


def kernel_drops(report: Report) -> int:
    """Packets the kernel dropped before siptool read them, as the report's findings say (the capture
    ring's, or the HEP listener's UDP socket's)."""
    return sum(int(f.evidence.get("kernel_drops", 0)) for f in report.findings
               if f.code in ("capture.kernel_drops", "hep.dropped"))
