"""What kind of address an IP is, for NAT diagnosis: the ranges that cannot be reached across the
Internet (RFC 1918, RFC 6598, RFC 4193, link-local) against everything else.

Python's `ipaddress.is_private` also counts documentation (RFC 5737) and other special ranges as
private; those stand for public hosts in examples and labs, so they are not used here."""

from __future__ import annotations

import functools
import ipaddress

_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                   "fc00::/7"))  # RFC 1918, RFC 4193 (ULA)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598
UNREACHABLE = ("private", "cgnat", "link-local")  # kinds an Internet host cannot send to


@functools.lru_cache(maxsize=65536)
def address_kind(ip: str) -> str:
    """'private', 'cgnat', 'link-local', 'loopback', 'unspecified', 'multicast', 'public', or
    'unknown' for text that is not an IP address."""
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if addr.version == 4 and addr in _CGNAT:
        return "cgnat"
    if any(addr.version == n.version and addr in n for n in _PRIVATE):
        return "private"
    return "public"


def split(endpoint: str) -> tuple[str, int]:
    """'ip:port' or '[v6]:port' -> (ip, port); port 0 when absent or not a number."""
    host, _, port = endpoint.rpartition(":")
    if not _:
        return endpoint.strip("[]"), 0
    return host.strip("[]"), int(port) if port.isdigit() else 0


def host(endpoint: str) -> str:
    return split(endpoint)[0]
