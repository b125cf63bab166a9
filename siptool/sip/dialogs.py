"""Passive call tracking: SIP messages seen on the wire -> calls, dialogs, transactions (RFC 3261 12, 17).

A `CallTracker` takes (message, hop) events in capture order and keeps one `SipCall` record per
Call-ID: the usual unit for people (sngrep and tshark group the same way). Inside a call, forked
early dialogs are told apart by To-tag and transactions by CSeq; retransmissions are flagged.
The records are SIP's own (`SipCall`, `MessageHop`); analysis/calls.py maps them into the Report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .message import SipMessage
from .uri import name_addr, uri_user


# Requests that make a transaction of their own outside any dialog (RFC 3261 10, 11; RFC 3903; RFC 3428)
STANDALONE = frozenset(("REGISTER", "OPTIONS", "PUBLISH", "MESSAGE"))
ACK_DUE_S = 0.5  # T1: a UAS without the ACK re-sends its 2xx after this long (RFC 3261 13.3.1.4)


class CallState(StrEnum):
    """Where a dialog stood when the capture (or the test call) ended. A str: JSON and filters see the value."""

    ANSWERED = "answered"  # a 2xx and still up
    COMPLETED = "completed"  # answered and ended by BYE (a non-INVITE: a 2xx final response)
    FAILED = "failed"  # a 3xx-6xx final response
    CANCELLED = "cancelled"  # CANCEL before the final response (487)
    IN_PROGRESS = "in-progress"  # no final response yet (ringing)
    NO_RESPONSE = "no-response"  # a non-INVITE request that got no final response


@dataclass(slots=True)
class Hop:
    """Where and when a message was seen."""

    frame: int
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    transport: str  # "UDP" / "TCP"

    @property
    def source(self) -> str:
        """"ip:port" ("[ip]:port" for IPv6)."""
        return _endpoint(self.src, self.sport)

    @property
    def destination(self) -> str:
        return _endpoint(self.dst, self.dport)


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(slots=True)
class MessageHop:
    """One message of a call as it passed: where and when it was seen, and what it was."""

    frame: int
    time: float
    src: str  # "ip:port" ("[ip]:port" for IPv6)
    dst: str
    transport: str  # UDP, TCP
    label: str  # "INVITE" or "180 Ringing"
    method: str | None  # request method, or the CSeq method of a response
    status: int | None  # response code, None for requests
    cseq: int
    retransmission: bool
    sdp: bool  # carries an SDP body
    summary: str  # Retry-After or Reason, worth showing beside the message
    side: str  # who sent it: "caller" or "callee" (from the dialog's tags), "" when unknown


@dataclass(slots=True)
class SipCall:
    """Messages sharing a Call-ID (an INVITE session or a non-INVITE exchange: REGISTER, OPTIONS...), as
    SIP tells them: who, the messages, the times of the events that matter, and once `finish`ed, how it
    ended (RFC 3261 13, 15, 17)."""

    call_id: str
    kind: str  # "call" for INVITE sessions, else the first method in lower case ("register", ...)
    method: str  # first request method seen
    from_uri: str
    to_uri: str
    from_user: str
    to_user: str
    caller: str  # ip:port that sent the first request
    callee: str  # ip:port it went to
    transport: str
    start: float  # the first message; once finished, the INVITE when there is one
    hops: list[MessageHop] = field(default_factory=list)
    messages: int = 0
    retransmissions: int = 0
    reinvites: int = 0
    auth_challenges: int = 0
    dialogs: list[str] = field(default_factory=list)  # to-tags of the (early) dialogs, forks
    requests: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)  # "180 INVITE" -> count
    first_provisional: float | None = None
    ringing: float | None = None
    answer: float | None = None
    end: float | None = None
    ended_by: str | None = None  # caller, callee, or None
    invite_sdp: bool | None = None  # the latest INVITE request carried SDP (None: no INVITE seen)
    # How it ended, set by CallTracker.calls():
    final_status: int | None = None
    final_reason: str = ""
    state: CallState | None = None
    invite_time: float | None = None  # the first INVITE request
    end_reason: str = ""
    ack_missing: bool = False  # a 2xx to the INVITE was never ACKed in the capture
    ok_retransmissions: int = 0  # 2xx to the INVITE sent again (a sign the ACK is not arriving)


@dataclass
class _Track:
    """Per-call bookkeeping that the record does not carry."""

    call: SipCall
    from_tag: str | None = None  # the caller's tag, from the first request
    initial_cseqs: set[int] = field(default_factory=set)  # CSeq numbers of out-of-dialog INVITEs
    invite_finals: list[int] = field(default_factory=list)  # final codes to INVITEs, in order
    first_finals: list[int] = field(default_factory=list)  # final codes to the first method
    invite_2xx_frames: list[int] = field(default_factory=list)
    invite_2xx_cseqs: set[int] = field(default_factory=set)  # CSeq numbers the 2xx answered
    ack_after_2xx: bool = False
    cancel_time: float | None = None
    bye_reason: str = ""


class CallTracker:
    """Feed `add(msg, hop)` in capture order, then `calls()` for the finished SipCall records."""

    def __init__(self) -> None:
        self._tracks: dict[tuple[str, str], _Track] = {}  # (Call-ID, standalone method or "") -> track
        self._last: dict[tuple, list] = {}  # per direction and Call-ID: [cseq, method, seen, code]
        self._addrs: dict[tuple[str, int], str] = {}  # one "ip:port" string per address

    def _addr(self, ip: str, port: int) -> str:
        """"ip:port" ("[ip]:port" for IPv6), one string per address however many messages carry it."""
        text = self._addrs.get((ip, port))
        if text is None:
            if len(self._addrs) > 65536:
                self._addrs.clear()
            text = self._addrs[(ip, port)] = _endpoint(ip, port)
        return text

    def __len__(self) -> int:
        return len(self._tracks)

    def _key(self, call_id: str, msg: SipMessage, cseq_method: str) -> tuple[str, str]:
        """Which record a message belongs to. A standalone exchange (REGISTER, out-of-dialog OPTIONS...)
        is kept apart from an INVITE session or SUBSCRIBE dialog that shares its Call-ID (SIPp and some
        phones reuse one Call-ID for REGISTER and INVITE; RFC 3261 10.2 asks registrations to keep one)."""
        if cseq_method in STANDALONE and not (msg.to_tag and (call_id, "") in self._tracks
                                              and cseq_method != "REGISTER"):
            return call_id, cseq_method
        return call_id, ""

    def add(self, msg: SipMessage, hop: Hop) -> SipCall:
        """Take one message; returns the record of its call, its MessageHop last in `hops`."""
        call_id = msg.call_id or "<no Call-ID>"
        cseq_num, cseq_method = msg.cseq
        if not cseq_method and msg.is_request:
            cseq_method = (msg.method or "").upper()
        key = self._key(call_id, msg, cseq_method)
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = self._new(call_id, msg, hop, cseq_method)
        call = track.call
        if not call.method and msg.is_request:
            call.method = msg.method
        retrans = self._is_retransmission(call_id, msg, hop, cseq_num, cseq_method)
        call.messages += 1
        if retrans:
            call.retransmissions += 1
        sdp = bool(msg.body) and "sdp" in (msg.get("content-type") or "").lower()
        call.hops.append(MessageHop(
            hop.frame, hop.time, self._addr(hop.src, hop.sport), self._addr(hop.dst, hop.dport), hop.transport,
            msg.label, msg.method if msg.is_request else cseq_method, msg.status, cseq_num, retrans, sdp,
            _summary(msg), _side(track, msg)))
        if msg.is_request:
            call.requests[msg.method] = call.requests.get(msg.method, 0) + 1
            self._request(track, msg, hop, cseq_num, retrans)
        else:
            key = f"{msg.status} {cseq_method}"
            call.responses[key] = call.responses.get(key, 0) + 1
            self._response(track, msg, hop, cseq_num, cseq_method, retrans)
        return call

    def _new(self, call_id: str, msg: SipMessage, hop: Hop, cseq_method: str) -> _Track:
        _, from_uri = name_addr(msg.get("from") or "")
        _, to_uri = name_addr(msg.get("to") or "")
        first = msg.method if msg.is_request else cseq_method
        source, destination = self._addr(hop.src, hop.sport), self._addr(hop.dst, hop.dport)
        caller, callee = (source, destination) if msg.is_request else (destination, source)
        call = SipCall(call_id=call_id, kind="call" if first == "INVITE" else (first or "unknown").lower(),
                       method=msg.method or "", from_uri=from_uri, to_uri=to_uri, from_user=uri_user(from_uri),
                       to_user=uri_user(to_uri), caller=caller, callee=callee, transport=hop.transport,
                       start=hop.time)
        return _Track(call=call, from_tag=msg.from_tag)

    def _is_retransmission(self, call_id, msg, hop, cseq_num, cseq_method) -> bool:
        """Same request or final response again in the same direction, by tshark's 'resent' rule.

        UDP only (TCP is reliable). Per direction and Call-ID the last CSeq is remembered with what
        was seen for it; a request is resent if its CSeq and method match and no response was seen
        since in that direction (ACK and CANCEL never count); a final response is resent if the same
        code was the last final response for that CSeq.
        """
        if hop.transport != "UDP" or cseq_num < 0:
            return False
        key = (call_id, hop.src, hop.sport, hop.dst, hop.dport)
        state = self._last.get(key)
        if state is None:
            state = self._last[key] = [cseq_num, cseq_method, "none", 0]
            compare = None
        else:
            compare = state[0]
            if cseq_num != state[0]:
                state[:] = [cseq_num, cseq_method, "none", 0]
        same = cseq_num == compare and cseq_method == state[1]
        if msg.is_request:
            resent = same and state[2] == "request" and cseq_method not in ("ACK", "CANCEL")
            state[2] = "request"
        else:
            resent = same and state[2] == "final" and msg.status >= 200 and msg.status == state[3]
            if msg.status >= 200:
                state[2], state[3] = "final", msg.status
            else:
                state[2] = "provisional"
        return resent

    def _request(self, track: _Track, msg: SipMessage, hop: Hop, cseq: int, retrans: bool) -> None:
        call = track.call
        method = msg.method
        if method == "INVITE":
            self._become_call(track)
            call.invite_sdp = call.hops[-1].sdp
            if msg.to_tag is None:  # out of dialog: the first INVITE, or a retry after 401/407/3xx
                track.initial_cseqs.add(cseq)
            elif not retrans:
                call.reinvites += 1
        elif method == "ACK":
            # The ACK for a 2xx has the INVITE's CSeq number (RFC 3261 13.2.2.4): matched to the 2xx,
            # so it counts even when the INVITE itself was not captured.
            if cseq in track.invite_2xx_cseqs:
                track.ack_after_2xx = True
        elif method == "CANCEL":
            if track.cancel_time is None:
                track.cancel_time = hop.time
        elif method == "BYE" and call.end is None and call.kind == "call":
            call.end = hop.time
            tag = msg.from_tag
            call.ended_by = "caller" if tag is not None and tag == track.from_tag else "callee"
            track.bye_reason = msg.get("reason") or ""

    @staticmethod
    def _become_call(track: _Track) -> None:
        """An INVITE on this Call-ID (perhaps after a REGISTER on the same one) makes it a call."""
        track.call.kind = "call"

    def _response(self, track: _Track, msg: SipMessage, hop: Hop, cseq: int, method: str, retrans: bool) -> None:
        call = track.call
        status = msg.status
        if method == "INVITE":
            self._become_call(track)
            initial = cseq in track.initial_cseqs or not track.initial_cseqs
            if not initial:
                if status >= 200:
                    track.invite_finals.append(status)
                return
            tag = msg.to_tag
            if tag and status > 100 and tag not in call.dialogs:
                call.dialogs.append(tag)
            if 100 < status < 200:
                if call.first_provisional is None:
                    call.first_provisional = hop.time
                if status in (180, 183) and call.ringing is None:
                    call.ringing = hop.time
            elif status >= 200:
                if not retrans:
                    track.invite_finals.append(status)
                if 200 <= status < 300:
                    if call.answer is None:
                        call.answer = hop.time
                    elif retrans:
                        call.ok_retransmissions += 1
                    track.invite_2xx_frames.append(hop.frame)
                    track.invite_2xx_cseqs.add(cseq)
                elif status in (401, 407):
                    call.auth_challenges += 1 if not retrans else 0
        elif status >= 200 and method == (call.method or method):
            track.first_finals.append(status)

    def calls(self, capture_end: float | None = None) -> list[SipCall]:
        """Finish every call: final status, state, how it ended."""
        return [self._finish(t, capture_end) for t in self._tracks.values()]

    def in_progress(self) -> list[SipCall]:
        """The records so far, unfinished (a live view reads them)."""
        return [t.call for t in self._tracks.values()]

    def _finish(self, track: _Track, capture_end: float | None) -> SipCall:
        call = track.call
        if call.kind == "call":
            finals = track.invite_finals
        else:
            finals = track.first_finals
        final = next((c for c in finals if 200 <= c < 300), finals[-1] if finals else None)
        call.final_status = final
        call.final_reason = _reason(call, final)
        if call.kind != "call":
            call.state = (CallState.COMPLETED if final and final < 300
                          else CallState.FAILED if final else CallState.NO_RESPONSE)
            call.end = call.hops[-1].time if call.hops else call.start
            return call
        call.invite_time = next((s.time for s in call.hops if s.method == "INVITE" and s.status is None), None)
        if call.invite_time is not None:
            call.start = call.invite_time
        if call.answer is not None:
            if call.end is None:
                call.state = CallState.ANSWERED
                call.end_reason = "still up when the capture ended"
            else:
                call.state = CallState.COMPLETED
                who = call.ended_by or "someone"
                call.end_reason = f"BYE from {who}" + (f" ({track.bye_reason})" if track.bye_reason else "")
        elif final is None:
            call.state = CallState.IN_PROGRESS if track.cancel_time is None else CallState.CANCELLED
            call.end_reason = "no final response in the capture"
        elif final == 487 or track.cancel_time is not None:
            call.state = CallState.CANCELLED
            call.end = call.hops[-1].time
            call.end_reason = "CANCEL before answer" if track.cancel_time is not None else "487 Request Terminated"
        else:
            call.state = CallState.FAILED
            call.end = call.hops[-1].time
            call.end_reason = f"{final} {call.final_reason}".strip()
        # A verdict needs its evidence: the ACK is due at once, and a UAS that has none re-sends the 2xx
        # after T1 (RFC 3261 13.3.1.4). Only a capture that runs that long past the 2xx can say it is missing.
        covered = capture_end is not None and call.answer is not None and capture_end - call.answer >= ACK_DUE_S
        call.ack_missing = bool(track.invite_2xx_frames) and not track.ack_after_2xx and \
            (covered or call.ok_retransmissions > 0 or call.end is not None)
        return call


def _side(track: _Track, msg: SipMessage) -> str:
    """Which party sent the message, from the tags (RFC 3261 12.1): a request carries its sender's tag in
    From, a response carries the From of the request it answers. Proxies and capture points in the
    middle do not change that, where addresses would mislead."""
    tag = msg.from_tag
    if tag is None or track.from_tag is None:
        return ""
    ours = tag == track.from_tag
    return ("caller" if ours else "callee") if msg.is_request else ("callee" if ours else "caller")


def _reason(call: SipCall, final: int | None) -> str:
    if final is None:
        return ""
    for step in call.hops:
        if step.status == final:
            return step.label.partition(" ")[2]
    return ""


def _summary(msg: SipMessage) -> str:
    """Extra words worth showing on a ladder arrow."""
    retry = msg.get("retry-after")
    if retry:
        return f"Retry-After: {retry}"
    reason = msg.get("reason")
    return f"Reason: {reason}" if reason else ""
