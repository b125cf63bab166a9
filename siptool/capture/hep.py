"""HEP v3 (Homer Encapsulation Protocol, also called EEP) encode and decode, sans-I/O.

HEP carries a copy of a captured packet and what the capture point knew about it (addresses,
ports, time, the agent that saw it) to a collector: Homer, heplify-server, sngrep `-L`, siptool.
HEP3 Network Protocol Specification rev. 37 (github.com/sipcapture/HEP):

- a message is `HEP3` (or `EEP3`), a 16-bit total length (header included), then chunks;
- a chunk is a 16-bit vendor ID, a 16-bit type ID, a 16-bit length (its 6 header octets included)
  and its payload; vendor 0 chunks are the generic ones (`ChunkType`), other vendors' chunks are
  skipped by their length;
- all integers are in network byte order.

`decode()` takes one message (a UDP datagram, or one framed by `HepFramer` from a TCP stream) and
returns a `HepMessage` or raises `HepError`; `encode()` is its inverse. `HepMessage.packet()` gives
the `capture.Packet` the Analyzer reads, like any capture's.

What real senders do (kept here, tested against them): sngrep 1.6 writes its 16-bit capture ID
byte-swapped into the 32-bit chunk (htons into a uint32), so its default ID 2002 arrives as
131203072 (2002 << 16). Its messages decode faithfully as sent; the agent is named by what arrives.
"""

from __future__ import annotations

import hmac
import socket
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from .decode import TCP, UDP, Packet

MAGICS = (b"HEP3", b"EEP3")
HEADER = 6  # magic and total length
CHUNK_HEADER = 6  # vendor, type, length
MAX_MESSAGE = 65535  # the total length is 16 bits
MAX_INFLATED = 1 << 20  # a compressed payload may expand to this much (a SIP message is far smaller)
AF_INET, AF_INET6 = 2, 10  # protocol family values on the wire (Linux AF_* numbers, as every sender uses)

_CHUNK = struct.Struct("!HHH")
_HEAD = struct.Struct("!4sH")


class HepError(ValueError):
    """A message that is not valid HEP v3: the reason says what is wrong."""


class ChunkType(IntEnum):
    """Generic (vendor 0) chunk types, HEP3 specification rev. 37."""

    IP_FAMILY = 0x01  # uint8: 2 IPv4, 10 IPv6
    IP_PROTOCOL = 0x02  # uint8: 17 UDP, 6 TCP, 132 SCTP
    IPV4_SRC = 0x03
    IPV4_DST = 0x04
    IPV6_SRC = 0x05
    IPV6_DST = 0x06
    SRC_PORT = 0x07  # uint16
    DST_PORT = 0x08
    TIME_SEC = 0x09  # uint32, seconds since the epoch
    TIME_USEC = 0x0A  # uint32, microseconds added to it
    PROTOCOL_TYPE = 0x0B  # uint8: what the payload is (ProtocolType)
    AGENT_ID = 0x0C  # uint32 capture agent ID
    KEEP_ALIVE = 0x0D  # uint16 seconds
    AUTH_KEY = 0x0E  # octet string: the collector's password
    PAYLOAD = 0x0F  # octet string: the captured payload
    COMPRESSED_PAYLOAD = 0x10  # octet string: the payload, gzip/deflate compressed
    CORRELATION_ID = 0x11  # octet string: ties RTCP/logs to a call (often its Call-ID)
    VLAN = 0x12  # uint16
    AGENT_NAME = 0x13  # octet string capture agent ID ("node1")
    TCP_FLAGS = 0x17  # uint8


class ProtocolType(IntEnum):
    """What the payload chunk holds (chunk 0x0B), the values siptool reads or writes."""

    SIP = 0x01
    SDP = 0x03
    RTP = 0x04
    RTCP_JSON = 0x05  # RTCP; Homer's agents send it as JSON, some senders as the packet itself
    LOG = 0x64  # text log lines (Kamailio, FreeSWITCH)


_UINT = {ChunkType.IP_FAMILY: 1, ChunkType.IP_PROTOCOL: 1, ChunkType.SRC_PORT: 2, ChunkType.DST_PORT: 2,
         ChunkType.TIME_SEC: 4, ChunkType.TIME_USEC: 4, ChunkType.PROTOCOL_TYPE: 1, ChunkType.AGENT_ID: 4,
         ChunkType.KEEP_ALIVE: 2, ChunkType.VLAN: 2, ChunkType.TCP_FLAGS: 1}
