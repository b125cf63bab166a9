"""REGISTER and OPTIONS, the asyncio drivers: `Registration` runs a RegisterSession (registration.py)
on a user agent of its own, `options()` pings (RFC 3261 11). They move bytes and wait; the
registration decides the REGISTERs, the challenges and the refreshes. Both locate the server as
RFC 3263 says (agent/dns.py) and fail over between the servers found (agent/failover.py)."""

from __future__ import annotations

import asyncio
import random
import time

from ..errors import SiptoolError
from ..sip import build
from ..sip.transaction import Timers
from . import inputs
from ..sip.locate import Resolution
from .dns import locate_hop
from .failover import Backoff, Failover, Outcome, retry_after
from .nat import route_source
from .options import SECURE, AgentError, CallOptions, _hop
from .registration import Exchange, RegisterSession
from .clock import stamp
from .transport import TlsOptions, TransportError
from .ua import TransactionTimeout, UserAgent


async def open_ua(uri: str, transport: str | None, local_ip: str | None, t1: float, tls: TlsOptions | None, tap,
                  local_port: int = 0, on_event=None, dns_server: str | None = None):
    """A started UserAgent towards `uri` (its first hop) and the servers located for it (RFC 3263)."""
    _hop(CallOptions(uri=uri, transport=transport, local_ip=local_ip, t1=t1))  # checked before any lookup
    servers = await locate_hop(uri, None, transport, dns_server)
    kind, first = servers.transport, servers.servers[0].addr()
    local_ip = local_ip or route_source(first[0])  # the source address of the route to the registrar
    ua = UserAgent(kind, local_ip, local_port, Timers(t1), (tls or TlsOptions()) if kind in SECURE else None,
                   tap=tap, on_event=on_event)
    await ua.start()
    if kind != "udp":  # connect first so Via and Contact carry the real local port
        for server in servers.servers:
            try:
                await ua.connect(server.addr())
                break
            except TransportError:
                if len(servers.servers) == 1:
                    await ua.close()
                    raise
    return ua, servers


def failovers(servers: Resolution, backoff: Backoff | None = None):
    """A new Failover for each request, its order drawn for it (RFC 2782)."""
    rng, backoff = random.Random(), backoff or Backoff()
    return lambda: Failover(servers.order(rng), backoff)


class Registration:
    """One binding kept alive: `await start()`, then it refreshes itself; `await stop()` unregisters."""

    def __init__(self, registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                 transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                 tls: TlsOptions | None = None, tap=None, refresh_margin: float = 5.0, on_event=None,
                 dns_server: str | None = None, target_timeout: float | None = None) -> None:
        self.registrar, self.aor, self.expires = registrar, aor, expires
        self.user = user or inputs.sip_uri(aor).user or "siptool"
        self.password = password
        self.transport, self.local_ip, self.t1, self.tls, self.tap = transport, local_ip, t1, tls, tap
        self.refresh_margin = refresh_margin
        self.dns_server, self.target_timeout = dns_server, target_timeout
        self.on_event = on_event or (lambda ex: None)
        self.ua: UserAgent | None = None
        self.session: RegisterSession | None = None
        self._opened: list[Exchange] = []  # an outcome before the session (no user agent)
        self._outcome: asyncio.Future | None = None

    @property
    def history(self) -> list[Exchange]:
        """Every REGISTER transaction's outcome, in order."""
        return self._opened + (self.session.history if self.session else [])

    @property
    def refreshes(self) -> int:
        return self.session.refreshes if self.session else 0

    @property
    def public(self) -> tuple[str, int] | None:
        """Our address as the registrar sees it, when it differs from the local one (NAT)."""
        return self.ua.public if self.ua is not None else None

    def contact(self) -> str:
        return self.ua.contact(self.user)

    def _event(self, owner, ex) -> None:
        if owner is self.session and isinstance(ex, Exchange):
            self.on_event(ex)
            if self._outcome is not None and not self._outcome.done():
                self._outcome.set_result(ex)

    async def start(self) -> Exchange:
        """Register; on success the refresh runs by itself until `stop()`. Never raises for network
        trouble: the Exchange says what went wrong."""
        try:
            self.ua, servers = await open_ua(self.registrar, self.transport, self.local_ip, self.t1, self.tls,
                                             self.tap, on_event=self._event, dns_server=self.dns_server)
        except (SiptoolError, OSError) as exc:
            ex = Exchange(error=str(exc))
            self._opened.append(ex)
            return ex
        self.session = RegisterSession(self.ua.ep, self.registrar, self.aor, self.user, self.password,
                                       servers.servers[0].addr(), self.expires, self.refresh_margin,
                                       failovers(servers), self.target_timeout)
        return await self.register(self.expires)

    async def register(self, expires: int) -> Exchange:
        """One REGISTER outcome, challenges answered; never raises for network trouble."""
        self._outcome = asyncio.get_running_loop().create_future()
        now = stamp()
        self.session.register(now, expires)
        self.ua.pump(now)
        return await self._outcome

    async def stop(self, unregister: bool = True) -> Exchange | None:
        ex = None
        try:
            if self.session is not None:
                self._outcome = asyncio.get_running_loop().create_future()
                now = stamp()
                if self.session.stop(now, unregister):
                    self.ua.pump(now)
                    ex = await self._outcome
        finally:
            if self.ua is not None:
                await self.ua.close()
            if self.tap is not None:
                self.tap.close()
        return ex


