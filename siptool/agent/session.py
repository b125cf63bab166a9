"""SIP call sessions above the transaction layer, sans-I/O (RFC 3261 9, 12-15, 22; RFC 3264).

A session is the transaction user of one call on an Endpoint (endpoint.py): it starts client
transactions, answers server ones, and keeps the dialog (sip/dialog.py). Messages reach it through
the endpoint (`on_response`, `on_request`, `on_failure`, `on_no_ack`); its own timers (when to
cancel, hold, hang up, answer) fire through `on_timer`. It decides everything a call does and does
nothing else: no socket, no clock of its own. What it says happened are typed events (events.py),
queued on the endpoint and kept in `log`.

UacSession places a call: INVITE with an SDP offer, the digest answer to 401/407 (sip/auth.py),
CANCEL (9.1: only once a provisional came; the 200 that crosses it is ACKed and the call hung up),
ACK for the 2xx (13.2.2.4), hold and resume by re-INVITE (RFC 3264 8.4), BYE from either side;
with a Failover (failover.py), the INVITE goes to the next server located by RFC 3263 after a
transport error, a timeout or a 503 (4.3: the same request, a new branch), and `target` follows.
UasSession answers one (the echo agent's): 180, 200 with the SDP answer after the ring time, 487 to
a CANCEL (9.2), BYE after the ACK never came (13.3.1.4: timer H) or when asked, re-INVITEs answered.
"""

from __future__ import annotations

from enum import StrEnum

from .. import sdp as sdplib
from ..sip import build
from ..sip.auth import Credentials, DigestAnswer, DigestRefused
from ..sip.dialog import Dialog
from ..sip.message import SipMessage
from ..sip.transaction import ClientTransaction, ServerTransaction
from ..sip.uri import uri_user
from . import sdp
from .endpoint import Addr, Endpoint, TransactionUser
from .events import Answered, Ended, MediaStarted, Note, Received, Sent
from .failover import Failover, Outcome, retry_after
from .inputs import sip_uri

CALLER_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
ECHO_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"
MEDIA_TAIL = 0.25  # s after our media ends before the BYE: the last echoed packets come back
CANCEL_WAIT = 2.0  # s to wait for the CANCEL's own response once the INVITE has its final one
RING_LIMIT = 60.0  # s a call to `ring` rings before 480 (the caller's CANCEL comes well before)


class State(StrEnum):
    """Where a call session stands (RFC 3261 12-15)."""

    IDLE = "idle"
    CALLING = "calling"  # INVITE sent, nothing back but 100
    EARLY = "early"  # a provisional came (caller) or was sent (callee): ringing
    ANSWERED = "answered"  # callee: 2xx sent, no ACK yet
    CONFIRMED = "confirmed"  # the 2xx is ACKed
    ENDING = "ending"  # our BYE is out
    ENDED = "ended"


S = State
TRANSITIONS: dict[str, dict[State, frozenset[State]]] = {
    "caller": {S.IDLE: frozenset({S.CALLING, S.ENDED}), S.CALLING: frozenset({S.CALLING, S.EARLY, S.CONFIRMED, S.ENDED}),
               S.EARLY: frozenset({S.EARLY, S.CALLING, S.CONFIRMED, S.ENDED}),
               S.CONFIRMED: frozenset({S.ENDING, S.ENDED}), S.ENDING: frozenset({S.ENDED}), S.ENDED: frozenset()},
    "callee": {S.IDLE: frozenset({S.EARLY, S.ENDED}), S.EARLY: frozenset({S.ANSWERED, S.ENDED}),
               S.ANSWERED: frozenset({S.CONFIRMED, S.ENDING, S.ENDED}), S.CONFIRMED: frozenset({S.ENDING, S.ENDED}),
               S.ENDING: frozenset({S.ENDED}), S.ENDED: frozenset()},
}


class SessionError(Exception):
    """A state move the table does not allow: our bug."""


