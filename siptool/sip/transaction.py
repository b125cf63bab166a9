"""RFC 3261 17 transaction state machines, sans-I/O: messages and the clock go in, events come out.

Everything that moves a transaction from one state to another is in this file, and every move is
checked against TRANSITIONS (one table per kind of transaction, as RFC 3261 figures 5-8 draw them;
the server INVITE transaction has the "Accepted" state of RFC 6026, where it keeps sending a 2xx
until the ACK, 13.3.1.4). A move the table does not allow is a bug of ours: LocalProtocolError.

Every method takes `now` (seconds, any clock that does not go back) and returns a list of events:
  Send(msg)      hand this message to the transport (the owner knows the address)
  Deliver(msg)   pass this message up to the transaction user
  Timeout(name)  the transaction gave up (timer B, F or H)
  Terminated()   the transaction is over; its owner forgets it
The owner calls `tick(now)` at (or after) `deadline`. Timers: A B D (17.1.1), E F K (17.1.2),
G H I (17.2.1), J (17.2.2); T1/T2/T4 are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

from .message import SipMessage

T1, T2, T4 = 0.5, 4.0, 5.0


class State(StrEnum):
    """A transaction's state (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2; RFC 6026 7.1 Accepted)."""

    INIT = "init"
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    ACCEPTED = "accepted"
    TERMINATED = "terminated"


class Kind(Enum):
    INVITE_CLIENT = "INVITE client"
    NON_INVITE_CLIENT = "non-INVITE client"
    INVITE_SERVER = "INVITE server"
    NON_INVITE_SERVER = "non-INVITE server"


S = State
# state -> the states it may move to; TERMINATED is reachable from everywhere (a transport error, or
# the owner giving up) and is left out of the sets.
TRANSITIONS: dict[Kind, dict[State, frozenset[State]]] = {
    Kind.INVITE_CLIENT: {S.INIT: frozenset({S.CALLING}), S.CALLING: frozenset({S.PROCEEDING, S.COMPLETED}),
                         S.PROCEEDING: frozenset({S.PROCEEDING, S.COMPLETED}), S.COMPLETED: frozenset()},
    Kind.NON_INVITE_CLIENT: {S.INIT: frozenset({S.TRYING}), S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED}),
                             S.PROCEEDING: frozenset({S.PROCEEDING, S.COMPLETED}), S.COMPLETED: frozenset()},
    Kind.INVITE_SERVER: {S.INIT: frozenset({S.PROCEEDING}),
                         S.PROCEEDING: frozenset({S.PROCEEDING, S.COMPLETED, S.ACCEPTED}),
                         S.COMPLETED: frozenset({S.CONFIRMED}), S.CONFIRMED: frozenset(), S.ACCEPTED: frozenset()},
    Kind.NON_INVITE_SERVER: {S.INIT: frozenset({S.TRYING}), S.TRYING: frozenset({S.PROCEEDING, S.COMPLETED}),
                             S.PROCEEDING: frozenset({S.PROCEEDING, S.COMPLETED}), S.COMPLETED: frozenset()},
}
LIVE = frozenset({S.CALLING, S.TRYING, S.PROCEEDING})  # no final response yet


class LocalProtocolError(Exception):
    """A move the transition table does not allow: our bug, never the peer's (the peer's mistakes
    are absorbed: a response in the wrong state is dropped, as RFC 3261 17 says)."""


@dataclass(slots=True)
class Send:
    msg: SipMessage


@dataclass(slots=True)
class Deliver:
    msg: SipMessage


@dataclass(slots=True)
class Timeout:
    timer: str


@dataclass(slots=True)
class Terminated:
    pass


@dataclass
class Timers:
    t1: float = T1
    t2: float = T2
    t4: float = T4


