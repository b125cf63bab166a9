"""Non-INVITE operations for checks: OPTIONS and REGISTER from siptool.agent.register, each feeding
its own packets to the Analyzer (agent/tap.py) so the check's ladder and findings come from it, as a
call's do."""

from __future__ import annotations

from ..agent.caller import AgentError
from ..agent.tap import AgentTap
from ..agent.register import Exchange, Registration
from ..agent.register import options as _options
from ..agent.transport import TlsOptions


async def options(uri: str, transport: str | None = None, local_ip: str = "127.0.0.1", t1: float = 0.5,
                  tls: TlsOptions | None = None, tap: AgentTap | None = None, **locate) -> Exchange:
    """OPTIONS ping (RFC 3261 11): final status and round trip; never raises for network trouble.
    `locate`: dns_server, target_timeout, to (agent/register.options)."""
    return await _options(uri, transport, local_ip, t1, tls, tap, **locate)


async def register(registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                   transport: str | None = None, local_ip: str = "127.0.0.1", t1: float = 0.5,
                   tls: TlsOptions | None = None, tap: AgentTap | None = None, unregister: bool = False,
                   **locate) -> Exchange:
    """One REGISTER (RFC 3261 10.2) answering one digest challenge; `unregister` sends Expires: 0
    afterwards on success (10.2.2). `locate`: dns_server, target_timeout."""
    reg = Registration(registrar, aor, user, password, expires, transport, local_ip, t1, tls, tap, **locate)
    try:
        ex = await reg.start()
    finally:
        await reg.stop(unregister=unregister)
    return ex


__all__ = ["Exchange", "options", "register", "AgentError"]