class CallSession(TransactionUser):
    role = "caller"

    def __init__(self, ep: Endpoint, call_id: str) -> None:
        self.ep = ep
        self.call_id = call_id
        self.state = State.IDLE
        self.dialog: Dialog | None = None
        self.t0 = 0.0  # the INVITE's time: every logged step is measured from it
        self.log: list = []  # the typed events of this call, in order
        self.started_at: float | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.ended_by: str | None = None
        self._timers: set[str] = set()

    def _go(self, state: State) -> None:
        if state not in TRANSITIONS[self.role][self.state]:
            raise SessionError(f"{self.role} session {self.call_id}: {self.state} -> {state}")
        self.state = state

    @property
    def ended(self) -> bool:
        return self.state is State.ENDED

    def t_ms(self, now: float) -> float:
        return round((now - self.t0) * 1000, 3)

    def add(self, now: float, kind: type, **fields) -> None:
        """Log one step (and queue it for the driver)."""
        event = kind(self.call_id, self.t_ms(now), **fields)
        self.log.append(event)
        self.ep.emit(self, event)

    def _at(self, name: str, when: float | None) -> None:
        (self._timers.add if when is not None else self._timers.discard)(name)
        self.ep.call_at(self, name, when)

    def on_timer(self, name: str, now: float) -> None:
        self._timers.discard(name)
        self._fire(name, now)

    def _fire(self, name: str, now: float) -> None:  # pragma: no cover - overridden
        pass

    def _end(self, now: float) -> None:
        if self.state is State.ENDED:
            return
        self._go(State.ENDED)
        self.ended_at = now
        for name in list(self._timers):
            self._at(name, None)
        if self.ep.dialogs.get(self.call_id) is self:
            del self.ep.dialogs[self.call_id]
        self.ep.emit(self, Ended(self.call_id, self.t_ms(now)))

    def _respond(self, txn: ServerTransaction, msg: SipMessage, status: int, now: float, log: bool = False,
                 **kw) -> None:
        self.ep.respond(txn, build.response(msg, status, **kw), now)
        if log:
            self.add(now, Sent, status=status, reason=build.REASONS.get(status, ""))


