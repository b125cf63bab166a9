"""Which address a test call uses and advertises, and what a NAT between us and the far end does.

- The local address is the one the kernel picks for the route to the first hop (no packet sent).
- Behind NAT the far end sees another address. We learn it before the INVITE, so that Contact and
  the SDP carry an address the far end can answer to: from received/rport in the response to an
  OPTIONS (RFC 3581 4), or from a STUN server the user names (RFC 5389), or as --public-ip says.
- `NatView.describe()` says it in plain words for the call's summary.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import asdict, dataclass

from ..errors import SiptoolError
from ..status import ExitStatus

Addr = tuple[str, int]


class NoRoute(SiptoolError):
    exit_code = ExitStatus.FAILED


def route_source(host: str) -> str:
    """The source address the kernel routes to `host` from (a connected UDP socket; nothing sent)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return s.getsockname()[0]
    except OSError as exc:
        raise NoRoute(f"no route to {host}: {exc.strerror or exc} (give --local-ip)") from None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class NatView:
    """One call's addresses: local, as the far end (or a STUN server) saw them, and as advertised."""

    local: str = ""  # SIP socket, host:port
    local_rtp: str = ""
    seen: str | None = None  # our SIP address as the far end's responses show it (received/rport)
    learned_by: str = ""  # "OPTIONS", "STUN host:port", "--public-ip", "" (not learned)
    stun_rtp: str | None = None  # our RTP socket as the STUN server saw it
    contact: str = ""  # host:port in our Contact
    sdp: str = ""  # c= address and m= port of our offer
    transport: str = "udp"
    behind_nat: bool | None = None  # None: cannot tell
    text: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The NAT situation in one line of clauses split by '; ', e.g. 'NAT: local 192.168.1.5:5060,
        the far end sees 203.0.113.7:5060; from an OPTIONS' received/rport (RFC 3581); Contact
        203.0.113.7:5060, SDP 203.0.113.7:40000; media relies on the far end latching to our RTP
        (symmetric RTP, RFC 4961)'. Sets `behind_nat` and `text` too."""
        host = _host(self.local)
        if self.seen is not None and (self.seen == self.local or
                                      (self.transport != "udp" and _host(self.seen) == host)):
            self.behind_nat = False
            self.text = f"NAT: none, the far end sees our local address {self.local}"
            return self.text
        if self.seen is not None:
            self.behind_nat = True
            how = "an OPTIONS'" if self.learned_by == "OPTIONS" else "the responses'"
            head = f"NAT: local {self.local}, the far end sees {self.seen}; from {how} received/rport (RFC 3581)"
        elif self.learned_by.startswith("STUN"):
            self.behind_nat = _host(self.contact) != host
            head = f"NAT: local {self.local}, {self.learned_by} sees {self.contact}"
        elif self.learned_by == "--public-ip":
            head = f"NAT: local {self.local}, --public-ip given (no response showed what the far end sees)"
        elif is_loopback(host):
            self.behind_nat = False
            self.text = "NAT: none (loopback)"
            return self.text
        else:
            self.text = (f"NAT: unknown (no received/rport in the responses); local {self.local} "
                         "advertised in Contact and SDP")
            return self.text
        if self.transport != "udp":
            tail = f"over {self.transport.upper()} its requests come back on our connection"
        elif self.behind_nat and _host(self.sdp) == host:
            tail = f"but Contact and SDP advertise {host}, which it cannot reach (give --public-ip or --stun)"
        else:
            media = (f"RTP {self.local_rtp} is {self.stun_rtp} outside (STUN)" if self.stun_rtp else
                     "media relies on the far end latching to our RTP (symmetric RTP, RFC 4961)")
            tail = f"Contact {self.contact}, SDP {self.sdp}; {media}"
        self.text = f"{head}; {tail}"
        return self.text


def _host(hostport: str | None) -> str:
    return (hostport or "").rpartition(":")[0].strip("[]")


def hostport(addr: Addr | None) -> str | None:
    """'host:port' ('[v6]:port') or None."""
    if addr is None:
        return None
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


async def resolve(host: str, port: int) -> tuple[str, int]:
    """(address, port) of a host name or literal, the first the resolver gives (UDP)."""
    from .options import AgentError

    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise AgentError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return infos[0][4][0], port
