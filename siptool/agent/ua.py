"""The user agent driver: runs the sans-I/O transactions (transaction.py) on an asyncio transport.

Client side: `await ua.request(msg, addr)` returns the final response (provisionals go to a callback)
or raises TransactionTimeout (timer B/F). Server side: new requests go to `handler(ua, txn, msg, addr)`
which answers with `ua.respond(txn, response)`. ACKs for 2xx (their own branch) are matched to the
accepted INVITE transaction by Call-ID and CSeq (RFC 3261 17.2.3 does not cover them); retransmitted
2xx responses after our ACK get that ACK again (13.2.2.4)."""

from __future__ import annotations

import asyncio
import socket
import sys
from dataclasses import dataclass
from typing import Callable

from ..errors import SiptoolError
from ..status import ExitStatus
from ..sip.message import SipMessage, SipParseError, parse
from ..sip import build
from .limits import MALFORMED_COST, SourceLimiter
from ..sip.transaction import ClientTransaction, Deliver, Send, ServerTransaction, Timeout, Timers
from .transport import Addr, TlsOptions, Transport, TransportError, open_transport, unreachable_text


class TransactionTimeout(SiptoolError):
    """No final response: timer B (INVITE) or F (non-INVITE) fired (RFC 3261 17.1.1.2, 17.1.2.2)."""

    exit_code = ExitStatus.FAILED


@dataclass(slots=True, eq=False)
class Pending:
    """A transaction in progress and what drives it: where it talks to, who waits for its final
    response (client side), and its next timer."""

    txn: ClientTransaction | ServerTransaction
    addr: Addr
    future: asyncio.Future | None = None  # client: resolved with the final response
    on_provisional: Callable | None = None  # client: called with each 1xx
    timer: asyncio.TimerHandle | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


MAX_ACKS = 10000  # ACKs for 2xx kept to answer retransmitted 2xx (RFC 3261 13.2.2.4)
MAX_SERVER_TRANSACTIONS = 20000  # beyond this a new request gets 503 (statelessly): memory stays bounded


