"""One user agent's transaction layer, sans-I/O (RFC 3261 8.2, 17, 18): bytes and the clock go in,
datagrams to send and events come out. The asyncio driver (ua.py) only moves them.

    ep.receive(data, addr, now)      a message from the transport (receive_message: one already parsed)
    ep.handle_timer(now)             at (or after) ep.next_timer()
    ep.datagrams_to_send()           [(bytes, addr, txn)]: send each; ep.send_failed(txn, why, now) if one cannot go
    ep.next_event()                  the (owner, event) pairs the transaction users queued, in order

Transactions belong to an owner, the transaction user (a call session, a registration, a waiting
request): `request(msg, addr, now, owner)` starts a client transaction whose responses and failures
go to `owner.on_response` / `owner.on_failure`; `respond(txn, resp, now)` answers a server one. A
request that opens nothing known goes to `on_request(txn, msg, addr, now)`, which answers it or
returns the owner that takes it (a new call). In-dialog requests and ACKs for 2xx go to the owner
registered for their Call-ID in `dialogs` (RFC 3261 12.2.2). Owners may set timers of their own
(`call_at`), kept in the same heap as the transactions' timers, and fired into `owner.on_timer`.

Nothing raises out of `receive`: a fault in handling one message costs that message (one line to
`on_error`, a 500 where a request was being answered)."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from ..sip import build
from ..sip.message import SipMessage, SipParseError, parse
from ..sip.transaction import ClientTransaction, Deliver, Send, ServerTransaction, Timeout, Timers
from .limits import MALFORMED_COST, SourceLimiter

Addr = tuple[str, int]
MAX_ACKS = 10000  # ACKs for 2xx kept to answer retransmitted 2xx (RFC 3261 13.2.2.4)
MAX_SERVER_TRANSACTIONS = 20000  # beyond this a new request gets 503 (statelessly): memory stays bounded
ALL_INTERFACES = ("0.0.0.0", "::")


class Owner(Protocol):
    """A transaction user. Every method is optional in practice; the base class below has them."""

    def on_response(self, txn: ClientTransaction, msg: SipMessage, now: float) -> None: ...
    def on_failure(self, txn: ClientTransaction, why: str, now: float) -> None: ...
    def on_request(self, txn: ServerTransaction | None, msg: SipMessage, addr: Addr, now: float) -> None: ...
    def on_no_ack(self, txn: ServerTransaction, now: float) -> None: ...
    def on_timer(self, name: str, now: float) -> None: ...


class TransactionUser:
    """What an owner does by default: nothing (a subclass overrides what it cares about)."""

    def on_response(self, txn, msg, now) -> None:
        pass

    def on_failure(self, txn, why, now) -> None:
        pass

    def on_request(self, txn, msg, addr, now) -> None:
        pass

    def on_no_ack(self, txn, now) -> None:
        pass

    def on_timer(self, name, now) -> None:
        pass


@dataclass(slots=True, eq=False)
class _Entry:
    txn: ClientTransaction | ServerTransaction
    addr: Addr  # where it talks to (a server transaction: where its responses go)
    owner: Owner | None
    key: tuple[str, str]
    client: bool
    pushed: float | None = None  # the deadline last put on the heap


class Endpoint:
    def __init__(self, kind: str = "udp", local: Addr = ("127.0.0.1", 0), timers: Timers | None = None,
                 limiter: SourceLimiter | None = None, on_request: Callable | None = None,
                 on_error: Callable[[str], None] | None = None,
                 route_from: Callable[[str], str] | None = None) -> None:
        self.kind = kind.lower()
        self.reliable = self.kind != "udp"
        self.local = local  # the transport's address; the driver keeps it current
        self.timers = timers or Timers()
        self.limiter = limiter  # per-source budget for what arrives (the echo agent sets one)
        self.on_request = on_request
        self.on_error = on_error or (lambda text: None)
        self.route_from = route_from  # remote host -> our address towards it (when listening on all)
        # every message in and out with its Call-ID (a call's own Analyzer is fed from here)
        self.on_traffic: Callable[[str, bytes, Addr, str, float], None] | None = None
        self.public: Addr | None = None  # our address as the far end sees it, when different (RFC 3581)
        self.seen: Addr | None = None  # received/rport of the first response that had them
        self.clients: dict[tuple[str, str], _Entry] = {}  # (branch, method) -> our requests in progress
        self.servers: dict[tuple[str, str], _Entry] = {}  # (branch, method) -> requests we are answering
        self.dialogs: dict[str, Owner] = {}  # Call-ID -> the session its in-dialog requests go to
        self.acks: dict[tuple[str, int], tuple[bytes, Addr]] = {}  # (call-id, cseq) -> ACK for a 2xx
        self.events: deque[tuple[Owner, object]] = deque()
        self._out: list[tuple[bytes, Addr, object]] = []
        self._heap: list[tuple[float, int, object, str]] = []
        self._owner_timers: dict[tuple[int, str], tuple[float, Owner]] = {}
        self._seq = itertools.count()
        self.malformed = 0  # requests refused as malformed (unparsable, or lacking what RFC 3261 requires)

    # --- addresses ------------------------------------------------------------------------------

    def toward(self, remote_host: str) -> str:
        """Our address as `remote_host` sees it: the listening address, or when listening on all
        interfaces the one the route to it leaves from (the driver's route_from)."""
        host = self.local[0]
        if host in ALL_INTERFACES and self.route_from is not None:
            return self.route_from(remote_host)
        return host

    def via(self, branch: str | None = None) -> str:
        return build.via(self.kind, self.local[0], self.local[1], branch or build.new_branch())

    def contact(self, user: str = "siptool", toward: str | None = None) -> str:
        """Our Contact: the public address learnt from received/rport (RFC 3581) once a response showed
        we are behind NAT, so in-dialog requests (ACK, BYE, re-INVITE) can reach us; else the local one
        (as `toward` sees it, when listening on all interfaces)."""
        host, port = self.public or self.local
        if toward and not self.public:
            host = self.toward(toward)
        tp = "" if self.kind == "udp" else f";transport={self.kind}"
        scheme = "sips" if self.kind == "tls" else "sip"
        return f"<{scheme}:{user}@{build.host_ref(host)}:{port}{tp}>"

    def _learn(self, resp: SipMessage) -> None:
        """Our address as the far end sees it, from a response to one of our own requests (RFC 3581):
        a stray response cannot change what we advertise, and nothing changes where we listen."""
        seen = build.public_address(resp)
        if seen is not None and self.seen is None:
            self.seen = seen
        if seen is not None and seen != self.local and not self.reliable:
            self.public = seen

    # --- what the transaction users call -------------------------------------------------------------

    def request(self, msg: SipMessage, addr: Addr, now: float, owner: Owner) -> ClientTransaction:
        """Send a request in a new client transaction; its responses and failure go to `owner`."""
        txn = ClientTransaction(msg, self.reliable, self.timers)
        entry = _Entry(txn, addr, owner, (msg.branch or "", msg.method or ""), client=True)
        self.clients[entry.key] = entry
        self._run(entry, txn.start(now), now)
        return txn

    def send_ack(self, ack: SipMessage, addr: Addr, now: float) -> None:
        """An ACK for a 2xx (not a transaction, RFC 3261 13.2.2.4): sent, and kept to send again for
        each retransmission of that 2xx."""
        data = ack.serialise()
        self.acks[(ack.call_id or "", ack.cseq[0])] = (data, addr)
        if len(self.acks) > MAX_ACKS:  # a 2xx is retransmitted for 64*T1 at most: old ones can go
            del self.acks[next(iter(self.acks))]
        self._queue(data, addr, None, ack.call_id, now)

    def respond(self, txn: ServerTransaction, resp: SipMessage, now: float) -> None:
        entry = self.servers.get(_key(txn.request))
        if entry is not None and entry.txn is txn:
            self._run(entry, txn.respond(resp, now), now)

    def adopt(self, txn: ServerTransaction, owner: Owner) -> None:
        """`owner` takes a server transaction (a new call takes its INVITE)."""
        entry = self.servers.get(_key(txn.request))
        if entry is not None and entry.txn is txn:
            entry.owner = owner

    def abandon(self, txn: ClientTransaction) -> None:
        """Stop a client transaction without telling its owner (it gave up waiting)."""
        entry = self.clients.get(_key(txn.request))
        if entry is not None and entry.txn is txn:
            txn.terminate()
            del self.clients[entry.key]

    def call_at(self, owner: Owner, name: str, when: float | None) -> None:
        """Fire `owner.on_timer(name, now)` at `when` (None: cancel); one timer per (owner, name)."""
        key = (id(owner), name)
        if when is None:
            self._owner_timers.pop(key, None)
            return
        self._owner_timers[key] = (when, owner)
        heapq.heappush(self._heap, (when, next(self._seq), owner, name))

    def emit(self, owner: Owner, event: object) -> None:
        self.events.append((owner, event))

    # --- what the driver calls ----------------------------------------------------------------------

    def _queue(self, data: bytes, addr: Addr, txn, call_id: str | None, now: float) -> None:
        self._out.append((data, addr, txn))
        if self.on_traffic is not None:
            self.on_traffic("out", data, addr, call_id or "", now)

    def datagrams_to_send(self) -> list[tuple[bytes, Addr, object]]:
        out, self._out = self._out, []
        return out

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            if not self._valid(item):
                continue
            _, _, target, name = item
            if isinstance(target, _Entry):
                target.pushed = None
                self._run(target, target.txn.tick(now), now)
            else:
                del self._owner_timers[(id(target), name)]
                self._guard(lambda: target.on_timer(name, now), "a timer")
        if len(heap) > 4 * (len(self.clients) + len(self.servers) + len(self._owner_timers)) + 1024:
            self._heap = [i for i in heap if self._valid(i)]  # stale entries: compact now and then
            heapq.heapify(self._heap)

    def _valid(self, item) -> bool:
        when, _, target, name = item
        if isinstance(target, _Entry):
            table = self.clients if target.client else self.servers
            return table.get(target.key) is target and target.txn.deadline == when and target.pushed == when
        return self._owner_timers.get((id(target), name), (None,))[0] == when

    def send_failed(self, txn, why: str, now: float) -> None:
        """The driver could not send a transaction's message (no connection, TLS refused): it ends now,
        and a client transaction's owner hears why (RFC 3261 18.4)."""
        if txn is None:
            return
        table = self.clients if isinstance(txn, ClientTransaction) else self.servers
        entry = table.get(_key(txn.request))
        if entry is None or entry.txn is not txn or txn.terminated:
            return
        txn.terminate()
        del table[entry.key]
        if entry.client and entry.owner is not None:
            self._guard(lambda: entry.owner.on_failure(txn, why, now), "a failure")

    def unreachable(self, addr: Addr, why: str, now: float) -> None:
        """The network said `addr` cannot be reached (ICMP unreachable): every client transaction
        waiting on it fails now instead of at timer B/F (RFC 3261 18.4, 17.1.4)."""
        for entry in [e for e in self.clients.values() if e.addr == addr and e.txn.live]:
            self.send_failed(entry.txn, why, now)

    def receive(self, data: bytes, addr: Addr, now: float) -> None:
        """Every message that arrives: within its source's budget, parsed, then to its transaction."""
        if self.limiter is not None and not self.limiter.allow(addr[0], now):
            return
        try:
            msg = parse(data, stream=self.reliable)
        except SipParseError:
            self._malformed(addr)
            return
        if self.on_traffic is not None:
            self.on_traffic("in", data, addr, msg.call_id or "", now)
        self.receive_message(msg, addr, now, len(data))

    def receive_message(self, msg: SipMessage, addr: Addr, now: float, size: int = 0) -> None:
        """A parsed message (`size`: its length on the wire) to its transaction or transaction user."""
        try:
            if msg.is_request:
                self._request_in(msg, addr, size, now)
            else:
                self._response_in(msg, now)
        except Exception as exc:  # noqa: BLE001 - a bug must not make the agent deaf
            self.on_error(f"siptool: internal error on a message from {addr[0]}:{addr[1]} "
                          f"({msg.first_line[:60]!r}): {type(exc).__name__}: {exc}")

    def next_event(self) -> tuple[Owner, object] | None:
        """The oldest (owner, event) a transaction user queued, or None."""
        return self.events.popleft() if self.events else None

    # --- inside --------------------------------------------------------------------------------------

    def _run(self, entry: _Entry, events: list, now: float) -> None:
        """Carry out a transaction's events: sends to the outbox, deliveries and timeouts to its owner."""
        txn, owner = entry.txn, entry.owner
        for ev in events:
            if isinstance(ev, Send):
                self._queue(ev.msg.serialise(), entry.addr, txn, ev.msg.call_id, now)
            elif isinstance(ev, Deliver):
                if owner is None:
                    continue
                if entry.client:
                    self._guard(lambda: owner.on_response(txn, ev.msg, now), "a response")
                elif ev.msg.method == "ACK":  # the ACK for a 2xx ends the accepted INVITE transaction
                    self._guard(lambda: owner.on_request(None, ev.msg, entry.addr, now), "an ACK")
            elif isinstance(ev, Timeout) and owner is not None:
                if entry.client:
                    why = (f"no response to {txn.request.method} from {entry.addr[0]}:{entry.addr[1]} within "
                           f"{64 * self.timers.t1:g} s (timer {ev.timer}, RFC 3261 17.1): host unreachable or not "
                           f"a SIP server on that port/transport ({self.kind.upper()})")
                    self._guard(lambda: owner.on_failure(txn, why, now), "a timeout")
                else:
                    self._guard(lambda: owner.on_no_ack(txn, now), "a timeout")
        table = self.clients if entry.client else self.servers
        if txn.terminated:
            if table.get(entry.key) is entry:
                del table[entry.key]
            return
        deadline = txn.deadline
        if deadline is not None and deadline != entry.pushed:
            entry.pushed = deadline
            heapq.heappush(self._heap, (deadline, next(self._seq), entry, ""))

    def _guard(self, call: Callable[[], None], what: str) -> None:
        """A transaction user's fault is one line, never a deaf agent."""
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            self.on_error(f"siptool: internal error handling {what}: {type(exc).__name__}: {exc}")

    def _malformed(self, addr: Addr) -> None:
        """A message that does not parse or lacks what RFC 3261 requires: its source pays more."""
        self.malformed += 1
        if self.limiter is not None:
            self.limiter.charge(addr[0], MALFORMED_COST)

    def _response_in(self, msg: SipMessage, now: float) -> None:
        entry = self.clients.get((msg.branch or "", msg.cseq[1]))
        if entry is not None:
            self._learn(msg)
            self._run(entry, entry.txn.receive(msg, now), now)
            return
        if msg.cseq[1] == "INVITE" and 200 <= (msg.status or 0) < 300:  # retransmitted 2xx: ACK again
            ack = self.acks.get((msg.call_id or "", msg.cseq[0]))
            if ack is not None:
                self._queue(ack[0], ack[1], None, msg.call_id, now)

    def _stateless(self, msg: SipMessage, reply_to: Addr, now: float, status: int, reason: str,
                   headers: list[tuple[str, str]] = ()) -> None:
        """A response without a transaction: nothing is kept for it (RFC 3261 8.2: bad requests)."""
        if msg.method != "ACK":  # an ACK is never answered (RFC 3261 17.2.3)
            data = build.response(msg, status, reason, headers=headers).serialise()
            self._queue(data, reply_to, None, msg.call_id, now)

    def _request_in(self, msg: SipMessage, addr: Addr, size: int, now: float) -> None:
        if not self.reliable:
            build.top_via_received(msg, addr[0], addr[1])
            reply_to = build.response_address(msg, addr)
            if reply_to is None:
                self._malformed(addr)
                return  # no valid Via: no address a response could be trusted to (RFC 3261 18.2.2)
        else:
            reply_to = addr  # responses go back on the connection (RFC 3261 18.2.2)
        method = msg.method
        problem = build.request_problem(msg, size)
        if problem is None and method != "ACK" and len(self.servers) >= MAX_SERVER_TRANSACTIONS:
            problem = (503, "Service Unavailable (too many requests in progress)")
        if problem is not None:
            if problem[0] != 503:  # our overload is not the source's fault
                self._malformed(addr)
            self._stateless(msg, reply_to, now, *problem, headers=[("retry-after", "5")] if problem[0] == 503 else [])
            return
        entry = self.servers.get(_key(msg))
        if entry is None and method == "ACK":  # ACK for a 2xx: new branch, match by Call-ID and CSeq
            entry = next((e for e in self.servers.values() if e.txn.invite and e.txn.request.call_id == msg.call_id
                          and e.txn.request.cseq[0] == msg.cseq[0]), None)
        if entry is not None:
            self._run(entry, entry.txn.receive(msg, now), now)
            return
        dialog = self.dialogs.get(msg.call_id or "")
        if method == "ACK":  # ACK after the transaction is gone: its dialog may still care
            if dialog is not None:
                self._guard(lambda: dialog.on_request(None, msg, addr, now), "an ACK")
            return
        txn = ServerTransaction(msg, self.reliable, self.timers)
        entry = _Entry(txn, reply_to, None, _key(msg), client=False)
        self.servers[entry.key] = entry
        events = txn.start(now)
        if method == "INVITE":  # 100 Trying at once (RFC 3261 17.2.1)
            events += txn.respond(build.response(msg, 100), now)
        self._run(entry, [e for e in events if not isinstance(e, Deliver)], now)
        owner = dialog
        if method == "CANCEL":  # to the INVITE it cancels (RFC 3261 9.2), matched by branch
            invite = self.servers.get((msg.branch or "", "INVITE"))
            if invite is None:
                self.respond(txn, build.response(msg, 481), now)
                return
            owner = invite.owner
        if owner is not None:
            entry.owner = owner
            self._guard_request(owner.on_request, txn, msg, addr, now)
        elif self.on_request is None:
            self.respond(txn, build.response(msg, 501, "Not Implemented"), now)
        else:
            self._guard_request(self.on_request, txn, msg, addr, now)

    def _guard_request(self, handler: Callable, txn: ServerTransaction, msg: SipMessage, addr: Addr,
                       now: float) -> None:
        """A handler's fault is one line and a 500, never a deaf agent (RFC 3261 21.5.1)."""
        try:
            handler(txn, msg, addr, now)
        except Exception as exc:  # noqa: BLE001
            self.on_error(f"siptool: internal error handling {msg.method} from {addr[0]}:{addr[1]}: "
                          f"{type(exc).__name__}: {exc}")
            if txn.live:
                self.respond(txn, build.response(msg, 500, "Server Internal Error"), now)


def _key(msg: SipMessage) -> tuple[str, str]:
    """A transaction's key (RFC 3261 17.1.3, 17.2.3): the branch and the method, an ACK's being INVITE."""
    method = msg.method or ""
    return msg.branch or "", "INVITE" if method == "ACK" else method
