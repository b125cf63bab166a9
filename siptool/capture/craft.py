"""IP packets built from addresses and a payload, whole or deliberately fragmented: the inverse of
decode.py and reassembly.py, for asking whether a path passes IP fragments (a SIP INVITE over UDP
larger than the path MTU arrives in fragments, and many firewalls, NATs and SBCs drop them), and
for writing packets received as HEP to a pcap (`ip_packet` with `udp_datagram` or `tcp_segment`).

`ip_packet` is one whole IPv4 or IPv6 packet around a transport header and payload (what the
agent's tap writes to a pcap, agent/tap.py). `fragment_udp` gives the IPv4 (RFC 791 2.3, 3.2) or
IPv6 (RFC 8200 4.5) packets of one UDP datagram (RFC 768; the checksum is always set, as IPv6
requires, RFC 8200 8.1) cut into pieces of at most `size` bytes each; `send_raw` puts them on the
wire through a raw socket (CAP_NET_RAW), from the address and port of the caller's own UDP socket,
so the answer comes back to that socket.

Hand-written rather than scapy's fragment()/fragment6(): forty lines against an import of ~0.2-0.4 s
and 24 MB for the runtime; the tests check the packets with scapy, tshark and our own reassembly.
"""

from __future__ import annotations

import socket
import struct

from ..errors import SiptoolError
from .decode import TCP, Packet

IPPROTO_TCP, IPPROTO_UDP, IPPROTO_FRAGMENT = 6, 17, 44
DONT_FRAGMENT, MORE_FRAGMENTS = 0x4000, 0x2000  # IPv4 flags (RFC 791 3.1)
IPV4_HEADER, IPV6_HEADER, FRAGMENT_HEADER, UDP_HEADER, TCP_HEADER = 20, 40, 8, 8, 20
TCP_PSH_ACK = 0x18
MIN_FRAGMENT = 68  # RFC 791: every IPv4 module forwards 68 bytes unfragmented (RFC 8200: 1280 for IPv6)


