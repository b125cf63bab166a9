"""The DNS driver of server location: asks the questions sip/locate.py's steps yield, with
dnspython's asyncio resolver, and hands back the records (RFC 3263).

- `--dns-server ADDR[:PORT]` sends every question (NAPTR, SRV, A, AAAA) to that server (tests, split
  DNS). Without it NAPTR and SRV go to the system's resolvers (/etc/resolv.conf) and addresses come
  from the system's own lookup (getaddrinfo: /etc/hosts too).
- A name under `localhost` (RFC 6761 6.3) is never sent to a DNS server.
- A server that does not answer, refuses or fails counts as no records, and the step says so: a
  trunk reachable by its address still gets its call."""

from __future__ import annotations

import asyncio
import socket

from ..errors import SiptoolError
from ..sip.locate import LocateError, Naptr, Query, Resolution, Srv, locate
from ..sip.uri import Uri
from ..status import ExitStatus
from . import inputs

TIMEOUT_S = 3.0  # one question, all tries included
DNS_PORT = 53


class DnsError(SiptoolError):
    """A name that resolves to no address at all (exit 1: the trunk's side)."""

    exit_code = ExitStatus.FAILED


def dns_server(text: str | None) -> tuple[str, int] | None:
    """--dns-server ADDR[:PORT] (an IP address: a name would need DNS to find DNS)."""
    if not text:
        return None
    host, port = inputs.host_port("--dns-server", text, DNS_PORT)
    return inputs.ip_address("--dns-server", host), port


class Resolver:
    """Answers sip/locate.py's questions. `server`: (address, port) of the one DNS server to ask."""

    def __init__(self, server: tuple[str, int] | None = None, timeout: float = TIMEOUT_S) -> None:
        import dns.asyncresolver  # lazy: dnspython is only needed once a name is looked up

        self.server = server
        self.problems: list[str] = []  # DNS failures, one line each (they count as "no records")
        if server is not None:
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = [server[0]]
            self._dns.port = server[1]
        else:
            try:
                self._dns = dns.asyncresolver.Resolver()
            except Exception as exc:  # noqa: BLE001 - no resolv.conf: names go through getaddrinfo only
                self._dns = None
                self.problems.append(f"no DNS resolver configured ({type(exc).__name__})")
        if self._dns is not None:
            self._dns.lifetime = timeout
            self._dns.timeout = timeout / 3

    async def answer(self, q: Query) -> list:
        if _local(q.name):
            return await self._system(q) if q.rdtype in ("A", "AAAA") else []
        if self.server is None and q.rdtype in ("A", "AAAA"):
            return await self._system(q)
        if self._dns is None:
            return []
        import dns.exception
        import dns.resolver

        try:
            answer = await self._dns.resolve(q.name, q.rdtype, search=False, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.NoResolverConfiguration) as exc:
            self.problems.append(f"DNS {q.rdtype} {q.name}: {_why(exc)}")
            return []
        except dns.exception.DNSException as exc:
            self.problems.append(f"DNS {q.rdtype} {q.name}: {type(exc).__name__}")
            return []
        return [_record(q.rdtype, r) for r in (answer.rrset or [])]

    async def _system(self, q: Query) -> list[str]:
        fam = socket.AF_INET if q.rdtype == "A" else socket.AF_INET6
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(q.name, None, family=fam, type=socket.SOCK_DGRAM)
        except OSError:
            return []
        seen: list[str] = []
        for info in infos:
            if info[4][0] not in seen:
                seen.append(info[4][0])
        return seen

    async def locate(self, uri: Uri, transport: str | None = None) -> Resolution:
        """Run the RFC 3263 steps for `uri`. Raises DnsError when no server was found."""
        try:
            steps = locate(uri, transport)
            q = next(steps)
            while True:
                q = steps.send(await self.answer(q))
        except StopIteration as done:
            res: Resolution = done.value
        except LocateError as exc:
            raise SiptoolError(str(exc)) from None
        res.steps += self.problems
        if not res.servers:
            raise DnsError(f"{uri.host}: no server found ({'; '.join(res.steps)})")
        return res


def _record(rdtype: str, r):
    if rdtype == "NAPTR":
        flags, service = r.flags.decode("ascii", "replace"), r.service.decode("ascii", "replace")
        return Naptr(r.order, r.preference, flags, service, r.replacement.to_text(omit_final_dot=True))
    if rdtype == "SRV":
        return Srv(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
    return r.address


def _why(exc) -> str:
    import dns.resolver

    if isinstance(exc, dns.resolver.NoNameservers):
        return "every DNS server failed or refused"
    if isinstance(exc, dns.resolver.NoResolverConfiguration):
        return "no DNS resolver configured"
    return "no answer (timeout)"


def _local(name: str) -> bool:
    n = name.lower().rstrip(".")
    return n == "localhost" or n.endswith(".localhost")


async def locate_hop(uri: str, proxy: str | None = None, transport: str | None = None,
                     server: str | None = None) -> Resolution:
    """The servers of a request's first hop (the outbound proxy when there is one), RFC 3263."""
    hop = inputs.sip_uri(proxy) if proxy else inputs.sip_uri(uri)
    return await Resolver(dns_server(server)).locate(hop, transport)
