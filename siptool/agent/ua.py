"""The user agent's asyncio driver: moves bytes between a transport (transport.py) and the sans-I/O
endpoint (endpoint.py), and fires the endpoint's one timer. It decides nothing.

For callers that only want a final response (OPTIONS, a bench), `await ua.request(msg, addr)` wraps
one client transaction in a future: provisionals go to a callback, timer B/F raises
TransactionTimeout. Sessions (session.py) drive the endpoint themselves; their events go to
`on_event(owner, event)`."""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Callable

from ..errors import SiptoolError
from ..sip.message import SipMessage
from ..sip.transaction import ClientTransaction, ServerTransaction, Timers
from ..status import ExitStatus
from .endpoint import ALL_INTERFACES, Endpoint, TransactionUser
from .limits import SourceLimiter
from .nat import NoRoute, route_source
from .clock import Deadline, stamp
from .transport import Addr, TlsOptions, Transport, TransportError, open_transport, unreachable_text


class TransactionTimeout(SiptoolError):
    """No final response: timer B (INVITE) or F (non-INVITE) fired (RFC 3261 17.1.1.2, 17.1.2.2)."""

    exit_code = ExitStatus.FAILED


def failure(why: str) -> SiptoolError:
    """The exception for a client transaction's failure text: a timeout or a transport error."""
    return TransactionTimeout(why) if "(timer " in why else TransportError(why)


class _Waiter(TransactionUser):
    """A request someone awaits: its final response resolves the future."""

    def __init__(self, future: asyncio.Future, on_provisional: Callable | None) -> None:
        self.future, self.on_provisional = future, on_provisional

    def on_response(self, txn, msg, now) -> None:
        if (msg.status or 0) < 200:
            if self.on_provisional:
                self.on_provisional(msg)
        elif not self.future.done():
            self.future.set_result(msg)

    def on_failure(self, txn, why, now) -> None:
        if not self.future.done():
            self.future.set_exception(failure(why))