class _Base:
    """Named timers (name -> deadline) and the state, moved only through the table."""

    kind: Kind

    def __init__(self, request: SipMessage, reliable: bool, timers: Timers | None) -> None:
        self.request = request
        self.reliable = reliable
        self.t = timers or Timers()
        self.state = State.INIT
        self.due: dict[str, float] = {}
        self.interval: dict[str, float] = {}

    def _go(self, state: State) -> None:
        if state is not State.TERMINATED and state not in TRANSITIONS[self.kind].get(self.state, ()):
            raise LocalProtocolError(f"{self.kind.value} transaction: {self.state} -> {state}")
        self.state = state

    @property
    def deadline(self) -> float | None:
        return min(self.due.values()) if self.due else None

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    @property
    def live(self) -> bool:
        """No final response yet (a client waits for one; a server has not sent one)."""
        return self.state in LIVE

    def _set(self, name: str, now: float, delay: float) -> None:
        self.interval[name] = delay
        self.due[name] = now + delay

    def _stop(self, *names: str) -> None:
        for n in names:
            self.due.pop(n, None)

    def terminate(self) -> list:
        """End the transaction now (its owner gives up on it, or the transport failed)."""
        self._go(State.TERMINATED)
        self.due.clear()
        return [Terminated()]

    def tick(self, now: float) -> list:
        out: list = []
        for name, when in sorted(self.due.items(), key=lambda kv: kv[1]):
            if when <= now and self.due.get(name) == when and not self.terminated:
                del self.due[name]
                out += self._fire(name, now)
        return out

    def _fire(self, name: str, now: float) -> list:  # pragma: no cover - overridden
        return []


class ClientTransaction(_Base):
    """INVITE client (17.1.1) or non-INVITE client (17.1.2), chosen by the request method."""

    def __init__(self, request: SipMessage, reliable: bool = False, timers: Timers | None = None) -> None:
        super().__init__(request, reliable, timers)
        self.invite = request.method == "INVITE"
        self.kind = Kind.INVITE_CLIENT if self.invite else Kind.NON_INVITE_CLIENT
        self.ack: SipMessage | None = None
        self.final: SipMessage | None = None

    def start(self, now: float) -> list:
        t = self.t
        if self.invite:
            self._go(State.CALLING)
            if not self.reliable:
                self._set("A", now, t.t1)
            self._set("B", now, 64 * t.t1)
        else:
            self._go(State.TRYING)
            if not self.reliable:
                self._set("E", now, t.t1)
            self._set("F", now, 64 * t.t1)
        return [Send(self.request)]

    def receive(self, resp: SipMessage, now: float) -> list:
        code = resp.status or 0
        if self.invite:
            return self._invite_response(resp, code, now)
        if self.state in (State.TRYING, State.PROCEEDING):
            if code < 200:
                self._go(State.PROCEEDING)
                return [Deliver(resp)]
            self.final = resp
            self._go(State.COMPLETED)
            self._stop("E", "F")
            if self.reliable:
                return [Deliver(resp)] + self.terminate()
            self._set("K", now, self.t.t4)
            return [Deliver(resp)]
        return []  # retransmitted final in completed: absorbed

    def _invite_response(self, resp: SipMessage, code: int, now: float) -> list:
        if self.state in (State.CALLING, State.PROCEEDING):
            if code < 200:
                self._go(State.PROCEEDING)
                self._stop("A", "B")
                return [Deliver(resp)]
            self.final = resp
            if code < 300:  # 2xx: the TU sends the ACK (13.2.2.4), transaction ends
                return [Deliver(resp)] + self.terminate()
            self.ack = ack_for_non2xx(self.request, resp)
            self._go(State.COMPLETED)
            self._stop("A", "B")
            out = [Send(self.ack), Deliver(resp)]
            if self.reliable:
                return out + self.terminate()
            self._set("D", now, max(32.0, 64 * self.t.t1) if self.t.t1 >= 0.5 else 64 * self.t.t1)
            return out
        if self.state is State.COMPLETED and code >= 300 and self.ack is not None:
            return [Send(self.ack)]  # 17.1.1.2: retransmit ACK for each retransmitted final
        return []

    def _fire(self, name: str, now: float) -> list:
        t = self.t
        if name == "A" and self.state is State.CALLING:
            self._set("A", now, 2 * self.interval["A"])
            return [Send(self.request)]
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            nxt = t.t2 if self.state is State.PROCEEDING else min(2 * self.interval["E"], t.t2)
            self._set("E", now, nxt)
            return [Send(self.request)]
        if name in ("B", "F"):
            return [Timeout(name)] + self.terminate()
        if name in ("D", "K"):
            return self.terminate()
        return []