_ADDRESS = {ChunkType.IPV4_SRC: 4, ChunkType.IPV4_DST: 4, ChunkType.IPV6_SRC: 16, ChunkType.IPV6_DST: 16}


@dataclass(slots=True)
class HepMessage:
    """One HEP v3 message: a captured payload and what its capture point said about it."""

    src: str  # address text, IPv4 or IPv6
    dst: str
    sport: int
    dport: int
    payload: bytes
    family: int = AF_INET  # AF_INET or AF_INET6 as on the wire
    ip_protocol: int = 17  # 17 UDP, 6 TCP, 132 SCTP
    time_sec: int = 0
    time_usec: int = 0
    protocol_type: int = ProtocolType.SIP
    agent_id: int | None = None  # chunk 0x0C
    agent_name: str | None = None  # chunk 0x13
    auth_key: bytes | None = None  # chunk 0x0E; never printed (repr=False)
    correlation_id: bytes | None = None  # chunk 0x11
    vlan: int | None = None
    tcp_flags: int | None = None
    keep_alive: int | None = None
    compressed: bool = False  # sent in chunk 0x10 (gzip); `payload` is always the expanded bytes
    unknown_chunks: int = 0  # chunks of other vendors, or generic types siptool does not read

    def __repr__(self) -> str:  # the auth key never reaches a log or a traceback
        return (f"HepMessage({self.src}:{self.sport} -> {self.dst}:{self.dport}, proto {self.ip_protocol}, "
                f"type {self.protocol_type}, agent {self.agent}, {len(self.payload)} bytes)")

    @property
    def time(self) -> float:
        return self.time_sec + self.time_usec / 1e6

    @property
    def agent(self) -> str:
        """The capture point's name: the agent name chunk, else the agent ID, else ''."""
        if self.agent_name:
            return self.agent_name
        return str(self.agent_id) if self.agent_id is not None else ""

    def packet(self, frame: int, tcp_seq: int = 0) -> "HepPacket":
        """The payload as the Analyzer reads packets: a UDP datagram, or (TCP) a segment at `tcp_seq`,
        with the capture point that sent it (`agent`).

        HEP carries no TCP sequence numbers; a receiver that keeps one counter per TCP flow (each
        message's payload follows the last) lets the Analyzer frame SIP over TCP as from a capture.
        SCTP and other protocols carry whole messages, so they are given as datagrams."""
        transport = TCP if self.ip_protocol == 6 else UDP
        return HepPacket(frame, self.time, self.src, self.sport, self.dst, self.dport, transport, self.payload,
                         tcp_seq, self.agent)


class HepPacket(Packet):
    """A packet as a HEP agent captured it: a `capture.Packet` (what the Analyzer reads) that also
    names its capture point, the agent that sent it (HepMessage.agent: name, else ID, else '')."""

    __slots__ = ("point",)

    def __init__(self, frame, time, src, sport, dst, dport, transport, payload, tcp_seq=0, point=""):
        super().__init__(frame, time, src, sport, dst, dport, transport, payload, tcp_seq)
        self.point = point


def decode(data: bytes) -> HepMessage:
    """Parse one HEP v3 message; HepError says why it is not one. Bytes after the total length are
    ignored (they belong to the next message on a stream: see HepFramer)."""
    if len(data) < HEADER:
        raise HepError(f"{len(data)} bytes is shorter than a HEP header")
    magic, total = _HEAD.unpack_from(data)
    if magic not in MAGICS:
        raise HepError("not HEP v3 (no HEP3 or EEP3 at the start)" if magic[:1] not in (b"\x01", b"\x02")
                       else "HEP version 1 or 2, not 3")
    if total < HEADER:
        raise HepError(f"total length {total} is shorter than the header")
    if total > len(data):
        raise HepError(f"total length {total} but only {len(data)} bytes")
    fields: dict[int, object] = {}
    unknown = 0
    off = HEADER
    while off < total:
        if total - off < CHUNK_HEADER:
            raise HepError(f"{total - off} bytes left at offset {off}, shorter than a chunk header")
        vendor, kind, length = _CHUNK.unpack_from(data, off)
        if length < CHUNK_HEADER or off + length > total:
            raise HepError(f"chunk {vendor:#x}/{kind:#x} at offset {off} has length {length}, "
                           f"outside the message ({total} bytes)")
        body = data[off + CHUNK_HEADER:off + length]
        off += length
        if vendor != 0 or kind not in _KNOWN:
            unknown += 1
            continue
        fields[kind] = _value(ChunkType(kind), body)
    return _message(fields, unknown)