class UacSession(CallSession):
    """One call we place. `o` is agent/options.CallOptions (uri, credentials, proxy, codecs, and the
    plan: duration, hold, cancel_after, no_answer_timeout, target_timeout); `media` is where our RTP
    listens (what the offer says); `target` the first hop, or `failover` the servers to try in turn
    (then `target` is the one tried now, and after a response the one that serves the call)."""

    role = "caller"

    def __init__(self, ep: Endpoint, o, target: Addr, media: Addr, failover: Failover | None = None) -> None:
        super().__init__(ep, build.new_call_id(ep.local[0]))
        self.o, self.target, self.failover = o, target, failover
        self.sdp_addr, self.sdp_port = media
        host = ep.local[0]
        from_uri = o.from_uri or f"sip:{o.user or 'siptool'}@{build.host_ref(host)}"
        self.from_value = f"<{from_uri}>;tag={build.new_tag()}"
        self.routes = [f"<{sip_uri(o.proxy).scheme}:{o.proxy.split(':', 1)[1]};lr>"] if o.proxy else []
        self.creds = Credentials(o.user or sip_uri(from_uri).user, o.password) if o.password is not None else None
        self.digest = DigestAnswer(self.creds, "INVITE", o.uri) if self.creds is not None else None
        self.formats = sdp.formats(o.codecs)  # payload type -> what we offer on it
        self.offer = sdp.build(self.sdp_addr, self.sdp_port, list(self.formats), formats=self.formats)
        self.sdp_version = 1
        self.cseq = 1
        self.invite: SipMessage | None = None
        self.invite_txn: ClientTransaction | None = None
        self.cancel_txn: ClientTransaction | None = None
        self.bye_txn: ClientTransaction | None = None
        self.reinvite_txn: ClientTransaction | None = None
        self.reinvite_for = ""  # "hold" or "resume"
        # what happened, for the result
        self.status: int | None = None
        self.reason = ""
        self.error = ""
        self.problems: list[str] = []  # what the agent itself could not do (no SDP answer, BYE unanswered)
        self.auth: str | None = None
        self.codec: str | None = None
        self.pt: int | None = None
        self.fmtp = ""  # the answer's fmtp for the chosen payload type
        self.dtmf_pt: int | None = None
        self.hold_status: int | None = None
        self.resume_status: int | None = None
        self.cancel_status: int | None = None
        self._cancel_wanted = False
        self._bye_after_reinvite = False
        self._bye_limit = 0.0

    # --- what the driver (or a test) asks for ---------------------------------------------------------

    def start(self, now: float) -> None:
        """Send the INVITE; the no-answer (or --cancel-after) timer starts with it."""
        self.t0 = self.started_at = now
        self.ep.dialogs[self.call_id] = self
        if self.failover is not None:
            server = self.failover.start(now)
            if server is None:  # every server is held by its Retry-After: nothing is sent
                self.error = f"no server to send to: {self.failover.summary()}"
                self.add(now, Note, text=self.error)
                self._end(now)
                return
            self.target = server.addr()
        self._send_invite(now, None)
        o = self.o
        self._at("cancel", now + (o.cancel_after if o.cancel_after is not None else o.no_answer_timeout))

    def cancel(self, now: float) -> None:
        """CANCEL the INVITE (RFC 3261 9.1): at once when a provisional came, else when one comes."""
        if self.state not in (State.CALLING, State.EARLY) or self._cancel_wanted:
            return
        self._cancel_wanted = True
        if self.state is State.EARLY:
            self._send_cancel(now)

    def hang_up(self, now: float, limit: float | None = None) -> None:
        """BYE, once (RFC 3261 15.1.1); `limit`: give up on its response sooner than timer F."""
        if self.state is not State.CONFIRMED:
            return
        self.ended_by = self.ended_by or "local"
        self._go(State.ENDING)
        self.add(now, Sent, method="BYE")
        self.bye_txn = self.ep.request(self.dialog.request("BYE", self.ep.via()), self._route(), now, self)
        if limit is not None:
            self._bye_limit = limit
            self._at("bye_limit", now + limit)

    def abort(self, now: float, limit: float) -> None:
        """Leave now (an error, Ctrl-C): hang up an answered call, cancel a ringing one; what is left
        unanswered after `limit` seconds is given up."""
        if self.state is State.CONFIRMED:
            self.hang_up(now, limit)
        elif self.state in (State.CALLING, State.EARLY):
            self.cancel(now)
            self._at("give_up", now + limit)
        elif self.state is not State.ENDED:
            self._at("give_up", now + limit)

    def hold(self, now: float, on: bool) -> None:
        """Hold (a=sendonly) or resume (a=sendrecv) by re-INVITE (RFC 3264 8.4)."""
        if self.state is not State.CONFIRMED or (self.reinvite_txn is not None and self.reinvite_txn.live):
            return
        direction = "sendonly" if on else "sendrecv"
        self.sdp_version += 1
        body = sdp.build(self.sdp_addr, self.sdp_port, [self.pt], direction=direction, version=self.sdp_version,
                         formats=self.formats)
        req = self.dialog.request("INVITE", self.ep.via(), contact=self.ep.contact(), body=body)
        self.reinvite_for = "hold" if on else "resume"
        self.add(now, Sent, method="INVITE", note=direction)
        self.reinvite_txn = self.ep.request(req, self._route(), now, self)

    # --- the endpoint's calls -------------------------------------------------------------------------

    def on_response(self, txn, msg, now) -> None:
        final = (msg.status or 0) >= 200
        if txn is self.invite_txn:
            self._invite_response(msg, now)
        elif not final:
            return
        elif txn is self.cancel_txn:
            self.cancel_status = msg.status
            self.add(now, Received, method="CANCEL", status=msg.status, reason=msg.reason, note="CANCEL")
            self._end_if_done(now)
        elif txn is self.bye_txn:
            self.add(now, Received, method="BYE", status=msg.status, reason=msg.reason, note="BYE")
            self._end(now)
        elif txn is self.reinvite_txn:
            self._reinvite_response(msg, now)

    def on_failure(self, txn, why, now) -> None:
        if txn is self.invite_txn:
            outcome = Outcome.TIMEOUT if "(timer " in why else Outcome.UNREACHABLE
            if self._fail_over(now, outcome, why.split(" (timer ")[0]):
                return
            self.status, self.reason, self.error = None, "", self._dead() or why
            self.add(now, Note, text="timeout (timer B)" if "(timer " in why else why.split(" (")[0])
            self._end_if_done(now)
        elif txn is self.cancel_txn:
            self.add(now, Note, text=f"CANCEL failed: {why}")
            self._end_if_done(now)
        elif txn is self.bye_txn:
            self._bye_unanswered(why, now)
        elif txn is self.reinvite_txn:
            self._reinvite_done(None, now)

    def on_request(self, txn, msg, addr, now) -> None:
        if txn is None:
            return  # an ACK to us: nothing to do
        method = msg.method
        self.add(now, Received, method=method)
        if method == "OPTIONS":
            self._respond(txn, msg, 200, now, headers=[("allow", CALLER_ALLOW)])
        elif self.dialog is None or not self.dialog.accepts(msg):
            self._respond(txn, msg, 481, now)  # not in our dialog (RFC 3261 12.2.2)
        elif method == "BYE":
            self._respond(txn, msg, 200, now, log=True)
            self.ended_by = self.ended_by or "remote"
            self._end(now)
        elif method == "INVITE":  # the far end's re-INVITE: our media as it is
            self.sdp_version += 1
            body = sdp.build(self.sdp_addr, self.sdp_port, [self.pt if self.pt is not None else 0],
                             version=self.sdp_version, formats=self.formats)
            self._respond(txn, msg, 200, now, to_tag=self.dialog.local_tag, body=body,
                          headers=[("contact", self.ep.contact())])
        else:
            self._respond(txn, msg, 405, now, headers=[("allow", CALLER_ALLOW)])

    def _fire(self, name, now) -> None:
        if name == "cancel":
            self.cancel(now)
        elif name == "hold":
            self.hold(now, True)
        elif name == "resume":
            self.hold(now, False)
        elif name == "bye":
            if self.reinvite_txn is not None and self.reinvite_txn.live:
                self._bye_after_reinvite = True  # the hold or resume finishes first
            else:
                self.hang_up(now)
        elif name == "bye_limit" and self.bye_txn is not None and self.bye_txn.live:
            self.ep.abandon(self.bye_txn)
            why = f"no response to BYE from {_hostport(self._route())} within {self._bye_limit:g} s"
            self._bye_unanswered(why, now)
        elif name == "cancel_wait":
            self._end(now)
        elif name == "cancel_timeout" and self.invite_txn.live:  # 9.1: no final response 64*T1 after the CANCEL
            self.ep.abandon(self.invite_txn)
            self.error = f"no final response to the INVITE within {64 * self.ep.timers.t1:g} s of the CANCEL"
            self.add(now, Note, text=self.error)
            self._end(now)
        elif name == "target_timeout" and self.invite_txn is not None and self.invite_txn.live:
            self.ep.abandon(self.invite_txn)  # the next server, sooner than timer B (RFC 3263 4.3)
            if not self._fail_over(now, Outcome.TIMEOUT, f"no response within {self.o.target_timeout:g} s"):
                self.error = self._dead() or f"no response within {self.o.target_timeout:g} s"
                self.add(now, Note, text=self.error)
                self._end_if_done(now)
        elif name == "give_up":
            for txn in (self.invite_txn, self.cancel_txn, self.bye_txn, self.reinvite_txn):
                if txn is not None and txn.live:
                    self.ep.abandon(txn)
            self._end(now)

    # --- inside ----------------------------------------------------------------------------------------

    def _send_invite(self, now: float, auth: tuple[str, str] | None) -> None:
        o, ep = self.o, self.ep
        invite = build.request("INVITE", o.uri, via_value=ep.via(), from_value=self.from_value, to_value=f"<{o.uri}>",
                               call_id=self.call_id, cseq=self.cseq, contact=ep.contact(), routes=self.routes,
                               headers=[auth] if auth else [], body=self.offer)
        self.invite = invite
        self._go(State.CALLING)
        f = self.failover
        to = f"to {f.current.name} {_hostport(self.target)}" if f is not None and len(f.servers) > 1 else ""
        self.add(now, Sent, method="INVITE", initial=True, note=to)
        self.invite_txn = ep.request(invite, self.target, now, self)
        if f is not None and not f.settled and f.left and o.target_timeout:
            self._at("target_timeout", now + o.target_timeout)

    def _fail_over(self, now: float, outcome: Outcome, detail: str, retry_s: int | None = None) -> bool:
        """The INVITE failed at the server tried now: send it to the next one (RFC 3263 4.3: the same
        request, a new branch). False when there is no failover or no server is left."""
        f = self.failover
        if f is None or f.settled or self._cancel_wanted:
            return False
        self._at("target_timeout", None)
        server = f.failed(now, outcome, detail, retry_s)
        if server is None:
            return False
        self.add(now, Note, text=f"{detail}: trying {server.name} {_hostport(server.addr())}")
        self.target = server.addr()
        self._send_invite(now, None)
        return True

    def _dead(self) -> str:
        """The error of a request that no server took, when there were several to try."""
        f = self.failover
        if f is None or len(f.tries) < 2:
            return ""
        return f"dead trunk: none of {len(f.tries)} servers took the call: {f.summary()}"

    def _send_cancel(self, now: float) -> None:
        inv = self.invite
        cancel = build.request("CANCEL", inv.uri, via_value=inv.get_all("via")[0], from_value=inv.get("from"),
                               to_value=inv.get("to"), call_id=self.call_id, cseq=inv.cseq[0],
                               routes=inv.get_all("route"))
        self.add(now, Sent, method="CANCEL")
        self.cancel_txn = self.ep.request(cancel, self.target, now, self)
        self._at("cancel_timeout", now + 64 * self.ep.timers.t1)

    def _invite_response(self, msg: SipMessage, now: float) -> None:
        code = msg.status or 0
        self.add(now, Received, method="INVITE", status=code, reason=msg.reason)
        f = self.failover
        if f is not None and not f.settled:  # 100 Trying: the server is there; anything else but 503 serves
            self._at("target_timeout", None)
            if code == 503 and self._fail_over(now, Outcome.REFUSED, f"{code} {msg.reason}", retry_after(msg)):
                return
            if code not in (100, 503):
                f.served(now, f"{code} {msg.reason}")
        if code < 200:
            self._go(State.EARLY)
            if self._cancel_wanted and self.cancel_txn is None:
                self._send_cancel(now)
            return
        self.status, self.reason = code, msg.reason
        if code in (401, 407) and not self._cancel_wanted:
            self._challenged(msg, now)
            return
        if code < 300:
            self._answered(msg, now)
        else:
            if code == 503:
                self.error = self._dead()
            self._end_if_done(now)

    def _end(self, now: float) -> None:
        if self.failover is not None and self.state is not State.ENDED:
            self.failover.give_up(now, self.error or "the call ended before it answered")
        super()._end(now)

    def _challenged(self, msg: SipMessage, now: float) -> None:
        """Answer a 401/407 once (RFC 3261 22.2); a second one with a nonce that is not stale means
        the credentials were refused."""
        what = f"{msg.status} {msg.reason}"
        if self.digest is None:
            self.error = (f"{what}: the far end wants credentials (give --user and --password-env VAR or "
                          "--password-file FILE)")
        else:
            try:
                header = self.digest.answer(msg, self.offer)
            except DigestRefused as why:
                if why.kind == "unsupported":
                    self.error = f"{what}: no supported digest challenge (MD5/SHA-256)"
                else:
                    self.error = (f"authentication failed: {what} again after sending credentials for user "
                                  f"{self.creds.user!r} (wrong user or password?)")
            else:
                self.auth = self.digest.challenged
                self.cseq += 1
                self._send_invite(now, header)
                return
        self._end(now)

    def _answered(self, msg: SipMessage, now: float) -> None:
        self.dialog = Dialog.uac(self.invite, msg)
        self.answered_at = now
        self._go(State.CONFIRMED)
        self.ep.send_ack(self.dialog.ack(self.invite.cseq[0], self.ep.via()), self._route(), now)
        self.add(now, Sent, method="ACK")
        self._at("cancel", None)
        if self._cancel_wanted:  # answered although we cancelled: hang up at once
            self.hang_up(now)
            return
        answer = sdp.parse(msg.body)
        chosen = sdp.negotiate(answer, self.o.codecs) if answer is not None and answer.port else None
        if answer is None or not answer.port:
            problem = "the 200 OK has no usable audio SDP answer"
        elif chosen is None:
            problem = f"the answer chose no offered codec (m= payloads {answer.payload_types})"
        else:
            problem = ""
            self.codec, self.pt = chosen
            self.fmtp = answer.fmtp.get(self.pt, "")
            self.dtmf_pt = answer.dtmf_pt
            self.add(now, MediaStarted, codec=self.codec, address=answer.connection, port=answer.port)
        if problem:
            self.problems.append(problem)
            self.ep.emit(self, Answered(self.call_id, self.t_ms(now), problem=problem))
            self.hang_up(now)
            return
        self.ep.emit(self, Answered(self.call_id, self.t_ms(now), codec=self.codec, pt=self.pt,
                                    address=answer.connection, port=answer.port, dtmf_pt=self.dtmf_pt,
                                    ptime_ms=answer.ptime, fmtp=self.fmtp))
        d = self.o.duration
        if d is not None:
            self._at("bye", now + d + MEDIA_TAIL)
            if self.o.hold:  # hold at 1/3 of the call, resume 1/3 later
                self._at("hold", now + d / 3)

    def _reinvite_response(self, msg: SipMessage, now: float) -> None:
        self.add(now, Received, method="INVITE", status=msg.status, reason=msg.reason)
        if 200 <= msg.status < 300:
            self.ep.send_ack(self.dialog.ack(self.reinvite_txn.request.cseq[0], self.ep.via()), self._route(), now)
        self._reinvite_done(msg.status, now)

    def _reinvite_done(self, status: int | None, now: float) -> None:
        if self.reinvite_for == "hold":
            self.hold_status = status
            if self.o.duration:
                self._at("resume", now + self.o.duration / 3)
        else:
            self.resume_status = status
        if self._bye_after_reinvite and "resume" not in self._timers:
            self.hang_up(now)

    def _bye_unanswered(self, why: str, now: float) -> None:
        self.add(now, Note, text="BYE got no answer")
        self.problems.append(f"BYE got no answer: {why}")
        self._end(now)

    def _end_if_done(self, now: float) -> None:
        """Once the INVITE has its final response, the session ends, when a CANCEL in flight has its
        own (or after 2 s); a BYE in flight (the 200 that crossed the CANCEL, hung up) ends it itself."""
        if self.invite_txn is not None and self.invite_txn.live or self.bye_txn is not None and self.bye_txn.live:
            return
        if self.cancel_txn is not None and self.cancel_txn.live:
            self._at("cancel_wait", now + CANCEL_WAIT)
        else:
            self._end(now)

    def _route(self) -> Addr:
        """Where in-dialog requests go: the outbound proxy, else the dialog's next hop (12.2.1.1)
        when it is an address, else the first hop."""
        if self.o.proxy or self.dialog is None:
            return self.target
        try:
            return sip_uri(self.dialog.next_hop()).hostport()
        except Exception:  # noqa: BLE001 - a Contact we cannot route by: the first hop
            return self.target


