"""SIP's records of a call (sip/dialogs.py) mapped into the Report's Call and LadderStep, with the
RFC 6076 delays measured from them: post-dial delay, answer time, session duration."""

from __future__ import annotations

from ..report.model import Call, LadderStep
from ..sip.dialogs import MessageHop, SipCall


def new_call(record: SipCall) -> Call:
    """The Report's Call for a record just begun: findings, SDP and streams gather on it while the
    capture is read; `fill` copies what SIP knows once the call is finished."""
    return Call(call_id=record.call_id)


def fill(call: Call, record: SipCall, capture_end: float | None) -> Call:
    """Move a finished record into its Call (its messages become the ladder, one step each) and measure
    its delays."""
    call.kind, call.method, call.transport = record.kind, record.method, record.transport
    call.from_uri, call.to_uri, call.from_user, call.to_user = (record.from_uri, record.to_uri, record.from_user,
                                                                 record.to_user)
    call.caller, call.callee = record.caller, record.callee
    call.final_status, call.final_reason, call.state = record.final_status, record.final_reason, record.state
    call.start, call.first_provisional, call.ringing = record.start, record.first_provisional, record.ringing
    call.answer, call.end, call.ended_by, call.end_reason = record.answer, record.end, record.ended_by, record.end_reason
    call.messages, call.retransmissions = record.messages, record.retransmissions
    call.reinvites, call.auth_challenges = record.reinvites, record.auth_challenges
    call.dialogs, call.requests, call.responses = record.dialogs, record.requests, record.responses
    call.ladder = [_step(h) for h in record.hops]
    record.hops.clear()  # the messages live on in the ladder: memory holds them once
    if record.kind == "call":
        call.ack_missing, call.ok_retransmissions = record.ack_missing, record.ok_retransmissions
        _delays(call, record.invite_time, capture_end)
    return call


def _step(h: MessageHop) -> LadderStep:
    return LadderStep(h.frame, h.time, h.src, h.dst, h.transport, h.label, h.method, h.status, h.cseq,
                      h.retransmission, h.sdp, h.summary, h.side)


def _delays(call: Call, invite_time: float | None, capture_end: float | None) -> None:
    """RFC 6076 4.2 session request delay: INVITE to the first non-100 provisional, else to the final
    response (a digest challenge is not one); INVITE to answer; answer to BYE, or to the capture's end
    while still up. Without the INVITE in the capture there is nothing to measure the first two from."""
    reply = call.first_provisional
    if reply is None:
        reply = next((s.time for s in call.ladder if s.status and s.status >= 200 and s.method == "INVITE"
                      and s.status not in (401, 407)), None)
    call.pdd_ms = round((reply - invite_time) * 1000, 3) if reply is not None and invite_time is not None \
        else None
    if call.answer is not None:
        call.answer_ms = round((call.answer - invite_time) * 1000, 3) if invite_time is not None else None
        stop = call.end if call.end is not None else capture_end
        call.duration_s = round(stop - call.answer, 3) if stop is not None else None
