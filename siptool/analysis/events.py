"""Typed events for monitoring (Prometheus, report/prometheus.py): what happened, in bounded terms.

The same events come from a finished Report (`from_report`) and from a live capture as it goes
(`CallWatch`, fed the calls in progress at each refresh; the live driver adds `Packets` from the
kernel's counters and `FindingRaised` as findings appear). Consumers never see a Call-ID: every
field is from a bounded set, so metrics built on them keep a bounded number of series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from ..report.model import Call, Report

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
    severity: str


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


def final_response(call: Call) -> tuple[int, float] | None:
    """(status, time) of the first final response to the call's initial INVITE seen so far (a 401/407
    challenge is not final: the caller answers it), from its ladder: what a call in progress has
    before the tracker's finish() fills Call.final_status."""
    for step in call.ladder:
        if step.status is not None and step.status >= 200 and step.method == "INVITE" \
                and step.status not in (401, 407):
            return step.status, step.time
    return None


class CallWatch:
    """Snapshots of the calls in progress -> events: each call's end once, and how many are active.

    Give it the live Call objects at each refresh (the same objects, as the tracker keeps them);
    it remembers which it has reported, by identity, while they are in the snapshots. The PDD is
    RFC 6076 4.2's, as the tracker measures it: INVITE to the first provisional other than 100
    (Call.first_provisional, kept live), else to the final response."""

    def __init__(self) -> None:
        self._ended: set[int] = set()

    def events(self, calls: Iterable[Call]) -> list[Event]:
        out: list[Event] = []
        active = 0
        seen: set[int] = set()
        for call in calls:
            if call.kind != "call":
                continue
            key = id(call)
            seen.add(key)
            final = final_response(call)
            if final is None or (final[0] < 300 and not call.requests.get("BYE")):
                active += 1
            if final is not None and key not in self._ended:
                self._ended.add(key)
                reply = call.first_provisional if call.first_provisional is not None else final[1]
                invite = next((s.time for s in call.ladder if s.method == "INVITE" and s.status is None), None)
                out.append(CallEnded(final[0], None if invite is None else round((reply - invite) * 1000, 3)))
        self._ended &= seen  # calls no longer given are forgotten: memory follows the snapshot
        out.append(ActiveCalls(active))
        return out