def udp_datagram(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    """UDP header and payload, with its checksum over the pseudo-header (RFC 768, RFC 8200 8.1)."""
    length = UDP_HEADER + len(payload)
    if length > 0xFFFF:
        raise SiptoolError(f"a UDP datagram holds at most {0xFFFF - UDP_HEADER} bytes, not {len(payload)}")
    header = struct.pack("!HHHH", sport, dport, length, 0)
    check = _checksum(_pseudo(src, dst, IPPROTO_UDP, length) + header + payload) or 0xFFFF  # 0: "none" (RFC 768)
    return struct.pack("!HHHH", sport, dport, length, check) + payload


def tcp_segment(src: str, sport: int, dst: str, dport: int, seq: int, payload: bytes, ack: int = 0,
                flags: int = TCP_PSH_ACK) -> bytes:
    """TCP header (no options) and payload, with its checksum over the pseudo-header (RFC 9293 3.1)."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, TCP_HEADER // 4 << 4,
                         flags, 0xFFFF, 0, 0)
    check = _checksum(_pseudo(src, dst, IPPROTO_TCP, TCP_HEADER + len(payload)) + header + payload)
    return header[:16] + struct.pack("!H", check) + header[18:] + payload


def ip_packet(src: str, dst: str, protocol: int, data: bytes, ident: int = 0, dont_fragment: bool = False) -> bytes:
    """One whole IPv4 (RFC 791 3.1, its header checksummed) or IPv6 (RFC 8200 3) packet carrying
    `data` (a UDP or TCP header and its payload), by the addresses' family; SiptoolError when it does
    not fit one."""
    if ":" in src:
        if len(data) > 0xFFFF:
            raise SiptoolError(f"an IPv6 packet carries at most 65535 bytes, not {len(data)}")
        return _ip6(src, dst, protocol, data)
    if IPV4_HEADER + len(data) > 0xFFFF:
        raise SiptoolError(f"an IPv4 packet carries at most {0xFFFF - IPV4_HEADER} bytes, not {len(data)}")
    return _ip4(src, dst, protocol, data, ident, DONT_FRAGMENT if dont_fragment else 0)


def rebuilt(pkt: Packet) -> bytes:
    """The IP packet a decoded UDP datagram or TCP segment (at its `tcp_seq`) would have come in: what
    a pcap of packets received without their headers (HEP) holds. SiptoolError when it does not fit."""
    if pkt.transport == TCP:
        return ip_packet(pkt.src, pkt.dst, IPPROTO_TCP,
                         tcp_segment(pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.tcp_seq, pkt.payload))
    return ip_packet(pkt.src, pkt.dst, IPPROTO_UDP, udp_datagram(pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.payload))


def _pseudo(src: str, dst: str, protocol: int, length: int) -> bytes:
    """The pseudo-header a UDP or TCP checksum covers (RFC 768, RFC 9293 3.1, RFC 8200 8.1)."""
    v6 = ":" in src
    family = socket.AF_INET6 if v6 else socket.AF_INET
    pseudo = socket.inet_pton(family, src) + socket.inet_pton(family, dst)
    return pseudo + (struct.pack("!IxxxB", length, protocol) if v6 else struct.pack("!xBH", protocol, length))


def fragment_udp(src: str, sport: int, dst: str, dport: int, payload: bytes, size: int = 576,
                 ident: int = 0x5349) -> list[bytes]:
    """The IP packets of one UDP datagram, each at most `size` bytes: a single packet when it fits,
    else fragments in order, the first carrying the UDP header. IPv4 or IPv6 by the addresses."""
    datagram = udp_datagram(src, sport, dst, dport, payload)
    if ":" in src:
        return _fragments6(src, dst, datagram, size, ident)
    return _fragments4(src, dst, datagram, size, ident)


def _pieces(data: bytes, room: int) -> list[tuple[int, bytes]]:
    """(offset, piece) cuts of `data` whose pieces but the last are a multiple of 8 bytes long."""
    step = room - room % 8
    if step < 8:
        raise SiptoolError(f"fragments of {room} bytes after the headers cannot carry 8-byte units")
    return [(off, data[off:off + step]) for off in range(0, len(data), step)]


def _fragments4(src: str, dst: str, datagram: bytes, size: int, ident: int) -> list[bytes]:
    if size < MIN_FRAGMENT:
        raise SiptoolError(f"IPv4 fragments are at least {MIN_FRAGMENT} bytes (RFC 791), not {size}")
    if IPV4_HEADER + len(datagram) <= size:
        return [_ip4(src, dst, IPPROTO_UDP, datagram, ident, 0)]
    cuts = _pieces(datagram, size - IPV4_HEADER)
    return [_ip4(src, dst, IPPROTO_UDP, piece, ident,
                 (MORE_FRAGMENTS if off + len(piece) < len(datagram) else 0) | off // 8) for off, piece in cuts]


def _ip4(src: str, dst: str, proto: int, data: bytes, ident: int, flags: int) -> bytes:
    """flags: the 16 bits of flags (MF, DF) and fragment offset in 8-byte units."""
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, IPV4_HEADER + len(data), ident & 0xFFFF, flags, 64,
                         proto, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + data


def _fragments6(src: str, dst: str, datagram: bytes, size: int, ident: int) -> list[bytes]:
    if IPV6_HEADER + len(datagram) <= size:
        return [_ip6(src, dst, IPPROTO_UDP, datagram)]
    cuts = _pieces(datagram, size - IPV6_HEADER - FRAGMENT_HEADER)
    out = []
    for off, piece in cuts:
        more = off + len(piece) < len(datagram)
        frag = struct.pack("!BBHI", IPPROTO_UDP, 0, off | (1 if more else 0), ident)
        out.append(_ip6(src, dst, IPPROTO_FRAGMENT, frag + piece))
    return out


def _ip6(src: str, dst: str, next_header: int, data: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(data), next_header, 64, socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + data


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def raw_allowed(dst: str) -> bool:
    """Whether this process may send crafted packets towards `dst` (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).close()
    except PermissionError:
        return False
    return True


def send_raw(packets: list[bytes], dst: str) -> None:
    """Send whole IP packets as they are (IPPROTO_RAW: the header is ours). Needs CAP_NET_RAW."""
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError:
        raise SiptoolError("sending crafted IP fragments needs root or the CAP_NET_RAW capability") from None
    with sock:
        for packet in packets:
            try:
                sock.sendto(packet, (dst, 0))
            except OSError as exc:
                raise SiptoolError(f"cannot send a crafted packet to {dst}: {exc.strerror}") from None