class UasSession(CallSession):
    """One call the echo agent answers. `codec` is (name, payload type) from the negotiation, `media`
    our RTP address for the SDP answer, `source` where the INVITE came from (where our BYE goes,
    never to its Contact or Record-Route: a caller's headers must not make us send to a third party)."""

    role = "callee"

    def __init__(self, ep: Endpoint, txn: ServerTransaction, source: Addr, offer: sdplib.Media,
                 codec: tuple[str, int], ring: float = 0.0, hangup_after: float | None = None) -> None:
        super().__init__(ep, txn.request.call_id or "")
        self.txn, self.invite, self.source = txn, txn.request, source
        self.offer, self.codec = offer, codec
        self.formats = {codec[1]: sdp.chosen_format(offer, codec[1])}  # the answer repeats the offer's
        self.ring, self.hangup_after = ring, hangup_after
        self.media_port = 0
        self.outcome = ""  # ended, cancelled, rejected, unanswered
        self.answer_body = b""
        self.sdp_version = 1
        self.bye_txn: ClientTransaction | None = None

    def start(self, now: float, media_port: int) -> None:
        """180 Ringing now; the 200 after the ring time (a call to `ring` is never answered)."""
        self.t0 = self.started_at = now
        self.media_port = media_port
        self.dialog = Dialog.uas(self.invite, build.new_tag())
        self.ep.adopt(self.txn, self)
        self.ep.dialogs[self.call_id] = self
        self._respond(self.txn, self.invite, 180, now, to_tag=self.dialog.local_tag,
                      headers=[("contact", self.ep.contact("echo", self.source[0]))])
        self._go(State.EARLY)
        if rings_unanswered(self.invite.uri):
            self._at("unanswered", now + RING_LIMIT)
        elif self.ring:
            self._at("answer", now + self.ring)
        else:
            self.answer(now)

    def answer(self, now: float) -> None:
        if self.state is not State.EARLY:
            return
        name, pt = self.codec
        self.answer_body = sdp.build(self.ep.toward(self.source[0]), self.media_port, [pt],
                                     direction=sdplib.answer_direction(self.offer.direction),
                                     dtmf_pt=self.offer.dtmf_pt, formats=self.formats)
        self._respond(self.txn, self.invite, 200, now, to_tag=self.dialog.local_tag, body=self.answer_body,
                      headers=[("contact", self.ep.contact("echo", self.source[0])), ("allow", ECHO_ALLOW)])
        self._go(State.ANSWERED)
        self.answered_at = now
        self.ep.emit(self, Answered(self.call_id, self.t_ms(now), codec=name, pt=pt, address=self.offer.connection,
                                    port=self.offer.port, dtmf_pt=self.offer.dtmf_pt, ptime_ms=self.offer.ptime,
                                    fmtp=self.offer.fmtp.get(pt, "")))

    def reject(self, now: float, status: int, why: str) -> None:
        """A final failure before the answer (503 when no media port is left), the call ended by us."""
        if self.txn.live:
            self._respond(self.txn, self.invite, status, now, headers=[("retry-after", "10")] if status == 503 else [])
        self._finish(now, "rejected", why)

    def hang_up(self, now: float, why: str = "local", limit: float | None = None) -> None:
        if self.state not in (State.ANSWERED, State.CONFIRMED):
            return
        self._go(State.ENDING)
        self.ended_by = why
        self.bye_txn = self.ep.request(self.dialog.request("BYE", self.ep.via()), self.source, now, self)
        if limit is not None:
            self._at("bye_limit", now + limit)

    def shutdown(self, now: float, limit: float = 2.0) -> None:
        """The agent stops: an answered call is hung up (BYE, `limit` s at most), a ringing one gets 503."""
        if self.state in (State.ANSWERED, State.CONFIRMED):
            self.hang_up(now, "shutdown", limit)
        elif self.state is State.EARLY:
            self._respond(self.txn, self.invite, 503, now, to_tag=self.dialog.local_tag)
            self._finish(now, "ringing", "shutdown")
        elif self.state is not State.ENDING:
            self._finish(now, self.outcome or "ringing", "shutdown")

    def drop(self, now: float, by: str) -> None:
        """End the session at once, sending nothing (its BYE went unanswered too long)."""
        self._finish(now, self.outcome or ("ended" if self.answered_at else "ringing"), by)

    # --- the endpoint's calls -------------------------------------------------------------------------

    def on_request(self, txn, msg, addr, now) -> None:
        method = msg.method
        if txn is None:  # an ACK for our 2xx (13.3.1.4)
            if method == "ACK" and self.state is State.ANSWERED and self.dialog.accepts(msg):
                self.dialog.remote_seq = msg.cseq[0]
                self._go(State.CONFIRMED)
                if self.hangup_after:
                    self._at("hangup", max(self.answered_at + self.hangup_after, now))
            return
        if method == "CANCEL":  # 9.2: 200 to the CANCEL; 487 to the INVITE while it rings
            self._respond(txn, msg, 200, now)
            if self.state is State.EARLY:
                self._respond(self.txn, self.invite, 487, now, to_tag=self.dialog.local_tag)
                self._finish(now, "cancelled", "remote")
        elif method == "OPTIONS":
            self._respond(txn, msg, 200, now, headers=[("allow", ECHO_ALLOW), ("accept", "application/sdp")])
        elif method == "INVITE" and msg.to_tag is None:
            self._respond(txn, msg, 482, now, reason="Loop Detected")  # a merged request (8.2.2.2)
        elif not self.dialog.accepts(msg):
            self._respond(txn, msg, 481, now)
        elif method == "BYE":
            self._respond(txn, msg, 200, now)
            if self.state is State.EARLY:  # 15.2: BYE in the early dialog ends the INVITE with 487
                self._respond(self.txn, self.invite, 487, now, to_tag=self.dialog.local_tag)
            self._finish(now, "ended", "remote")
        elif method == "INVITE":
            self._reinvite(txn, msg, now)
        else:
            self._respond(txn, msg, 405, now, headers=[("allow", ECHO_ALLOW)])

    def on_no_ack(self, txn, now) -> None:
        if txn is self.txn and self.state is State.ANSWERED:  # 13.3.1.4: no ACK in 64*T1, the call ends
            self.hang_up(now, "local (no ACK)")

    def on_response(self, txn, msg, now) -> None:
        if txn is self.bye_txn and (msg.status or 0) >= 200:
            self._finish(now, "ended", self.ended_by or "local")

    def on_failure(self, txn, why, now) -> None:
        if txn is self.bye_txn:  # the far end may be gone; the call ends anyway
            self._finish(now, "ended", self.ended_by or "local")

    def _fire(self, name, now) -> None:
        if name == "answer":
            self.answer(now)
        elif name == "unanswered" and self.state is State.EARLY:
            self._respond(self.txn, self.invite, 480, now, reason="Temporarily Unavailable",
                          to_tag=self.dialog.local_tag)
            self._finish(now, "unanswered", "local")
        elif name == "hangup":
            self.hang_up(now)
        elif name == "bye_limit" and self.bye_txn is not None:
            self.ep.abandon(self.bye_txn)
            self._finish(now, "ended", self.ended_by or "local")

    # --- inside ----------------------------------------------------------------------------------------

    def _reinvite(self, txn: ServerTransaction, msg: SipMessage, now: float) -> None:
        offer = sdp.parse(msg.body) if msg.body else None
        direction = sdplib.answer_direction(offer.direction) if offer else "sendrecv"
        self.sdp_version += 1
        body = sdp.build(self.ep.toward(self.source[0]), self.media_port, [self.codec[1]], direction=direction,
                         version=self.sdp_version, formats=self.formats)
        self._respond(txn, msg, 200, now, to_tag=self.dialog.local_tag, body=body,
                      headers=[("contact", self.ep.contact("echo", self.source[0]))])

    def _finish(self, now: float, outcome: str, by: str) -> None:
        if self.state is State.ENDED:
            return
        self.outcome, self.ended_by = outcome, by
        self._end(now)


def rings_unanswered(request_uri: str | None) -> bool:
    """The documented test number that rings and never answers: user part `ring` or `ring-...`."""
    user = uri_user(request_uri or "").lower()
    return user == "ring" or user.startswith("ring-")


def answer_out_of_dialog(ep: Endpoint, allow: str):
    """A transaction user for requests outside any call of ours: OPTIONS gets 200, the rest 481
    (RFC 3261 12.2.2: no such dialog). What a caller answers."""
    def on_request(txn, msg, addr, now) -> None:
        if msg.method == "OPTIONS":
            ep.respond(txn, build.response(msg, 200, headers=[("allow", allow)]), now)
        else:
            ep.respond(txn, build.response(msg, 481), now)
    return on_request


def _hostport(addr: Addr) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
