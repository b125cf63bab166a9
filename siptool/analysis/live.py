"""What a live run shows while it captures, kept up as the capture is read rather than read back from
the Analyzer's state: the calls in progress and the latest failures (from the Analyzer's on_message
hook), the findings so far (on_finding), and the media of the calls shown, measured over the last
seconds by the MediaTracker's own statistics. `snapshot()` hands it over as report.live.LiveSnapshot."""

from __future__ import annotations

from collections import OrderedDict, deque

from ..report.live import ActiveCall, FailedCall, LiveSnapshot, Progress
from ..report.model import Call, Finding
from ..sip.dialogs import SipCall
from ..sip.message import SipMessage

SHOWN_CALLS = 15  # the latest calls in progress a snapshot lists
SHOWN_FAILURES = 8
SHOWN_FINDINGS = 8
WINDOW_S = 10.0  # a call's loss and jitter are over the last this many seconds of each stream


class LiveCalls:
    """Calls in progress and recent failures, from each SIP message as the Analyzer takes it."""

    def __init__(self, shown: int = SHOWN_CALLS, failures: int = SHOWN_FAILURES, findings: int = SHOWN_FINDINGS,
                 window_s: float = WINDOW_S) -> None:
        self.shown, self.window_s = shown, window_s
        self.active: dict[int, tuple[SipCall, Call]] = {}  # id(record) -> record and its Call, oldest first
        self.failed: OrderedDict[int, FailedCall] = OrderedDict()  # the latest failures
        self._failed_ids: set[int] = set()  # every call that failed (the count)
        self._failures_kept = failures
        self.findings: deque[Finding] = deque(maxlen=findings)
        self.findings_total = 0

    def message(self, msg: SipMessage, record: SipCall, call: Call) -> None:
        """The Analyzer's on_message hook: where the message's call now stands."""
        if record.kind != "call":
            return
        key, hop = id(record), record.hops[-1]
        if hop.method == "INVITE" and hop.status is not None and hop.status >= 200 and hop.status not in (401, 407):
            if hop.status >= 300 and record.answer is None:  # its latest final response is a failure
                self.active.pop(key, None)
                self._failed_ids.add(key)
                self.failed.pop(key, None)
                self.failed[key] = FailedCall(record.start, record.call_id, record.from_user, record.to_user,
                                              hop.status, hop.label.partition(" ")[2])
                while len(self.failed) > self._failures_kept:
                    self.failed.popitem(last=False)
                return
            self._failed_ids.discard(key)  # answered after all (a retry on the same Call-ID)
            self.failed.pop(key, None)
        if key in self._failed_ids:
            return
        if record.end is None:
            self.active.setdefault(key, (record, call))
        else:
            self.active.pop(key, None)

    def finding(self, finding: Finding) -> None:
        """The Analyzer's on_finding hook."""
        self.findings.append(finding)
        self.findings_total += 1

    def snapshot(self, media, now: float | None, source: str, elapsed_s: float, packets: int, sip_packets: int,
                 kernel_drops: int | None, writing: str = "") -> LiveSnapshot:
        """This moment: `media` is the Analyzer's MediaTracker (or None), `now` the capture's latest time."""
        shown = sorted(self.active.values(), key=lambda rc: rc[0].start)[-self.shown:]
        figures = media.live_figures([call for _, call in shown], self.window_s) if media is not None else {}
        active = []
        for record, call in shown:
            m = figures.get(id(call))
            progress = Progress.ANSWERED if record.answer else Progress.RINGING if record.ringing else Progress.TRYING
            active.append(ActiveCall(
                record.call_id, record.from_user, record.to_user, progress,
                max(0.0, (now or record.start) - record.start), m.packets if m else 0,
                100.0 * m.lost / m.expected if m and m.expected else 0.0, m.jitter_ms if m else 0.0))
        return LiveSnapshot(
            source=source, elapsed_s=elapsed_s, packets=packets, sip_packets=sip_packets, kernel_drops=kernel_drops,
            writing=writing, window_s=self.window_s, active_total=len(self.active), active=active,
            failed_total=len(self._failed_ids), failed=sorted(self.failed.values(), key=lambda f: f.start),
            findings_total=self.findings_total, findings=list(self.findings))
