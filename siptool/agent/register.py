"""REGISTER and OPTIONS, the asyncio drivers: `Registration` runs a RegisterSession (registration.py)
on a user agent of its own, `options()` pings (RFC 3261 11). They move bytes and wait; the
registration decides the REGISTERs, the challenges and the refreshes."""

from __future__ import annotations

import asyncio
import time

from ..errors import SiptoolError
from ..sip import build
from ..sip.transaction import Timers
from . import inputs
from .nat import resolve as _resolve
from .nat import route_source
from .options import SECURE, AgentError, CallOptions, _hop
from .registration import Exchange, RegisterSession
from .clock import stamp
from .transport import TlsOptions
from .ua import TransactionTimeout, UserAgent


async def open_ua(uri: str, transport: str | None, local_ip: str | None, t1: float, tls: TlsOptions | None, tap,
                  local_port: int = 0, on_event=None):
    """A started UserAgent towards `uri` (its first hop) and the resolved address to send to."""
    hop, kind = _hop(CallOptions(uri=uri, transport=transport, local_ip=local_ip, t1=t1))
    addr = await _resolve(*hop.hostport())
    local_ip = local_ip or route_source(addr[0])  # the source address of the route to the registrar
    ua = UserAgent(kind, local_ip, local_port, Timers(t1), (tls or TlsOptions()) if kind in SECURE else None,
                   tap=tap, on_event=on_event)
    await ua.start()
    if kind != "udp":  # connect first so Via and Contact carry the real local port
        await ua.connect(addr)
    return ua, addr


class Registration:
    """One binding kept alive: `await start()`, then it refreshes itself; `await stop()` unregisters."""

    def __init__(self, registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                 transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                 tls: TlsOptions | None = None, tap=None, refresh_margin: float = 5.0, on_event=None) -> None:
        self.registrar, self.aor, self.expires = registrar, aor, expires
        self.user = user or inputs.sip_uri(aor).user or "siptool"
        self.password = password
        self.transport, self.local_ip, self.t1, self.tls, self.tap = transport, local_ip, t1, tls, tap
        self.refresh_margin = refresh_margin
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
            self.ua, addr = await open_ua(self.registrar, self.transport, self.local_ip, self.t1, self.tls,
                                          self.tap, on_event=self._event)
        except (SiptoolError, OSError) as exc:
            ex = Exchange(error=str(exc))
            self._opened.append(ex)
            return ex
        self.session = RegisterSession(self.ua.ep, self.registrar, self.aor, self.user, self.password, addr,
                                       self.expires, self.refresh_margin)
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
                  tls: TlsOptions | None = None, tap=None) -> Exchange:
    """OPTIONS ping (RFC 3261 11): final status and round trip; never raises for network trouble."""
    out = Exchange()
    ua = None
    try:
        ua, addr = await open_ua(uri, transport, local_ip, t1, tls, tap)
        host, _ = ua.local
        req = build.request("OPTIONS", uri, via_value=ua.via(),
                             from_value=f"<sip:siptool@{build.host_ref(host)}>;tag={build.new_tag()}",
                             to_value=f"<{uri}>",
                             call_id=build.new_call_id(host), cseq=1, contact=ua.contact(),
                             headers=[("accept", "application/sdp")])
        t = time.monotonic()
        resp = await ua.request(req, addr)
        out.rtt_ms = round((time.monotonic() - t) * 1000, 2)
        out.status, out.reason = resp.status, resp.reason
    except (SiptoolError, TransactionTimeout) as exc:
        out.error = str(exc)
    finally:
        if ua is not None:
            await ua.close()
        if tap is not None:
            tap.close()
    return out


async def options_ping(uri: str, transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                       tls: TlsOptions | None = None) -> tuple[int, str, float]:
    """OPTIONS (RFC 3261 11): (status, reason, round trip ms). Raises AgentError on timeout."""
    ex = await options(uri, transport, local_ip, t1, tls)
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