class UserAgent:
    def __init__(self, kind: str = "udp", host: str = "127.0.0.1", port: int = 0, timers: Timers | None = None,
                 tls: TlsOptions | None = None, handler: Callable | None = None, tap: Callable | None = None,
                 limiter: SourceLimiter | None = None, on_error: Callable[[str], None] | None = None) -> None:
        self.kind = kind.lower()
        self.host, self.port = host, port
        self.timers = timers or Timers()
        self.tls = tls
        self.handler = handler
        self.tap = tap
        self.transport: Transport | None = None
        self.clients: dict[tuple[str, str], Pending] = {}  # (branch, method) -> our requests in progress
        self.servers: dict[tuple[str, str], Pending] = {}  # (branch, method) -> requests we are answering
        self.acks: dict[tuple[str, int], tuple[SipMessage, Addr]] = {}  # (call-id, cseq) -> ACK for 2xx
        self.limiter = limiter  # per-source budget for what arrives (the echo agent sets one)
        self.on_error = on_error or (lambda text: print(text, file=sys.stderr))
        self.loop: asyncio.AbstractEventLoop | None = None
        self.public: Addr | None = None  # our address as the far end sees it (received/rport), when different
        self.seen: Addr | None = None  # received/rport of the first response that had them (RFC 3581)

    async def start(self) -> "UserAgent":
        self.loop = asyncio.get_running_loop()
        self.transport = await open_transport(self.kind, self.host, self.port, self._received, self.tls, self.tap)
        self.transport.on_unreachable = self._unreachable
        self.port = self.transport.local[1]
        return self

    async def close(self) -> None:
        for entry in list(self.clients.values()) + list(self.servers.values()):
            entry.stop_timer()
        for entry in self.clients.values():
            if not entry.future.done():
                entry.future.cancel()
        self.clients.clear()
        self.servers.clear()
        if self.transport is not None:
            await self.transport.close()

    async def __aenter__(self) -> "UserAgent":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- addresses -----------------------------------------------------------------------------

    @property
    def local(self) -> Addr:
        host, port = self.transport.local if self.transport else (self.host, self.port)
        return (self.host if host in ("0.0.0.0", "::") else host), port

    def via(self, branch: str | None = None) -> str:
        host, port = self.local
        return build.via(self.kind, host, port, branch or build.new_branch())

    def toward(self, remote_host: str) -> str:
        """Our address as `remote_host` sees it: the listening address, or when listening on all
        interfaces (0.0.0.0, ::) the one the kernel routes to it from (no packet is sent)."""
        host = self.local[0]
        if host not in ("0.0.0.0", "::"):
            return host
        fam = socket.AF_INET6 if ":" in remote_host else socket.AF_INET
        try:
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.connect((remote_host, 9))
                return s.getsockname()[0]
        except OSError:
            return host

    def contact(self, user: str = "siptool", toward: str | None = None) -> str:
        """Our Contact: the public address learnt from received/rport (RFC 3581) once a response showed
        we are behind NAT, so in-dialog requests (ACK, BYE, re-INVITE) can reach us; else the local one
        (as `toward` sees it, when listening on all interfaces)."""
        host, port = self.public or self.local
        if toward and not self.public:
            host = self.toward(toward)
        tp = "" if self.kind == "udp" else f";transport={self.kind}"
        scheme = "sips" if self.kind == "tls" else "sip"
        host = build.host_ref(host)
        return f"<{scheme}:{user}@{host}:{port}{tp}>"

    # --- sending ----------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.loop.time()

    async def _send(self, msg: SipMessage, addr: Addr) -> None:
        await self.transport.send(msg.serialise(), addr)

    async def _send_quietly(self, msg: SipMessage, addr: Addr) -> None:
        """A send nobody waits for (a stateless answer, an ACK again): its failure is only dropped."""
        try:
            await self._send(msg, addr)
        except SiptoolError:
            pass

    async def request(self, msg: SipMessage, addr: Addr, on_provisional: Callable | None = None,
                      timeout: float | None = None) -> SipMessage:
        """Send a request in a new client transaction and wait for the final response. `timeout`:
        give up sooner than timer B/F (the transaction is dropped, TransactionTimeout raised)."""
        if msg.method == "ACK":  # ACK for 2xx is not a transaction
            self.acks[(msg.call_id or "", msg.cseq[0])] = (msg, addr)
            if len(self.acks) > MAX_ACKS:  # a 2xx is retransmitted for 64*T1 at most: old ones can go
                del self.acks[next(iter(self.acks))]
            await self._send(msg, addr)
            return msg
        txn = ClientTransaction(msg, self.transport.reliable, self.timers)
        fut = self.loop.create_future()
        key = (msg.branch or "", msg.method or "")
        entry = Pending(txn, addr, fut, on_provisional)
        self.clients[key] = entry
        await self._events(txn.start(self._now()), entry, key, client=True)
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            txn.terminate()
            entry.stop_timer()
            if self.clients.get(key) is entry:
                del self.clients[key]
            raise TransactionTimeout(f"no response to {msg.method} from {addr[0]}:{addr[1]} within {timeout:g} s") from None

    async def send_ack(self, ack: SipMessage, addr: Addr) -> None:
        await self.request(ack, addr)

    def respond(self, txn: ServerTransaction, resp: SipMessage) -> None:
        key = (txn.request.branch or "", txn.request.method or "")
        entry = self.servers.get(key)
        if entry is None:
            return
        asyncio.ensure_future(self._events(txn.respond(resp, self._now()), entry, key, client=False))

    async def _events(self, events: list, entry: Pending, key, client: bool) -> None:
        txn, addr = entry.txn, entry.addr
        for ev in events:
            if isinstance(ev, Send):
                try:
                    await self._send(ev.msg, addr)
                except SiptoolError as exc:
                    if client and not entry.future.done():
                        entry.future.set_exception(exc)
                    txn.terminate()
            elif isinstance(ev, Deliver):
                if client:
                    code = ev.msg.status or 0
                    if code < 200:
                        if entry.on_provisional:
                            entry.on_provisional(ev.msg)
                    elif not entry.future.done():
                        entry.future.set_result(ev.msg)
                elif ev.msg.method == "ACK":
                    self._handle(txn, ev.msg, addr)
            elif isinstance(ev, Timeout):
                if client and not entry.future.done():
                    what = txn.request.method
                    entry.future.set_exception(TransactionTimeout(
                        f"no response to {what} from {addr[0]}:{addr[1]} within {64 * self.timers.t1:g} s "
                        f"(timer {ev.timer}, RFC 3261 17.1): host unreachable or not a SIP server on that "
                        f"port/transport ({self.kind.upper()})"))
        if txn.terminated:
            table = self.clients if client else self.servers
            if table.get(key) is entry:
                del table[key]
            entry.stop_timer()
            return
        self._schedule(entry, key, client)

    def _schedule(self, entry: Pending, key, client: bool) -> None:
        entry.stop_timer()
        deadline = entry.txn.deadline
        if deadline is not None:
            entry.timer = self.loop.call_at(deadline, self._tick, entry, key, client)

    def _tick(self, entry: Pending, key, client: bool) -> None:
        entry.timer = None
        asyncio.ensure_future(self._events(entry.txn.tick(self._now()), entry, key, client))

    def _unreachable(self, addr: Addr, exc: OSError) -> None:
        """The network said `addr` cannot be reached (ICMP unreachable): every client transaction
        waiting on it fails now instead of at timer B/F (RFC 3261 18.4, 17.1.4)."""
        text = unreachable_text(addr, exc.errno, self.kind)
        for key, entry in list(self.clients.items()):
            if entry.addr == addr and not entry.future.done():
                entry.future.set_exception(TransportError(text))
                entry.txn.terminate()
                entry.stop_timer()
                del self.clients[key]

    # --- receiving --------------------------------------------------------------------------------

    def _received(self, data: bytes, addr: Addr) -> None:
        """Every message that arrives: within its source's budget, parsed, then to its transaction.
        Nothing raises out of here: a fault in handling one message costs that message only."""
        if self.limiter is not None and not self.limiter.allow(addr[0], self._now()):
            return
        try:
            msg = parse(data, stream=self.transport.reliable)
        except SipParseError:
            self._malformed(addr)
            return
        try:
            if msg.is_request:
                self._request_in(msg, addr, len(data))
            else:
                self._response_in(msg)
        except Exception as exc:  # noqa: BLE001 - a bug must not make the agent deaf
            self.on_error(f"siptool: internal error on a message from {addr[0]}:{addr[1]} "
                          f"({msg.first_line[:60]!r}): {type(exc).__name__}: {exc}")

    def _malformed(self, addr: Addr) -> None:
        """A message that does not parse or lacks what RFC 3261 requires: its source pays more."""
        if self.limiter is not None:
            self.limiter.charge(addr[0], MALFORMED_COST)

    def _learn(self, resp: SipMessage) -> None:
        """Our address as the far end sees it, from a response to one of our own requests (RFC 3581):
        a stray response cannot change what we advertise, and nothing changes where we listen."""
        seen = build.public_address(resp)
        if seen is not None and self.seen is None:
            self.seen = seen
        if seen is not None and seen != self.local and not self.transport.reliable:
            self.public = seen

    def _response_in(self, msg: SipMessage) -> None:
        key = (msg.branch or "", msg.cseq[1])
        entry = self.clients.get(key)
        if entry is not None:
            self._learn(msg)
            asyncio.ensure_future(self._events(entry.txn.receive(msg, self._now()), entry, key, client=True))
            return
        if msg.cseq[1] == "INVITE" and 200 <= (msg.status or 0) < 300:  # retransmitted 2xx: ACK again
            ack = self.acks.get((msg.call_id or "", msg.cseq[0]))
            if ack is not None:
                asyncio.ensure_future(self._send_quietly(*ack))

    def _request_in(self, msg: SipMessage, addr: Addr, size: int = 0) -> None:
        if not self.transport.reliable:
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
        if problem is not None:  # answered without a transaction: nothing is kept for it
            if problem[0] != 503:  # our overload is not the source's fault
                self._malformed(addr)
            if method != "ACK":  # an ACK is never answered (RFC 3261 17.2.3)
                status, reason = problem
                extra = [("retry-after", "5")] if status == 503 else []
                asyncio.ensure_future(self._send_quietly(build.response(msg, status, reason, headers=extra),
                                                         reply_to))
            return
        key = (msg.branch or "", "INVITE" if method == "ACK" else method)
        entry = self.servers.get(key)
        if entry is None and method == "ACK":  # ACK for a 2xx: new branch, match by Call-ID and CSeq
            for k, e in self.servers.items():
                r = e.txn.request
                if r.method == "INVITE" and r.call_id == msg.call_id and r.cseq[0] == msg.cseq[0]:
                    key, entry = k, e
                    break
        if entry is not None:
            asyncio.ensure_future(self._events(entry.txn.receive(msg, self._now()), entry, key, client=False))
            return
        if method == "ACK":
            self._handle(None, msg, addr)  # ACK after the transaction is gone: let the TU see it
            return
        txn = ServerTransaction(msg, self.transport.reliable, self.timers)
        entry = Pending(txn, reply_to)
        self.servers[key] = entry
        events = txn.start(self._now())
        if method == "INVITE":  # 100 Trying at once (RFC 3261 17.2.1)
            events += txn.respond(build.response(msg, 100), self._now())
        asyncio.ensure_future(self._events([e for e in events if not isinstance(e, Deliver)], entry, key, client=False))
        if not self.handler:
            self.respond(txn, build.response(msg, 501, "Not Implemented"))
            return
        self._handle(txn, msg, addr)

    def _handle(self, txn: ServerTransaction | None, msg: SipMessage, addr: Addr) -> None:
        """The transaction user's handler; a fault in it is one line and a 500, never a deaf agent."""
        if not self.handler:
            return
        try:
            self.handler(self, txn, msg, addr)
        except Exception as exc:  # noqa: BLE001 - answer 500 and go on (RFC 3261 21.5.1)
            self.on_error(f"siptool: internal error handling {msg.method} from {addr[0]}:{addr[1]}: "
                          f"{type(exc).__name__}: {exc}")
            if txn is not None and txn.state in ("trying", "proceeding"):
                self.respond(txn, build.response(msg, 500, "Server Internal Error"))

    def find_server(self, branch: str, method: str) -> ServerTransaction | None:
        entry = self.servers.get((branch, method))
        return entry.txn if entry else None