class UserAgent:
    def __init__(self, kind: str = "udp", host: str = "127.0.0.1", port: int = 0, timers: Timers | None = None,
                 tls: TlsOptions | None = None, handler: Callable | None = None, tap: Callable | None = None,
                 limiter: SourceLimiter | None = None, on_error: Callable[[str], None] | None = None,
                 on_event: Callable | None = None) -> None:
        self.kind = kind.lower()
        self.host, self.port = host, port
        self.tls = tls
        self.tap = tap
        self.on_error = on_error or (lambda text: print(text, file=sys.stderr))
        self.on_event = on_event  # (owner, event) queued by the sessions on this agent
        self.handler = handler  # handler(ua, txn, msg, addr): requests that open nothing known
        self.ep = Endpoint(self.kind, (host, port), timers, limiter, self._on_request if handler else None,
                           self.on_error, route_from)
        self.transport: Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer = Deadline(self._fire)  # the endpoint's next deadline
        self._waiters: set[asyncio.Future] = set()
        self._stream_out: deque = deque()  # TCP/TLS: sent in order by one task
        self._sender: asyncio.Task | None = None
        self.call_taps: dict[str, Callable] = {}  # Call-ID -> the tap of that call's own Analyzer
        self.unreachable: set[Addr] = set()  # sent nothing, as if down (a failover check's primary)
        self.ep.on_traffic = self._traffic

    # the endpoint's state, read through the driver
    timers = property(lambda self: self.ep.timers)
    limiter = property(lambda self: self.ep.limiter)
    public = property(lambda self: self.ep.public, lambda self, v: setattr(self.ep, "public", v))
    seen = property(lambda self: self.ep.seen)
    servers = property(lambda self: self.ep.servers)
    clients = property(lambda self: self.ep.clients)

    async def start(self) -> "UserAgent":
        self.loop = asyncio.get_running_loop()
        self.transport = await open_transport(self.kind, self.host, self.port, self._received, self.tls, self.tap)
        self.transport.on_unreachable = self._unreachable
        self.port = self.transport.local[1]
        self.ep.local = self.local
        return self

    async def close(self) -> None:
        self._timer.cancel()
        for fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self.ep.clients.clear()
        self.ep.servers.clear()
        if self._sender is not None:
            self._sender.cancel()
        if self.transport is not None:
            await self.transport.close()

    async def __aenter__(self) -> "UserAgent":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self, addr: Addr) -> None:
        """TCP/TLS: open the connection first, so Via and Contact carry the real local port."""
        await self.transport.send(b"", addr)
        self.ep.local = self.local

    # --- addresses -----------------------------------------------------------------------------

    @property
    def local(self) -> Addr:
        host, port = self.transport.local if self.transport else (self.host, self.port)
        return (self.host if host in ALL_INTERFACES else host), port

    def via(self, branch: str | None = None) -> str:
        return self.ep.via(branch)

    def contact(self, user: str = "siptool", toward: str | None = None) -> str:
        return self.ep.contact(user, toward)

    def toward(self, remote_host: str) -> str:
        return self.ep.toward(remote_host)

    # --- moving bytes and the timer --------------------------------------------------------------------

    def now(self) -> float:
        return stamp()

    def pump(self, now: float | None = None) -> None:
        """After anything touched the endpoint: send what it queued, hand its events on, and set the
        timer to its next deadline."""
        now = stamp() if now is None else now
        ep = self.ep
        while True:
            out = ep.datagrams_to_send()
            for data, addr, txn in out:
                self._send(data, addr, txn, now)
            if ep.events:
                while (item := ep.next_event()) is not None:
                    owner, event = item
                    if self.on_event is not None:
                        try:
                            self.on_event(owner, event)
                        except Exception as exc:  # noqa: BLE001 - a driver's fault costs one line
                            self.on_error(f"siptool: internal error handling {type(event).__name__}: "
                                          f"{type(exc).__name__}: {exc}")
            elif not out:
                break
        if self.loop is not None:
            self._timer.at(ep.next_timer())

    def _send(self, data: bytes, addr: Addr, txn, now: float) -> None:
        if self.transport is None or addr in self.unreachable:
            return
        if self.transport.reliable:
            self._stream_out.append((data, addr, txn, now))
            if self._sender is None or self._sender.done():
                self._sender = asyncio.ensure_future(self._send_streams())
            return
        try:
            self.transport.send_now(data, addr, now)
        except TransportError as exc:
            self.ep.send_failed(txn, str(exc), now)

    async def _send_streams(self) -> None:
        """TCP/TLS sends in order (a connection may have to be opened first)."""
        while self._stream_out:
            data, addr, txn, now = self._stream_out.popleft()
            try:
                await self.transport.send(data, addr, now)
                self.ep.local = self.local
            except SiptoolError as exc:
                self.ep.send_failed(txn, str(exc), stamp())
                self.pump()

    def _fire(self, now: float) -> None:
        self.ep.handle_timer(now)
        self.pump(now)

    def _received(self, data: bytes, addr: Addr, now: float | None = None) -> None:
        now = stamp() if now is None else now
        self.ep.receive(data, addr, now)
        self.pump(now)

    def _traffic(self, direction: str, data: bytes, addr: Addr, call_id: str, now: float) -> None:
        """A call's own SIP messages to its own tap (the run's pcap gets everything from the transport)."""
        tap = self.call_taps.get(call_id)
        if tap is not None and self.transport is not None:
            local = self.transport.locals.get(addr, self.local) if self.transport.reliable else self.local
            tap(direction, local, addr, data, self.kind, now)

    def _unreachable(self, addr: Addr, exc: OSError) -> None:
        now = stamp()
        self.ep.unreachable(addr, unreachable_text(addr, exc.errno, self.kind), now)
        self.pump(now)

    # --- one request, awaited --------------------------------------------------------------------

    async def request(self, msg: SipMessage, addr: Addr, on_provisional: Callable | None = None,
                      timeout: float | None = None) -> SipMessage:
        """Send a request in a new client transaction and wait for the final response. `timeout`:
        give up sooner than timer B/F (the transaction is dropped, TransactionTimeout raised)."""
        if msg.method == "ACK":  # ACK for 2xx is not a transaction
            now = self.now()
            self.ep.send_ack(msg, addr, now)
            self.pump(now)
            return msg
        fut = self.loop.create_future()
        self._waiters.add(fut)
        fut.add_done_callback(self._waiters.discard)
        txn = self.ep.request(msg, addr, self.now(), _Waiter(fut, on_provisional))
        self.pump()
        if timeout is None:
            return await fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            self.ep.abandon(txn)
            where = f"{addr[0]}:{addr[1]}"
            raise TransactionTimeout(f"no response to {msg.method} from {where} within {timeout:g} s") from None

    async def send_ack(self, ack: SipMessage, addr: Addr) -> None:
        await self.request(ack, addr)

    def respond(self, txn: ServerTransaction, resp: SipMessage) -> None:
        now = self.now()
        self.ep.respond(txn, resp, now)
        self.pump(now)

    def _on_request(self, txn: ServerTransaction, msg: SipMessage, addr: Addr, now: float) -> None:
        self.handler(self, txn, msg, addr)

    def abandon(self, txn: ClientTransaction) -> None:
        self.ep.abandon(txn)


def route_from(remote_host: str) -> str:
    """Our address towards `remote_host` when listening on all interfaces: the route's source address
    (nat.route_source), the wildcard when there is no route."""
    try:
        return route_source(remote_host)
    except NoRoute:
        return "::" if ":" in remote_host else "0.0.0.0"
