"""Link, network and transport layers: record bytes -> UDP datagram, TCP segment or SCTP packet.

Hot path: plain slicing and struct on the common Ethernet/IPv4/UDP case. Handles 802.1Q/QinQ, MPLS,
PPPoE, Linux SLL/SLL2, raw IP, BSD NULL/LOOP, IPv6 extension headers, and the tunnels SIP captures
meet in the field: IP-in-IP, GRE and ERSPAN (port mirroring). IP fragments go to reassembly.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter

from .reassembly import FragmentBuffer

UDP, TCP, SCTP = "udp", "tcp", "sctp"
_ETH_VLAN = (0x8100, 0x88A8, 0x9100)
_H = struct.Struct("!H")
_HH = struct.Struct("!HH")
_TCP = struct.Struct("!HHIIBB")
_HI = struct.Struct("!HI")
_HHH = struct.Struct("!HHH")
# Ethernet type, IPv4 version/IHL, total length, flags/fragment offset, protocol, source, destination
_ETH_IP4 = struct.Struct("!12xHBxH2xHxB2x4s4s")
_IP6_EXT = (0, 43, 44, 51, 60)  # hop-by-hop, routing, fragment, AH, destination options (RFC 8200 4)
MAX_TUNNELS = 3  # IP-in-IP / GRE / ERSPAN layers followed before giving up
MALFORMED = "malformed link/IP header"


class Packet:
    """A UDP datagram, TCP segment or SCTP packet with where it came from. `payload` is the transport
    payload (for SCTP: the chunks after the common header, whose ports are sport and dport)."""

    __slots__ = ("frame", "time", "src", "sport", "dst", "dport", "transport", "payload",
                 "tcp_seq", "tcp_flags", "frames")

    def __init__(self, frame, time, src, sport, dst, dport, transport, payload, tcp_seq=0, tcp_flags=0):
        self.frame = frame
        self.time = time
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.transport = transport
        self.payload = payload
        self.tcp_seq = tcp_seq
        self.tcp_flags = tcp_flags
        self.frames = None  # for reassembled datagrams: every frame that carried a piece

    def __repr__(self) -> str:
        return (f"Packet(frame={self.frame}, {self.transport} {self.src}:{self.sport} -> "
                f"{self.dst}:{self.dport}, {len(self.payload)} bytes)")


class Decoder:
    """Turns capture records into Packets; counts what it skips and why."""

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()
        self.fragments = FragmentBuffer()
        self._names: dict[bytes, str] = {}

    def _ip4(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names[raw] = socket.inet_ntop(socket.AF_INET, raw)
        return name

    def _ip6(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = self._names[raw] = socket.inet_ntop(socket.AF_INET6, raw)
        return name

    def decode(self, frame: int, time: float, linktype: int, data: bytes) -> Packet | None:
        """Decode one record; None when it holds no UDP/TCP we can use (the reason is counted)."""
        if linktype == 1 and len(data) >= 42:  # fast path: Ethernet / IPv4 without options / UDP, whole
            etype, vihl, total, flags_frag, proto, src, dst = _ETH_IP4.unpack_from(data)
            if etype == 0x0800 and vihl == 0x45 and proto == 17 and not flags_frag & 0x3FFF and total >= 28:
                end = 14 + total
                if end > len(data):
                    end = len(data)
                if end >= 42:  # else: UDP header cut short, counted by the general path
                    sport, dport, ulen = _HHH.unpack_from(data, 34)
                    body = data[42:34 + ulen] if 8 <= ulen <= end - 34 else data[42:end]
                    names = self._names
                    s = names.get(src) or self._ip4(src)
                    d = names.get(dst) or self._ip4(dst)
                    return Packet(frame, time, s, sport, d, dport, UDP, body)
        try:
            if linktype == 1:
                return self._ether(frame, time, data, 0)
            if linktype == 113:  # Linux cooked v1: protocol at 14
                return self._ethertype(frame, time, data, _H.unpack_from(data, 14)[0], 16)
            if linktype == 276:  # Linux cooked v2: protocol at 0
                return self._ethertype(frame, time, data, _H.unpack_from(data, 0)[0], 20)
            if linktype in (101, 12, 14, 228, 229):
                return self._ip(frame, time, data, 0)
            if linktype in (0, 108):  # BSD loopback: 4-byte address family, either byte order
                return self._ip(frame, time, data, 4)
        except (struct.error, IndexError):
            self.skipped[MALFORMED] += 1
            return None
        self.skipped[f"unsupported link type {linktype}"] += 1
        return None

    def _ether(self, frame, time, data, off, depth=0):
        (etype,) = _H.unpack_from(data, off + 12)
        return self._ethertype(frame, time, data, etype, off + 14, depth)

    def _ethertype(self, frame, time, data, etype, off, depth=0):
        while etype in _ETH_VLAN:
            (etype,) = _H.unpack_from(data, off + 2)
            off += 4
        if etype == 0x0800 or etype == 0x86DD:
            return self._ip(frame, time, data, off, depth)
        if etype == 0x8847:  # MPLS: skip labels to bottom of stack, then IP by version nibble
            while not data[off + 2] & 0x01:
                off += 4
            return self._ip(frame, time, data, off + 4, depth)
        if etype == 0x8864:  # PPPoE session: 6-byte header + PPP protocol
            proto = _H.unpack_from(data, off + 6)[0]
            if proto in (0x0021, 0x0057):
                return self._ip(frame, time, data, off + 8, depth)
        self.skipped["not IP (ARP, LLDP, ...)"] += 1
        return None

    def _ip(self, frame, time, data, off, depth=0):
        version = data[off] >> 4
        if version == 4:
            return self._ipv4(frame, time, data, off, depth)
        if version == 6:
            return self._ipv6(frame, time, data, off, depth)
        self.skipped["not IP (ARP, LLDP, ...)"] += 1
        return None

    def _ipv4(self, frame, time, data, off, depth):
        ihl = (data[off] & 0x0F) * 4
        if ihl < 20 or len(data) < off + ihl:
            self.skipped[MALFORMED] += 1
            return None
        total = _H.unpack_from(data, off + 2)[0]
        flags_frag = _H.unpack_from(data, off + 6)[0]
        proto = data[off + 9]
        end = off + total if total >= ihl else len(data)  # TSO captures may carry total=0
        payload = data[off + ihl:end]
        src, dst = data[off + 12:off + 16], data[off + 16:off + 20]
        if flags_frag & 0x3FFF:  # more-fragments set or non-zero offset
            ident = _H.unpack_from(data, off + 4)[0]
            whole = self.fragments.add((src, dst, ident, proto), (flags_frag & 0x1FFF) * 8,
                                       bool(flags_frag & 0x2000), payload, frame, time)
            if whole is None:
                self.skipped["IP fragment (held for reassembly)"] += 1
                return None
            payload, frames = whole
            pkt = self._transport(frame, time, proto, self._ip4(src), self._ip4(dst), payload, depth)
            if pkt is not None:
                pkt.frames = frames
            return pkt
        return self._transport(frame, time, proto, self._ip4(src), self._ip4(dst), payload, depth)

    def _ipv6(self, frame, time, data, off, depth):
        if len(data) < off + 40:
            self.skipped[MALFORMED] += 1
            return None
        plen = _H.unpack_from(data, off + 4)[0]
        nxt = data[off + 6]
        src, dst = data[off + 8:off + 24], data[off + 24:off + 40]
        pos, end = off + 40, off + 40 + plen if plen else len(data)
        frames = None
        while nxt in _IP6_EXT:
            if nxt == 44:  # fragment header: what follows is a piece of the fragmentable part
                offset_flags, ident = _HI.unpack_from(data, pos + 2)
                nxt, pos = data[pos], pos + 8
                if offset_flags & 0xFFF9:  # offset or M flag set (else an atomic fragment, RFC 6946)
                    whole = self.fragments.add((src, dst, ident), offset_flags & 0xFFF8,
                                               bool(offset_flags & 1), data[pos:end], frame, time)
                    if whole is None:
                        self.skipped["IP fragment (held for reassembly)"] += 1
                        return None
                    data, frames = whole  # may begin with more extension headers
                    pos, end = 0, len(data)
            elif nxt == 51:  # AH: length in 4-octet units minus 2
                nxt, pos = data[pos], pos + (data[pos + 1] + 2) * 4
            else:
                nxt, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        pkt = self._transport(frame, time, nxt, self._ip6(src), self._ip6(dst), data[pos:end], depth)
        if pkt is not None and frames is not None:
            pkt.frames = frames
        return pkt

    def _transport(self, frame, time, proto, src, dst, payload, depth):
        if proto == 17:
            if len(payload) < 8:
                self.skipped["UDP header cut short"] += 1
                return None
            sport, dport, ulen = struct.unpack_from("!HHH", payload)
            body = payload[8:ulen] if 8 <= ulen <= len(payload) else payload[8:]
            return Packet(frame, time, src, sport, dst, dport, UDP, body)
        if proto == 6:
            sport, dport, seq, _ack, offx, flags = _TCP.unpack_from(payload)
            doff = (offx >> 4) * 4
            if doff < 20 or doff > len(payload):
                self.skipped["TCP header cut short" if doff >= 20 else "TCP header length below 20 bytes"] += 1
                return None
            return Packet(frame, time, src, sport, dst, dport, TCP, payload[doff:], seq, flags)
        if proto == 132:  # SCTP (RFC 9260 3.1): ports, verification tag, checksum, then chunks
            if len(payload) < 12:
                self.skipped["SCTP header cut short"] += 1
                return None
            sport, dport = _HH.unpack_from(payload)
            return Packet(frame, time, src, sport, dst, dport, SCTP, payload[12:])
        if proto in (4, 41, 47):
            if depth >= MAX_TUNNELS:
                self.skipped["tunnels nested too deep"] += 1
                return None
            if proto == 47:
                return self._gre(frame, time, payload, depth + 1)
            return self._ip(frame, time, payload, 0, depth + 1)  # IP in IP
        self.skipped[_PROTO_NAMES.get(proto, f"IP protocol {proto}")] += 1
        return None

    def _gre(self, frame, time, data, depth):
        flags, proto = _HH.unpack_from(data)
        off = 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))
        if proto == 0x88BE:  # ERSPAN type II (type I when no sequence number)
            return self._ether(frame, time, data, off + (8 if flags & 0x1000 else 0), depth)
        if proto == 0x22EB:  # ERSPAN type III, optional 8-byte subheader
            return self._ether(frame, time, data, off + 12 + (8 if data[off + 11] & 0x01 else 0), depth)
        if proto == 0x6558:  # transparent Ethernet bridging
            return self._ether(frame, time, data, off, depth)
        if proto in (0x0800, 0x86DD):
            return self._ip(frame, time, data, off, depth)
        self.skipped[f"GRE protocol 0x{proto:04x}"] += 1
        return None


_PROTO_NAMES = {1: "ICMP", 2: "IGMP", 58: "ICMPv6", 89: "OSPF", 112: "VRRP", 50: "IPsec ESP"}
