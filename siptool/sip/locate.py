"""Locating SIP servers (RFC 3263), sans-I/O: which DNS questions to ask for a URI, and the ordered
list of servers to try that their answers give.

    plan = locate(uri, transport)          a generator: it yields Query(name, rdtype) ...
    answer = plan.send(records)            ... and takes the records found (an empty list: none)
    StopIteration.value                    the Resolution: how it was found, and its servers

The steps (RFC 3263 4.1, 4.2):
- the transport: a `transport` parameter or the caller's choice; else a numeric host or an explicit
  port means UDP (TLS for sips:); else NAPTR records of the domain (flag "s", services SIP+D2U,
  SIP+D2T, SIPS+D2T), the lowest order and preference first; with none, SRV queries for each
  transport supported (_sip._udp, _sip._tcp, _sips._tcp), the first that answers; with none of
  those, UDP (TLS for sips:). `sips:` allows TLS (or WSS) only. WS and WSS (RFC 7118) are placed
  only when asked for, and not looked up by NAPTR/SRV: the host's addresses.
- the servers: a numeric host is the one server; an explicit port skips SRV (A/AAAA of the host);
  else the SRV records of the transport's name (the NAPTR replacement, or _sip._udp.DOMAIN ...)
  and the addresses (A, then AAAA) of each target; with no SRV record, the addresses of the host
  on the transport's default port.

Which server first is decided for each request (RFC 3263 4.3, RFC 2782): `Resolution.order(rng)`
sorts by priority and draws among equal priorities at random in proportion to weight; each SRV
target gives its addresses in order. The driver (agent/dns.py) asks the questions; the caller's
random generator is passed in (tests seed it)."""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Generator

from .uri import Uri

SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}  # RFC 3263 4.1 (D2S, D2W: not placed)
SRV_NAMES = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}  # RFC 3263 4.1, RFC 2782
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061, "ws": 80, "wss": 443}  # RFC 3261 19.1.2, RFC 6455 3
TRANSPORTS = ("udp", "tcp", "tls")  # the order tried when a domain has no NAPTR records
WEBSOCKET = ("ws", "wss")  # RFC 7118: placed when asked for, never found by NAPTR/SRV here (the address only)


class LocateError(ValueError):
    """A URI that cannot be located as given (sips: over UDP, an unknown transport)."""


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    rdtype: str  # "NAPTR", "SRV", "A" or "AAAA"


@dataclass(frozen=True, slots=True)
class Naptr:
    """One NAPTR record (RFC 3403 4.1), as RFC 3263 4.1 reads it."""

    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True, slots=True)
class Srv:
    """One SRV record (RFC 2782)."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Server:
    """One place to send a request: `name` is the host name it came from (the SRV target, or the
    URI's host), `found` how it was found ("NAPTR+SRV", "SRV", "A", "AAAA", "numeric")."""

    name: str
    address: str
    port: int
    transport: str
    found: str
    priority: int = 0
    weight: int = 0

    def addr(self) -> tuple[str, int]:
        return self.address, self.port


@dataclass
class _Entry:
    """An SRV record (or the host itself) with the addresses its name resolved to."""

    srv: Srv
    servers: list[Server]


@dataclass
class Resolution:
    """What the lookups found: the transport, every step in words, and the entries to order."""

    host: str
    transport: str
    steps: list[str] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)

    @property
    def servers(self) -> list[Server]:
        """Every server found, in record order (not drawn)."""
        return [s for e in self.entries for s in e.servers]

    def order(self, rng: random.Random) -> list[Server]:
        """The servers in the order one request tries them (RFC 2782: by priority, and among equal
        priorities a weighted random draw without replacement, zero weights first in the draw)."""
        out: list[Server] = []
        for prio in sorted({e.srv.priority for e in self.entries}):
            left = sorted((e for e in self.entries if e.srv.priority == prio), key=lambda e: e.srv.weight != 0)
            while left:
                total = sum(e.srv.weight for e in left)
                pick = rng.randint(0, total)
                running = 0
                for i, e in enumerate(left):
                    running += e.srv.weight
                    if running >= pick:
                        out += left.pop(i).servers
                        break
        return out


def transport_of(uri: Uri, transport: str | None) -> str | None:
    """The transport fixed before any lookup (RFC 3263 4.1), or None when NAPTR/SRV decide."""
    secure = uri.scheme == "sips"
    kind = (transport or uri.transport or "").lower() or None
    if kind is not None and kind not in TRANSPORTS + WEBSOCKET:
        raise LocateError(f"unknown transport {kind!r}: use udp, tcp, tls, ws or wss")
    if secure and kind not in (None, "tls", "tcp", "wss"):
        raise LocateError(f"a sips: URI needs TLS, not {kind.upper()} (RFC 3261 26.2.2)")
    if secure and kind is not None:
        return "wss" if kind == "wss" else "tls"  # sips: over TCP means TLS over TCP (RFC 3263 4.1)
    if kind is not None:
        return kind
    if _numeric(uri.host) or uri.port:
        return "tls" if secure else "udp"
    return None