async def options(uri: str, transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                  tls: TlsOptions | None = None, tap=None, dns_server: str | None = None,
                  target_timeout: float | None = None, to: tuple[str, int] | None = None) -> Exchange:
    """OPTIONS ping (RFC 3261 11): final status and round trip; never raises for network trouble.
    The servers located for `uri` are tried in turn (RFC 3263 4.3); `to`: ask that one only (a
    check of every server)."""
    out = Exchange()
    ua = None
    try:
        ua, servers = await open_ua(uri, transport, local_ip, t1, tls, tap, dns_server=dns_server)
        failover = Failover([s for s in servers.servers if s.addr() == to]) if to else failovers(servers)()
        out.targets = failover.tries
        host, _ = ua.local
        call_id, tag = build.new_call_id(host), build.new_tag()
        server = failover.start(stamp())
        while server is not None:
            req = build.request("OPTIONS", uri, via_value=ua.via(), to_value=f"<{uri}>", call_id=call_id, cseq=1,
                                from_value=f"<sip:siptool@{build.host_ref(host)}>;tag={tag}", contact=ua.contact(),
                                headers=[("accept", "application/sdp")])
            t = time.monotonic()
            try:
                resp = await ua.request(req, server.addr(), timeout=target_timeout if failover.left else None)
            except (TransactionTimeout, TransportError) as exc:
                timeout = isinstance(exc, TransactionTimeout)
                server = failover.failed(stamp(), Outcome.TIMEOUT if timeout else Outcome.UNREACHABLE,
                                         str(exc).split(" (timer ")[0])
                if server is None:
                    if len(failover.tries) < 2:
                        raise
                    out.error = f"dead trunk: none of {len(failover.tries)} servers answered: {failover.summary()}"
                    break
                continue
            out.rtt_ms = round((time.monotonic() - t) * 1000, 2)
            out.status, out.reason = resp.status, resp.reason
            if resp.status == 503:
                server = failover.failed(stamp(), Outcome.REFUSED, f"503 {resp.reason}", retry_after(resp))
                if server is not None:
                    continue
            else:
                failover.served(stamp(), f"{resp.status} {resp.reason}")
            break
        else:
            out.error = f"no server to send to: {failover.summary()}"
    except (SiptoolError, TransactionTimeout) as exc:
        out.error = str(exc)
    finally:
        if ua is not None:
            await ua.close()
        if tap is not None:
            tap.close()
    return out


async def options_ping(uri: str, transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                       tls: TlsOptions | None = None, dns_server: str | None = None) -> tuple[int, str, float]:
    """OPTIONS (RFC 3261 11): (status, reason, round trip ms). Raises AgentError on timeout."""
    ex = await options(uri, transport, local_ip, t1, tls, dns_server=dns_server)
    if ex.status is None:
        raise AgentError(ex.error or "no response to OPTIONS")
    return ex.status, ex.reason, ex.rtt_ms


async def register(registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                   transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                   tls: TlsOptions | None = None) -> tuple[int, str, int | None]:
    """REGISTER (RFC 3261 10) with digest: (final status, reason, granted expiry seconds); the binding
    is left in place (see siptool.agent.register.Registration for refresh and unregister)."""
    reg = Registration(registrar, aor, user, password, expires, transport, local_ip, t1, tls)
    try:
        ex = await reg.start()
    finally:
        await reg.stop(unregister=False)
    if ex.status is None:
        raise AgentError(ex.error or "no response to REGISTER")
    return ex.status, ex.reason, ex.expires