_KNOWN = frozenset(int(c) for c in ChunkType)


def _value(kind: ChunkType, body: bytes):
    size = _UINT.get(kind)
    if size is not None:
        if len(body) != size:
            raise HepError(f"chunk {kind.name} holds {len(body)} bytes, not {size}")
        return int.from_bytes(body, "big")
    size = _ADDRESS.get(kind)
    if size is not None:
        if len(body) != size:
            raise HepError(f"chunk {kind.name} holds {len(body)} bytes, not {size}")
        return socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, body)
    return bytes(body)


def _message(fields: dict, unknown: int) -> HepMessage:
    payload = fields.get(ChunkType.PAYLOAD)
    compressed = payload is None and ChunkType.COMPRESSED_PAYLOAD in fields
    if compressed:
        payload = _inflate(fields[ChunkType.COMPRESSED_PAYLOAD])
    if payload is None:
        if ChunkType.KEEP_ALIVE in fields:  # an agent saying it is alive: nothing captured
            return HepMessage(src="", dst="", sport=0, dport=0, payload=b"", keep_alive=fields[ChunkType.KEEP_ALIVE],
                              agent_id=fields.get(ChunkType.AGENT_ID), unknown_chunks=unknown)
        raise HepError("no payload chunk")
    family = fields.get(ChunkType.IP_FAMILY, AF_INET)
    if family == AF_INET:
        src, dst = fields.get(ChunkType.IPV4_SRC), fields.get(ChunkType.IPV4_DST)
    elif family == AF_INET6:
        src, dst = fields.get(ChunkType.IPV6_SRC), fields.get(ChunkType.IPV6_DST)
    else:
        raise HepError(f"IP family {family} is neither 2 (IPv4) nor 10 (IPv6)")
    if src is None or dst is None:
        raise HepError(f"no {'IPv4' if family == AF_INET else 'IPv6'} source and destination address chunks")
    name = fields.get(ChunkType.AGENT_NAME)
    return HepMessage(
        src=src, dst=dst, sport=fields.get(ChunkType.SRC_PORT, 0), dport=fields.get(ChunkType.DST_PORT, 0),
        payload=payload, family=family, ip_protocol=fields.get(ChunkType.IP_PROTOCOL, 17),
        time_sec=fields.get(ChunkType.TIME_SEC, 0), time_usec=fields.get(ChunkType.TIME_USEC, 0),
        protocol_type=fields.get(ChunkType.PROTOCOL_TYPE, ProtocolType.SIP), agent_id=fields.get(ChunkType.AGENT_ID),
        agent_name=name.decode("utf-8", "replace").rstrip("\x00") if name else None,
        auth_key=fields.get(ChunkType.AUTH_KEY), correlation_id=fields.get(ChunkType.CORRELATION_ID),
        vlan=fields.get(ChunkType.VLAN), tcp_flags=fields.get(ChunkType.TCP_FLAGS),
        keep_alive=fields.get(ChunkType.KEEP_ALIVE), compressed=compressed, unknown_chunks=unknown)


def _inflate(data: bytes) -> bytes:
    """A compressed payload chunk (gzip or zlib), expanded to at most MAX_INFLATED bytes."""
    z = zlib.decompressobj(wbits=47)  # 32 + 15: a gzip or zlib header, told apart by itself
    try:
        out = z.decompress(data, MAX_INFLATED)
    except zlib.error as exc:
        raise HepError(f"compressed payload does not inflate ({exc})") from None
    if z.unconsumed_tail:
        raise HepError(f"compressed payload expands beyond {MAX_INFLATED} bytes")
    return out


def _chunk(kind: ChunkType, body: bytes) -> bytes:
    return _CHUNK.pack(0, kind, CHUNK_HEADER + len(body)) + body