def ack_for_non2xx(invite: SipMessage, resp: SipMessage) -> SipMessage:
    """ACK built by the INVITE client transaction (RFC 3261 17.1.1.3): same Request-URI, Call-ID, From,
    top Via and Route as the INVITE, To from the response, CSeq number of the INVITE."""
    h = []
    vias = [v for k, v in invite.headers if k == "via"]
    if vias:
        h.append(("via", vias[0]))
    h.append(("max-forwards", "70"))
    h += [(k, v) for k, v in invite.headers if k == "route"]
    h += [("from", invite.get("from") or ""), ("to", resp.get("to") or ""), ("call-id", invite.call_id or ""),
          ("cseq", f"{invite.cseq[0]} ACK")]
    return SipMessage(method="ACK", uri=invite.uri, headers=h)


class ServerTransaction(_Base):
    """INVITE server (17.2.1) or non-INVITE server (17.2.2). `start` delivers the request to the TU;
    the TU answers with `respond`; retransmitted requests go to `receive`."""

    def __init__(self, request: SipMessage, reliable: bool = False, timers: Timers | None = None) -> None:
        super().__init__(request, reliable, timers)
        self.invite = request.method == "INVITE"
        self.kind = Kind.INVITE_SERVER if self.invite else Kind.NON_INVITE_SERVER
        self.last: SipMessage | None = None

    def start(self, now: float) -> list:
        self._go(State.PROCEEDING if self.invite else State.TRYING)
        return [Deliver(self.request)]

    def respond(self, resp: SipMessage, now: float) -> list:
        code = resp.status or 0
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        self.last = resp
        if code < 200:
            self._go(State.PROCEEDING)
            return [Send(resp)]
        t = self.t
        if self.invite:
            if code < 300:  # keep sending the 2xx until the ACK (13.3.1.4) whatever the transport
                self._go(State.ACCEPTED)
                self._set("G2xx", now, t.t1)
                self._set("H", now, 64 * t.t1)
                return [Send(resp)]
            self._go(State.COMPLETED)
            if not self.reliable:
                self._set("G", now, t.t1)
            self._set("H", now, 64 * t.t1)
            return [Send(resp)]
        self._go(State.COMPLETED)
        if self.reliable:
            return [Send(resp)] + self.terminate()
        self._set("J", now, 64 * t.t1)
        return [Send(resp)]

    def receive(self, req: SipMessage, now: float) -> list:
        if req.method == "ACK":
            if self.state is State.COMPLETED:
                self._go(State.CONFIRMED)
                self._stop("G", "H")
                if self.reliable:
                    return self.terminate()
                self._set("I", now, self.t.t4)
                return []
            if self.state is State.ACCEPTED:
                return [Deliver(req)] + self.terminate()
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED, State.ACCEPTED) and self.last is not None:
            return [Send(self.last)]  # retransmitted request: resend the last response
        return []

    def _fire(self, name: str, now: float) -> list:
        t = self.t
        if name in ("G", "G2xx") and self.state in (State.COMPLETED, State.ACCEPTED):
            self._set(name, now, min(2 * self.interval[name], t.t2))
            return [Send(self.last)]
        if name == "H":
            return [Timeout("H")] + self.terminate()
        if name in ("I", "J"):
            return self.terminate()
        return []
