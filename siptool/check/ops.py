"""Non-INVITE operations for checks, built on siptool.agent's public classes, recording their own packets.

siptool.agent.caller's `options_ping` and `register` take no pcap tap; these do the same exchanges
(RFC 3261 11 OPTIONS, RFC 3261 10 REGISTER with a digest answer per RFC 3261 22 / RFC 7616) through
`UserAgent(..., tap=PcapTap(path))` so the check's ladder comes from the analyser like a call's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..agent import sipmsg
from ..agent.auth import Credentials, pick_challenge
from ..agent.caller import AgentError, CallOptions, _hop, _resolve
from ..agent.pcap import PcapTap
from ..agent.transaction import Timers
from ..agent.transport import TlsOptions
from ..agent.ua import TransactionTimeout, UserAgent
from ..errors import SiptoolError


@dataclass
class Exchange:
    """The end of one non-INVITE request: final status, round trip, what authentication happened."""

    status: int | None = None
    reason: str = ""
    rtt_ms: float | None = None
    challenged: str | None = None  # "401"/"407" when a challenge was answered
    algorithm: str | None = None  # digest algorithm of the answered challenge
    expires: int | None = None  # REGISTER: expiry the registrar granted
    error: str = ""


async def _ua(uri: str, transport: str | None, local_ip: str, t1: float, tls: TlsOptions | None, tap):
    hop, kind = _hop(CallOptions(uri=uri, transport=transport, local_ip=local_ip, t1=t1))
    addr = await _resolve(*hop.hostport())
    ua = UserAgent(kind, local_ip, 0, Timers(t1), (tls or TlsOptions()) if kind == "tls" else None, None, tap)
    await ua.start()
    if kind != "udp":  # connect first so Via and Contact carry the real local port
        await ua.transport.send(b"", addr)
    return ua, addr


async def options(uri: str, transport: str | None = None, local_ip: str = "127.0.0.1", t1: float = 0.5,
                  tls: TlsOptions | None = None, pcap: str | None = None) -> Exchange:
    """OPTIONS ping (RFC 3261 11): final status and round trip; never raises for network trouble."""
    tap = PcapTap(pcap) if pcap else None
    out = Exchange()
    ua = None
    try:
        ua, addr = await _ua(uri, transport, local_ip, t1, tls, tap)
        host, _ = ua.local
        req = sipmsg.request("OPTIONS", uri, via_value=ua.via(),
                             from_value=f"<sip:siptool@{host}>;tag={sipmsg.new_tag()}", to_value=f"<{uri}>",
                             call_id=sipmsg.new_call_id(host), cseq=1, contact=ua.contact(),
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


async def register(registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                   transport: str | None = None, local_ip: str = "127.0.0.1", t1: float = 0.5,
                   tls: TlsOptions | None = None, pcap: str | None = None, unregister: bool = False) -> Exchange:
    """REGISTER (RFC 3261 10.2) answering one digest challenge (a second challenge for a fresh nonce
    means the credentials were refused). `unregister` sends Expires: 0 afterwards on success (10.2.2)."""
    tap = PcapTap(pcap) if pcap else None
    out = Exchange()
    ua = None
    try:
        ua, addr = await _ua(registrar, transport, local_ip, t1, tls, tap)
        host, _ = ua.local
        creds = Credentials(user or sipmsg.parse_uri(aor).user, password) if password is not None else None
        tag, call_id = sipmsg.new_tag(), sipmsg.new_call_id(host)
        extra: list[tuple[str, str]] = []
        nonces: set[str] = set()
        cseq = 0

        async def send(exp: int):
            nonlocal cseq
            cseq += 1
            req = sipmsg.request("REGISTER", registrar, via_value=ua.via(), from_value=f"<{aor}>;tag={tag}",
                                 to_value=f"<{aor}>", call_id=call_id, cseq=cseq,
                                 contact=ua.contact(user or "siptool"), headers=[("expires", str(exp))] + extra)
            return await ua.request(req, addr)

        t = time.monotonic()
        for _ in range(3):
            resp = await send(expires)
            if resp.status in (401, 407) and creds is not None:
                proxy = resp.status == 407
                ch = pick_challenge(resp.get_all("proxy-authenticate" if proxy else "www-authenticate"), proxy)
                if ch is None or (nonces and not ch.stale):
                    break
                nonces.add(ch.nonce)
                out.challenged, out.algorithm = str(resp.status), getattr(ch, "algorithm", None)
                extra = [("proxy-authorization" if proxy else "authorization",
                          creds.authorization(ch, "REGISTER", registrar))]
                continue
            break
        out.rtt_ms = round((time.monotonic() - t) * 1000, 2)
        out.status, out.reason = resp.status, resp.reason
        if 200 <= resp.status < 300:
            from ..sip.message import param
            for c in resp.get_all("contact"):
                e = param(c, "expires")
                if e and e.isdigit():
                    out.expires = int(e)
            if out.expires is None and (resp.get("expires") or "").strip().isdigit():
                out.expires = int(resp.get("expires").strip())
            if unregister:
                try:
                    await send(0)  # the nonce may be stale by now; a challenge here is not an error
                except SiptoolError:
                    pass
    except (SiptoolError, TransactionTimeout) as exc:
        out.error = str(exc)
    finally:
        if ua is not None:
            await ua.close()
        if tap is not None:
            tap.close()
    return out


__all__ = ["Exchange", "options", "register", "AgentError"]