def encode(msg: HepMessage) -> bytes:
    """The HEP v3 message for `msg`; HepError when it cannot be one (too long, bad address)."""
    v6 = ":" in msg.src or ":" in msg.dst
    try:
        if v6:
            addrs = (_chunk(ChunkType.IPV6_SRC, socket.inet_pton(socket.AF_INET6, msg.src))
                     + _chunk(ChunkType.IPV6_DST, socket.inet_pton(socket.AF_INET6, msg.dst)))
        else:
            addrs = (_chunk(ChunkType.IPV4_SRC, socket.inet_pton(socket.AF_INET, msg.src))
                     + _chunk(ChunkType.IPV4_DST, socket.inet_pton(socket.AF_INET, msg.dst)))
    except OSError:
        raise HepError(f"not an IP address pair: {msg.src} -> {msg.dst}") from None
    parts = [_chunk(ChunkType.IP_FAMILY, bytes((AF_INET6 if v6 else AF_INET,))),
             _chunk(ChunkType.IP_PROTOCOL, bytes((msg.ip_protocol,))), addrs,
             _chunk(ChunkType.SRC_PORT, msg.sport.to_bytes(2, "big")),
             _chunk(ChunkType.DST_PORT, msg.dport.to_bytes(2, "big")),
             _chunk(ChunkType.TIME_SEC, msg.time_sec.to_bytes(4, "big")),
             _chunk(ChunkType.TIME_USEC, msg.time_usec.to_bytes(4, "big")),
             _chunk(ChunkType.PROTOCOL_TYPE, bytes((msg.protocol_type,)))]
    if msg.agent_id is not None:
        parts.append(_chunk(ChunkType.AGENT_ID, msg.agent_id.to_bytes(4, "big")))
    if msg.agent_name:
        parts.append(_chunk(ChunkType.AGENT_NAME, msg.agent_name.encode()))
    if msg.auth_key is not None:
        parts.append(_chunk(ChunkType.AUTH_KEY, msg.auth_key))
    if msg.correlation_id is not None:
        parts.append(_chunk(ChunkType.CORRELATION_ID, msg.correlation_id))
    for kind, value, size in ((ChunkType.VLAN, msg.vlan, 2), (ChunkType.TCP_FLAGS, msg.tcp_flags, 1),
                              (ChunkType.KEEP_ALIVE, msg.keep_alive, 2)):
        if value is not None:
            parts.append(_chunk(kind, value.to_bytes(size, "big")))
    payload = zlib.compress(msg.payload, wbits=31) if msg.compressed else msg.payload  # gzip
    if len(payload) > MAX_MESSAGE - CHUNK_HEADER:
        raise HepError(f"a {len(payload)}-byte payload does not fit a HEP message")
    parts.append(_chunk(ChunkType.COMPRESSED_PAYLOAD if msg.compressed else ChunkType.PAYLOAD, payload))
    body = b"".join(parts)
    total = HEADER + len(body)
    if total > MAX_MESSAGE:
        raise HepError(f"the message would be {total} bytes; HEP allows {MAX_MESSAGE}")
    return _HEAD.pack(b"HEP3", total) + body


def from_packet(pkt: Packet, protocol_type: int = ProtocolType.SIP, agent_id: int | None = None,
                agent_name: str | None = None, auth_key: bytes | None = None,
                correlation_id: bytes | None = None) -> HepMessage:
    """A captured packet as the HEP message a capture agent sends for it."""
    sec = int(pkt.time)
    usec = min(int(round((pkt.time - sec) * 1e6)), 999999)
    return HepMessage(src=pkt.src, dst=pkt.dst, sport=pkt.sport, dport=pkt.dport, payload=bytes(pkt.payload),
                      family=AF_INET6 if ":" in pkt.src else AF_INET,
                      ip_protocol=6 if pkt.transport == TCP else 17, time_sec=sec, time_usec=usec,
                      protocol_type=protocol_type, agent_id=agent_id, agent_name=agent_name, auth_key=auth_key,
                      correlation_id=correlation_id)


class HepFramer:
    """HEP over TCP: a byte stream of HEP messages, each as long as its header says.

    `feed(data)` returns the whole messages now available (bytes, to `decode`). A stream that does
    not start a message with HEP3/EEP3 cannot be re-synchronised safely: `feed` raises HepError
    and the connection should be closed. Memory is bounded by one message (64 KB)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while len(self._buf) >= HEADER:
            magic, total = _HEAD.unpack_from(self._buf)
            if magic not in MAGICS or total < HEADER:
                self._buf.clear()
                raise HepError("the TCP stream is not HEP v3 here (lost framing)")
            if len(self._buf) < total:
                break
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held (a stream that ends here was cut)."""
        return len(self._buf)


