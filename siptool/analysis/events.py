"""Events from a live run as it goes (the event types, and a finished Report's own, are in
report/events.py).

`LiveEvents` is a live run's observer (drivers/live.LiveRun): it turns what the Analyzer hands its
hooks into events for a consumer (`emit`, e.g. report/prometheus.Exporter.apply): each call once,
at its final response (CallWatch); findings as they are made; streams as they close (the media
tracker's `on_stream`); the calls in progress and the packets read at each refresh. At the end it
adds what only the finished Report knows (calls that never got a final response, findings made at
the end), so that what a run emitted adds up to what its Report stands for (`from_report`).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable

from ..report.events import REGISTERED_STATUS, ActiveCalls, CallEnded, Event, FindingRaised, Packets, StreamEnded, \
    active_at_end, finding_label, from_report, kernel_drops, status_labels
from ..report.live import LiveSnapshot
from ..report.model import Call, Finding, Report, Stream
from ..sip.dialogs import SipCall
from ..sip.message import SipMessage

__all__ = ["CallWatch", "LiveEvents", "REGISTERED_STATUS", "ActiveCalls", "CallEnded", "Event", "FindingRaised",
           "Packets", "StreamEnded", "finding_label", "from_report", "status_labels"]


class CallWatch:
    """Each INVITE session's end, once: at the first final response to its INVITE (a 401/407
    challenge is not final: the caller answers it), from SIP's record of the call as the
    Analyzer's on_message hook hands it over. The PDD is RFC 6076 4.2's, as the analysis measures
    it: INVITE to the first provisional other than 100, else to the final response.

    It remembers the Calls it counted (by identity: the Analyzer keeps them until its finish), so
    that `finish()` can count the others as the Report ends them."""

    def __init__(self) -> None:
        self._counted: set[int] = set()

    def message(self, record: SipCall, call: Call) -> CallEnded | None:
        """The call's end when the message just added to `record` is its first final response."""
        hop = record.hops[-1]
        status = hop.status
        if status is None or status < 200 or status in (401, 407) or hop.method != "INVITE" \
                or record.kind != "call" or id(call) in self._counted:
            return None
        self._counted.add(id(call))
        invite = next((s.time for s in record.hops if s.method == "INVITE" and s.status is None), None)
        reply = record.first_provisional if record.first_provisional is not None else hop.time
        return CallEnded(status, None if invite is None else round((reply - invite) * 1000, 3))

    def finish(self, calls: Iterable[Call]) -> list[CallEnded]:
        """The INVITE sessions not counted yet (no final response came), as the Report ends them."""
        out = [CallEnded(c.final_status, c.pdd_ms) for c in calls if c.kind == "call" and id(c) not in self._counted]
        self._counted.clear()
        return out


class LiveEvents:
    """A live run's observer that emits events as the run goes (see the module's text)."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self.calls = CallWatch()
        self._raised: Counter[tuple[str, str]] = Counter()  # findings emitted live, by code and severity
        self._packets = self._drops = 0

    def message(self, msg: SipMessage, record: SipCall, call: Call) -> None:
        ended = self.calls.message(record, call)
        if ended is not None:
            self.emit(ended)

    def finding(self, finding: Finding) -> None:
        self._raised[(finding.code, finding.severity)] += 1
        self.emit(FindingRaised(finding.code, finding.severity))

    def stream(self, stream: Stream) -> None:
        self.emit(StreamEnded(stream.media, stream.loss_pct, stream.mos))

    def update(self, snapshot: LiveSnapshot) -> None:
        self.emit(ActiveCalls(snapshot.active_total))
        self._read(snapshot.packets, snapshot.kernel_drops or 0)

    def finish(self, report: Report) -> None:
        for ended in self.calls.finish(report.calls):
            self.emit(ended)
        left = Counter((f.code, f.severity) for f in report.all_findings())
        left.subtract(self._raised)
        for (code, severity), n in sorted(left.items()):
            for _ in range(n):
                self.emit(FindingRaised(code, severity))
        self._raised.clear()
        self._read(report.capture.packets, kernel_drops(report))
        self.emit(ActiveCalls(active_at_end(report)))

    def _read(self, packets: int, drops: int) -> None:
        """Packets and kernel drops so far (totals) -> the increment since the last reading."""
        more, lost = max(packets - self._packets, 0), max(drops - self._drops, 0)
        if more or lost:
            self._packets, self._drops = self._packets + more, self._drops + lost
            self.emit(Packets(more, lost))
