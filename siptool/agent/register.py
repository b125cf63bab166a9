"""REGISTER (RFC 3261 10) with digest, refresh before expiry, unregister, and NAT learning (RFC 3581).

`Registration` keeps one Call-ID and an increasing CSeq for the binding (RFC 3261 10.2.4), answers
401/407 challenges (a second challenge with a fresh, non-stale nonce means the credentials were
refused), refreshes at half the granted expiry (at least 5 s before it runs out), and sends
Expires: 0 on stop (10.2.2). When the registrar's response shows, through received/rport in our
Via, that it sees us at another address than we bound (NAT), later REGISTERs carry that public
address in Contact, so in-dialog requests can reach us (the rport mechanism of RFC 3581).
`options()` is the OPTIONS ping (RFC 3261 11) on the same footing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from ..errors import SiptoolError
from ..sip.message import param
from ..sip import build
from . import inputs
from ..sip.auth import Credentials, DigestAnswer, DigestRefused
from .nat import resolve as _resolve
from .nat import route_source
from .options import AgentError, CallOptions, _hop
from ..sip.transaction import Timers
from .transport import TlsOptions
from .ua import TransactionTimeout, UserAgent


@dataclass
class Exchange:
    """The end of one non-INVITE request: final status, round trip, what authentication happened."""

    status: int | None = None
    reason: str = ""
    rtt_ms: float | None = None
    challenged: str | None = None  # "401"/"407" when a challenge was answered
    algorithm: str | None = None  # digest algorithm of the answered challenge
    expires: int | None = None  # REGISTER: expiry the registrar granted
    contact: str = ""  # REGISTER: the Contact we registered
    bindings: list[str] = field(default_factory=list)  # REGISTER 2xx: every Contact the registrar holds
    error: str = ""
    at: float = field(default_factory=time.time)


async def open_ua(uri: str, transport: str | None, local_ip: str | None, t1: float, tls: TlsOptions | None, tap,
                  local_port: int = 0):
    """A started UserAgent towards `uri` (its first hop) and the resolved address to send to."""
    hop, kind = _hop(CallOptions(uri=uri, transport=transport, local_ip=local_ip, t1=t1))
    addr = await _resolve(*hop.hostport())
    local_ip = local_ip or route_source(addr[0])  # the source address of the route to the registrar
    ua = UserAgent(kind, local_ip, local_port, Timers(t1), (tls or TlsOptions()) if kind == "tls" else None,
                   None, tap)
    await ua.start()
    if kind != "udp":  # connect first so Via and Contact carry the real local port
        await ua.transport.send(b"", addr)
    return ua, addr


def granted_expiry(resp, contact_uri: str = "") -> int | None:
    """Expiry of our binding in a 2xx: our Contact's ;expires, else any Contact's, else Expires."""
    best = None
    for c in resp.get_all("contact"):
        e = param(c, "expires")
        if e and e.isdigit():
            if contact_uri and contact_uri in c:
                return int(e)
            best = int(e) if best is None else best
    if best is None and (resp.get("expires") or "").strip().isdigit():
        best = int(resp.get("expires").strip())
    return best


class Registration:
    """One binding kept alive: `await start()`, then it refreshes itself; `await stop()` unregisters."""

    def __init__(self, registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                 transport: str | None = None, local_ip: str | None = None, t1: float = 0.5,
                 tls: TlsOptions | None = None, tap=None, refresh_margin: float = 5.0, on_event=None) -> None:
        self.registrar, self.aor, self.expires = registrar, aor, expires
        self.user = user or inputs.sip_uri(aor).user or "siptool"
        self.creds = Credentials(self.user, password) if password is not None else None
        self.transport, self.local_ip, self.t1, self.tls, self.tap = transport, local_ip, t1, tls, tap
        self.refresh_margin = refresh_margin
        self.on_event = on_event or (lambda ex: None)
        self.history: list[Exchange] = []  # every REGISTER transaction's outcome, in order
        self.ua: UserAgent | None = None
        self._addr = None
        self._cseq = 0
        self._tag = build.new_tag()
        self._call_id = ""
        self._auth: list[tuple[str, str]] = []
        self._task: asyncio.Task | None = None

    @property
    def refreshes(self) -> int:
        return max(0, len([e for e in self.history if e.expires]) - 1)

    @property
    def public(self) -> tuple[str, int] | None:
        """Our address as the registrar sees it, when it differs from the local one (NAT)."""
        return self.ua.public if self.ua is not None else None

    def contact(self) -> str:
        return self.ua.contact(self.user)

    async def start(self) -> Exchange:
        """Register; on success the refresh runs in the background until `stop()`. Never raises for
        network trouble: the Exchange says what went wrong."""
        try:
            self.ua, self._addr = await open_ua(self.registrar, self.transport, self.local_ip, self.t1, self.tls,
                                                self.tap)
        except (SiptoolError, OSError) as exc:
            ex = Exchange(error=str(exc))
            self.history.append(ex)
            return ex
        self._call_id = build.new_call_id(self.ua.local[0])
        ex = await self.register(self.expires)
        if ex.status and 200 <= ex.status < 300 and ex.expires:
            self._task = asyncio.create_task(self._refresh_loop(ex.expires))
        return ex

    def next_refresh(self, granted: int) -> float:
        """Seconds until the refresh: half the granted time, and at least `refresh_margin` before expiry."""
        return max(0.5, min(granted / 2, granted - self.refresh_margin))

    async def _refresh_loop(self, granted: int) -> None:
        while True:
            await asyncio.sleep(self.next_refresh(granted))
            ex = await self.register(self.expires)
            if not (ex.status and 200 <= ex.status < 300 and ex.expires):
                return  # the binding is lost; the history says why
            granted = ex.expires

    async def register(self, expires: int) -> Exchange:
        """One REGISTER transaction, answering challenges; never raises for network trouble."""
        out = Exchange()
        digest = DigestAnswer(self.creds, "REGISTER", self.registrar) if self.creds is not None else None
        t = time.monotonic()
        try:
            for _ in range(3):
                self._cseq += 1
                out.contact = self.contact()
                req = build.request("REGISTER", self.registrar, via_value=self.ua.via(),
                                     from_value=f"<{self.aor}>;tag={self._tag}", to_value=f"<{self.aor}>",
                                     call_id=self._call_id, cseq=self._cseq, contact=out.contact,
                                     headers=[("expires", str(expires))] + self._auth)
                resp = await self.ua.request(req, self._addr)
                if resp.status in (401, 407) and digest is not None:
                    try:
                        self._auth = [digest.answer(resp)]
                    except DigestRefused:
                        break  # the challenge is the final answer: out says which
                    out.challenged, out.algorithm = digest.challenged, digest.algorithm
                    continue  # (with the public Contact if this challenge revealed NAT)
                break
            out.status, out.reason = resp.status, resp.reason
            if 200 <= resp.status < 300:
                out.bindings = resp.get_all("contact")
            if 200 <= resp.status < 300 and expires:
                uri = out.contact.strip("<>").split(";")[0]
                out.expires = granted_expiry(resp, uri)
        except (SiptoolError, TransactionTimeout) as exc:
            out.error = str(exc)
        out.rtt_ms = round((time.monotonic() - t) * 1000, 2)
        self.history.append(out)
        self.on_event(out)
        return out

    async def stop(self, unregister: bool = True) -> Exchange | None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        ex = None
        try:
            if unregister and self.ua is not None and any(e.expires for e in self.history):
                ex = await self.register(0)
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