def locate(uri: Uri, transport: str | None = None,
           supported: tuple[str, ...] = TRANSPORTS) -> Generator[Query, list, Resolution]:
    """The RFC 3263 steps for `uri` (the first hop: the outbound proxy when there is one)."""
    host, secure = uri.host, uri.scheme == "sips"
    kind = transport_of(uri, transport)
    if _numeric(host):
        port = uri.port or DEFAULT_PORTS[kind]
        res = Resolution(host, kind, [f"{host} is an address: no DNS lookup (RFC 3263 4.2)"])
        res.entries.append(_Entry(Srv(0, 0, port, host), [Server(host, host, port, kind, "numeric")]))
        return res
    res = Resolution(host, kind or "")
    if uri.port:
        res.steps.append(f"port {uri.port} given: no NAPTR/SRV lookup, {kind.upper()} (RFC 3263 4.1, 4.2)")
        yield from _addresses(res, Srv(0, 0, uri.port, host), "")
        return res
    records: list[Srv] = []
    srv_name, found = "", "SRV"
    if kind is None:
        for naptr in _usable(host, (yield Query(host, "NAPTR")), secure, supported, res):
            srv_name, kind = naptr.replacement, SERVICES[naptr.service.upper()]
            records = yield Query(srv_name, "SRV")
            res.steps.append(f"NAPTR {host}: {naptr.service} -> SRV {srv_name}: "
                             + (f"{len(records)} record(s)" if records else "none"))
            if records:
                found = "NAPTR+SRV"
                break
        else:
            for k in ("tls",) if secure else tuple(t for t in TRANSPORTS if t in supported):
                srv_name = f"{SRV_NAMES[k]}.{host}"
                records = yield Query(srv_name, "SRV")
                res.steps.append(f"SRV {srv_name}: " + (f"{len(records)} record(s)" if records else "none"))
                if records:
                    kind = k
                    break
            else:
                kind = "tls" if secure else "udp"
    elif kind in WEBSOCKET:
        res.steps.append(f"{kind.upper()} given: no SRV lookup for WebSocket (RFC 7118)")
    else:
        srv_name = f"{SRV_NAMES[kind]}.{host}"
        records = yield Query(srv_name, "SRV")
        res.steps.append(f"{kind.upper()} given; SRV {srv_name}: "
                         + (f"{len(records)} record(s)" if records else "none"))
    res.transport = kind
    records = [r for r in records if r.target not in ("", ".")]  # "." : the service is not offered here
    if not records:
        res.steps.append(f"no SRV records: {host} on port {DEFAULT_PORTS[kind]} (RFC 3263 4.2)")
        yield from _addresses(res, Srv(0, 0, DEFAULT_PORTS[kind], host), "")
        return res
    for r in sorted(records, key=lambda r: (r.priority, -r.weight, r.target, r.port)):
        yield from _addresses(res, r, found)
    return res


def _usable(host: str, records: list, secure: bool, supported: tuple[str, ...], res: Resolution) -> list[Naptr]:
    """NAPTR records RFC 3263 4.1 lets us use: flag "s", a SIP service we place calls over (only
    SIPS+D2T for sips:), lowest order, then preference, first."""
    ok = [r for r in records if r.flags.lower() == "s" and r.service.upper() in SERVICES
          and SERVICES[r.service.upper()] in supported and (not secure or r.service.upper() == "SIPS+D2T")]
    if not records:
        res.steps.append(f"NAPTR {host}: none")
    elif not ok:
        res.steps.append(f"NAPTR {host}: {len(records)} record(s), none for a SIP transport used here")
    return sorted(ok, key=lambda r: (r.order, r.preference))


def _addresses(res: Resolution, srv: Srv, found: str) -> Generator[Query, list, None]:
    """A and AAAA of an SRV target (or the host), one Server per address."""
    name = srv.target.rstrip(".")
    servers = []
    for rdtype in ("A", "AAAA"):
        for address in (yield Query(name, rdtype)):
            servers.append(Server(name, address, srv.port, res.transport, found or rdtype, srv.priority, srv.weight))
    if found:
        res.steps.append(f"SRV {srv.priority} {srv.weight} {srv.port} {name}: "
                         + (", ".join(s.address for s in servers) or "no address"))
    elif not servers:
        res.steps.append(f"{name}: no A/AAAA record")
    res.entries.append(_Entry(srv, servers))


def _numeric(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