def parse_address(text: str, default_port: int = 9060, listen: bool = False) -> tuple[str, str, int]:
    """`udp:HOST:PORT`, `tcp:HOST:PORT` or `HOST:PORT` (UDP) -> (transport, host, port); IPv6 hosts
    in brackets; port 0 (any free port) only to `listen`. HepError for anything else."""
    transport, _, rest = text.partition(":") if text[:4].lower() in ("udp:", "tcp:") else ("udp", "", text)
    transport = transport.lower()
    host, sep, port = rest.rpartition(":")
    if not sep or host.startswith("[") != host.endswith("]"):
        host, port = rest, str(default_port)
    bracketed = host.startswith("[") and host.endswith("]")
    host = host.strip("[]")
    if not host or (":" in host and not bracketed) or not port.isdigit() or not (0 if listen else 1) <= int(port) < 65536:
        raise HepError(f"{text!r}: use udp:HOST:PORT or tcp:HOST:PORT (PORT 1-65535)")
    return transport, host, int(port)


# --- receiving ------------------------------------------------------------------------------------

MAX_KEPT = 20  # rejected messages remembered (number, reason, sender) for the findings
MAX_TCP_FLOWS = 65536  # TCP flows whose sequence counter is kept (oldest forgotten first)


class HepReceiver:
    """Incoming HEP messages -> packets for the Analyzer, each with its capture point, sans-I/O.

    Every message gets a number in arrival order (1, 2, ...): the frame number of its packet, and
    the number a finding gives a malformed or refused message. With `auth_key` set, a message
    without that key is refused (compared in constant time). Payload types siptool does not
    analyse (RTCP sent as JSON, logs) are counted in `skipped`."""

    def __init__(self, auth_key: bytes | None = None) -> None:
        self.auth_key = auth_key
        self.messages = 0
        self.malformed = 0
        self.refused = 0
        self.rejects: list[tuple[int, str, str]] = []  # (number, reason, sender), the first MAX_KEPT
        self.skipped: dict[str, int] = {}
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._seq: dict[tuple, int] = {}  # TCP flow -> next sequence number

    def __repr__(self) -> str:  # the key stays out of logs
        return f"HepReceiver({self.messages} messages, {self.malformed} malformed, {self.refused} refused)"

    def receive(self, data: bytes, sender: str = "") -> HepPacket | None:
        """One message (a datagram, or framed from TCP) -> its packet (with its capture point), or None."""
        try:
            msg = decode(data)
        except HepError as exc:
            self.unreadable(str(exc), sender)
            return None
        self.messages += 1
        number = self.messages
        if self.auth_key is not None and not hmac.compare_digest(msg.auth_key or b"", self.auth_key):
            self.refused += 1
            self._reject(number, "wrong or missing auth key", sender)
            return None
        if not msg.payload:
            self._skip("keep-alive" if msg.keep_alive is not None else "empty payload")
            return None
        kind = msg.protocol_type
        if kind == ProtocolType.RTCP_JSON and not _is_rtcp(msg.payload):
            self._skip("HEP RTCP report as JSON (not analysed)")
            return None
        if kind not in (ProtocolType.SIP, ProtocolType.RTP, ProtocolType.RTCP_JSON):
            self._skip(f"HEP payload type {kind} (not SIP, RTP or RTCP)")
            return None
        if self.first_time is None:
            self.first_time = msg.time
        self.last_time = msg.time if self.last_time is None else max(self.last_time, msg.time)
        seq = 0
        if msg.ip_protocol == 6:
            seq = self._tcp_seq((msg.agent, msg.src, msg.sport, msg.dst, msg.dport), len(msg.payload))
        return msg.packet(number, seq)

    def unreadable(self, reason: str, sender: str = "") -> None:
        """A message that is not HEP v3 (or a TCP stream that lost its framing): counted, and
        its number kept for the finding."""
        self.messages += 1
        self.malformed += 1
        self._reject(self.messages, reason, sender)

    def _tcp_seq(self, flow: tuple, length: int) -> int:
        seq = self._seq.pop(flow, 1)
        if len(self._seq) >= MAX_TCP_FLOWS:
            del self._seq[next(iter(self._seq))]
        self._seq[flow] = (seq + length) & 0xFFFFFFFF
        return seq

    def _reject(self, number: int, reason: str, sender: str) -> None:
        if len(self.rejects) < MAX_KEPT:
            self.rejects.append((number, reason, sender))

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def _is_rtcp(payload: bytes) -> bool:
    """A binary RTCP packet (RFC 3550 6.1: version 2, packet type 200-207), not JSON text."""
    return len(payload) >= 8 and payload[0] >> 6 == 2 and 200 <= payload[1] <= 207
