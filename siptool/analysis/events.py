"""Events from a live capture as it goes: which calls in progress reached their final response, and
how many are active (the event types and the Report's own events are in report/events.py)."""

from __future__ import annotations

from typing import Iterable

from ..report.events import REGISTERED_STATUS, ActiveCalls, CallEnded, Event, FindingRaised, Packets, StreamEnded, \
    finding_label, from_report, status_labels
from ..sip.dialogs import SipCall

__all__ = ["CallWatch", "final_response", "REGISTERED_STATUS", "ActiveCalls", "CallEnded", "Event", "FindingRaised",
           "Packets", "StreamEnded", "finding_label", "from_report", "status_labels"]


def final_response(call: SipCall) -> tuple[int, float] | None:
    """(status, time) of the first final response to the call's initial INVITE seen so far (a 401/407
    challenge is not final: the caller answers it), from its messages: what a call in progress has
    before the tracker's finish() decides its final status."""
    for step in call.hops:
        if step.status is not None and step.status >= 200 and step.method == "INVITE" \
                and step.status not in (401, 407):
            return step.status, step.time
    return None


class CallWatch:
    """Snapshots of the calls in progress -> events: each call's end once, and how many are active.

    Give it the SIP records of the calls at each refresh (sip.dialogs.SipCall: the same objects, as
    the Analyzer's on_message hook hands them); it remembers which it has reported, by identity,
    while they are in the snapshots. The PDD is RFC 6076 4.2's, as the analysis measures it: INVITE
    to the first provisional other than 100 (SipCall.first_provisional, kept live), else to the
    final response."""

    def __init__(self) -> None:
        self._ended: set[int] = set()

    def events(self, calls: Iterable[SipCall]) -> list[Event]:
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
                invite = next((s.time for s in call.hops if s.method == "INVITE" and s.status is None), None)
                out.append(CallEnded(final[0], None if invite is None else round((reply - invite) * 1000, 3)))
        self._ended &= seen  # calls no longer given are forgotten: memory follows the snapshot
        out.append(ActiveCalls(active))
        return out
