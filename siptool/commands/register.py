"""`siptool register AOR`: register, keep the binding refreshed, unregister; report NAT as seen."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Optional

import typer

from ..status import ExitStatus

from .call import read_password
from .common import console, epilog, guarded

EPILOG = epilog([
    ("", "SIP_PW=pw siptool register sip:alice@pbx.example.com --password-env SIP_PW"),
    ("watch 5 minutes of refreshes, one a minute",
     "siptool register sip:bob@pbx.example --password-file pw -d 300 --expires 60"),
    ("over TLS, as JSON", "siptool register sips:alice@pbx.example.com --password-env SIP_PW --json"),
    ("a registrar by its domain (NAPTR, SRV: RFC 3263), failing over",
     "siptool register sip:al@example.com --dns-server 10.0.0.53 --password-env PW"),
],  "The registrar is located as RFC 3263 says (see siptool call --help); a server that gives a transport "
    "error, no response or 503 is left for the next, and each REGISTER lists the servers it went to.",
    "Exit codes: 0 registered (and every refresh succeeded); 1 refused, timed out or a refresh failed; "
    "2 bad arguments; 3 internal error.")


def register_aor(
    aor: str = typer.Argument(..., help="Address of record, sip:USER@DOMAIN."),
    registrar: Optional[str] = typer.Option(None, "--registrar", help="Registrar URI (default: the AOR's domain)."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Digest user name (default: the AOR's user)."),
    password_env: Optional[str] = typer.Option(None, "--password-env", help="Environment variable holding the password."),
    password_file: Optional[Path] = typer.Option(None, "--password-file", help="File whose first line is the password."),
    transport: Optional[str] = typer.Option(None, "--transport", "-t", help="udp, tcp, tls, ws or wss."),
    expires: int = typer.Option(300, "--expires", help="Expiry to ask for, seconds."),
    duration: float = typer.Option(0.0, "--duration", "-d", help="Keep the binding refreshed this long, then "
                                   "unregister (0: register and unregister at once)."),
    keep: bool = typer.Option(False, "--keep", help="Do not unregister at the end."),
    local_ip: Optional[str] = typer.Option(None, "--local-ip", help="Local address to send from (default: the "
                                           "source address of the route to the registrar)."),
    t1: float = typer.Option(0.5, "--t1", help="RFC 3261 T1 in seconds (timer F = 64*T1)."),
    dns_server: Optional[str] = typer.Option(None, "--dns-server", help="Ask this DNS server, ADDR[:PORT], for the "
                                             "records that locate the registrar (RFC 3263; default: the system's)."),
    target_timeout: Optional[float] = typer.Option(None, "--target-timeout", help="Fail over to the next server "
                                                   "after this many seconds without a response (default: timer F)."),
    json_out: bool = typer.Option(False, "--json", help="Print every REGISTER's outcome as JSON."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours."),
) -> None:
    """REGISTER with digest auth, refreshed before expiry; shows whether the registrar sees you behind NAT."""
    with guarded():
        from ..agent import inputs
        from ..agent.dns import dns_server as dns_address
        from ..agent.options import CallOptions, _hop
        from ..agent.register import Registration

        password = read_password(password_env, password_file)
        u = inputs.sip_uri(aor)
        target = registrar or f"{u.scheme}:{u.host}" + (f":{u.port}" if u.port else "")
        _hop(CallOptions(uri=target, transport=transport))  # URI, port and transport, checked
        inputs.number("--expires", expires, 1, 2**32 - 1, unit="s")
        inputs.number("--duration", duration, 0, 7 * 86400, unit="s")
        inputs.number("--t1", t1, 0, 30, above=True, unit="s")
        dns_address(dns_server)
        if target_timeout is not None:
            inputs.number("--target-timeout", target_timeout, 0, 3600, above=True, unit="s")
        if local_ip:
            inputs.local_address("--local-ip", local_ip)
        out = console(no_color)
        from ..report import agent_view as view

        def show(ex) -> None:
            if not json_out:
                out.print(view.register_line(ex))

        async def run() -> Registration:
            reg = Registration(target, aor, user, password, expires, transport, local_ip, t1, on_event=show,
                               dns_server=dns_server, target_timeout=target_timeout)
            try:
                await reg.start()
                ok = any(e.expires for e in reg.history)
                if ok and duration > 0:
                    await asyncio.sleep(duration)
            finally:
                await reg.stop(unregister=not keep)
            return reg

        reg = asyncio.run(run())
        grants = [e for e in reg.history if e.expires]
        failed = [e for e in reg.history if e.status is None or e.status >= 300]
        success = bool(grants) and not [e for e in failed if e.at > grants[0].at]
        if json_out:
            typer.echo(json.dumps(view.register_json(aor, target, success, reg), indent=1))
        else:
            view.register_summary(out, reg, success, keep)
        if not success:
            raise typer.Exit(ExitStatus.FAILED)


def register(app: typer.Typer) -> None:
    app.command("register", epilog=EPILOG)(register_aor)
