"""SIP messages out of the transports that are not one datagram per message: TCP, WebSocket (RFC
7118), TLS once a key log has decrypted it, and SCTP (RFC 4168). Sans-I/O, per flow direction.

A TCP direction's ordered bytes (capture/reassembly.TcpStream) are looked at once, at their start:
- TLS records: counted; with a key log, the plaintext tshark decrypted (capture/tls.py) comes in
  apart, already in order, and is taken as the start of a direction of its own (SIP or WebSocket);
- an HTTP GET with Upgrade: websocket, or the 101 answering one: the handshake is checked
  (RFC 7118 4.1) and the bytes after it are WebSocket frames (capture/websocket.py), each data
  message one SIP message;
- WebSocket frames carrying SIP with no handshake captured (a long-lived connection): the same;
- anything else: the SIP framer (sip/framing.py, Content-Length), as for SIP over TCP.
SCTP packets give DATA chunks, rebuilt into user messages (capture/sctp.py), one SIP message each.

Everything odd becomes a finding with its frames: framing damage, WebSocket frames breaking RFC
6455, a handshake without the sip subprotocol, an abnormal Close, broken or unfinished SCTP chunks.
State is kept per direction and dropped when the direction ends.
"""

from __future__ import annotations

import re
from enum import Enum

from ..capture.reassembly import TcpStream
from ..capture.sctp import Reassembly, data_chunks
from ..capture.websocket import (MAX_HEAD, Close, FrameReader, Handshake, Message, Problem, first_payload,
                                 head_end, is_upgrade, parse_head)
from ..report.model import Finding
from ..sip.framing import SipFramer, is_start_line
from ..sip.message import looks_like_sip
from . import findings as rules
from . import transport_findings as transport_rules

TCP_PROBE_BYTES = 8192  # bytes of a TCP flow looked at before deciding it is not SIP
TLS_CONTENT_TYPES = (0x14, 0x15, 0x16, 0x17)
TLS_FRAMES_KEPT = 20  # frames kept per TLS direction, for findings (the count goes on)
_DECIDE_BYTES = 64  # bytes needed before a direction's start can be told apart
WS_PROBE_MESSAGES = 8  # WebSocket messages that are not SIP before a direction is left alone
_SIP_REQUEST = re.compile(rb"[A-Za-z]{2,16} (?:sips?|tel):")
SCTP_END = (6, 14)  # ABORT, SHUTDOWN COMPLETE: the association is over (RFC 9260 3.3.7, 3.3.13)


class Kind(Enum):
    """What a direction's bytes turned out to be."""

    UNDECIDED = "undecided"
    SIP = "sip"  # SIP framed by Content-Length
    HTTP = "http"  # an HTTP head being read (the WebSocket Upgrade, or its answer)
    WEBSOCKET = "websocket"
    TLS = "tls"  # encrypted; its plaintext, if any, comes in apart
    NOT_SIP = "not-sip"


class FlowEnd:
    """Where a message flushed at the end of a direction came from (no packet carried its end)."""

    __slots__ = ("src", "sport", "dst", "dport", "time", "frames")

    def __init__(self, key: tuple, time: float = 0.0) -> None:
        self.src, self.sport, self.dst, self.dport = key
        self.time, self.frames = time, None


class _Direction:
    __slots__ = ("key", "stream", "kind", "framer", "ws", "pending", "seen", "time", "label", "frame", "other")

    def __init__(self, key: tuple, label: str, ordered: bool = False) -> None:
        self.key = key
        self.stream = None if ordered else TcpStream()  # plaintext from tshark is in order already
        self.kind = Kind.UNDECIDED
        self.framer: SipFramer | None = None
        self.ws: FrameReader | None = None
        self.pending = bytearray()  # bytes not yet decided on, or an HTTP head being read
        self.seen = 0
        self.other = 0  # WebSocket messages that are not SIP; -1 once one is SIP
        self.time = 0.0  # of its latest segment
        self.label = label  # "TCP" or "TLS": the transport of what it carries (WebSocket: "WS"/"WSS")
        self.frame = 0


class Streams:
    """Feed `segment(pkt)` (TCP), `plaintext(...)` (decrypted TLS) and `sctp(pkt)`; each returns the
    SIP messages they complete as (raw, where, frame, transport, stream). `finish()` flushes, then
    `findings()` says what was wrong."""

    def __init__(self) -> None:
        self._tcp: dict[tuple, _Direction] = {}
        self._plain: dict[tuple, _Direction] = {}
        self._not_sip: set[tuple] = set()
        self._handshakes: dict[tuple, Handshake] = {}  # by the client's direction key
        self._sctp: dict[tuple, Reassembly] = {}
        self._sctp_problems: dict[tuple, list[tuple[int, str]]] = {}  # per direction: (frame, what)
        self._ws_problems: dict[tuple, list[tuple[int, str]]] = {}
        self.tls_packets = 0
        self.tls_flows: dict[tuple, list[int]] = {}  # TLS directions -> [records, frame of the first few...]
        self.decrypted: set[tuple] = set()  # TLS directions a key log opened
        self.tcp_gaps = 0  # holes in TCP streams already closed
        self._findings: list[Finding] = []

    # --- TCP ---------------------------------------------------------------------------------

    def segment(self, pkt) -> list[tuple]:
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        if key in self._not_sip:
            return []
        d = self._tcp.get(key)
        syn = bool(pkt.tcp_flags & 0x02)
        if d is None:
            if not pkt.payload and not syn:
                return []
            d = self._tcp[key] = _Direction(key, "TCP")
        if pkt.tcp_flags & 0x05 and not pkt.payload:  # FIN or RST: the direction is over
            return self._close(self._tcp, key, pkt)
        d.time = pkt.time
        payload = pkt.payload
        if payload and payload[0] in TLS_CONTENT_TYPES and payload[1:2] == b"\x03" and \
                d.kind in (Kind.UNDECIDED, Kind.TLS):
            d.kind = Kind.TLS
            self.tls_packets += 1
            seen = self.tls_flows.setdefault(key, [0])
            seen[0] += 1
            if len(seen) <= TLS_FRAMES_KEPT:
                seen.append(pkt.frame)
            return []
        if d.kind == Kind.TLS:
            return []
        out: list[tuple] = []
        for data, frame in d.stream.feed(pkt.tcp_seq, payload, pkt.frame, syn):
            d.seen += len(data)
            out += self._bytes(d, data, frame, pkt)
        if d.kind in (Kind.UNDECIDED, Kind.SIP) and not (d.framer and d.framer.is_sip) and d.seen > TCP_PROBE_BYTES:
            d.kind = Kind.NOT_SIP
        if d.kind == Kind.NOT_SIP:
            self._not_sip.add(key)
            self.tcp_gaps += d.stream.gaps
            del self._tcp[key]
        return out

    def plaintext(self, frame: int, time: float, key: tuple, data: bytes, label: str = "TLS") -> list[tuple]:
        """TLS application data a key log decrypted (RFC 8446 5.2, RFC 5246 6.2.3), in order; or
        (`label` WS, WSS) a stream known in the clear and in order (the agent's own connections)."""
        if label != "WS":
            self.decrypted.add(key)
        d = self._plain.get(key)
        if d is None:
            d = self._plain[key] = _Direction(key, label, ordered=True)
        d.time = time
        if d.kind == Kind.NOT_SIP:
            return []
        return self._bytes(d, data, frame, FlowEnd(key, time))

    def _bytes(self, d: _Direction, data: bytes, frame: int, where) -> list[tuple]:
        """Ordered bytes of one direction -> SIP messages, by what the direction carries."""
        d.frame = frame
        if d.kind == Kind.UNDECIDED:
            d.pending += data
            if not self._decide(d):
                return []
            data, d.pending = bytes(d.pending), bytearray()
        if d.kind == Kind.HTTP:
            d.pending += data
            data = self._head(d)
            if data is None:
                return []
        if d.kind == Kind.WEBSOCKET:
            return self._frames(d, d.ws.feed(data, frame), where)
        if d.kind == Kind.SIP:
            return [(raw, where, last, d.label, True) for raw, last in d.framer.feed(data, frame)]
        return []

    def _decide(self, d: _Direction) -> bool:
        """Tell what a direction carries from its first bytes; False while too few have come."""
        start = bytes(d.pending[:_DECIDE_BYTES])
        if start.startswith(b"GET ") or start.startswith(b"HTTP/1."):
            d.kind = Kind.HTTP
            return True
        if any(p.startswith(start) for p in (b"GET ", b"HTTP/1.")):
            return False  # too few bytes to tell
        payload = first_payload(d.pending, _DECIDE_BYTES)
        if payload is None and len(d.pending) < MAX_HEAD:
            return False
        if payload and _sip_start(payload):
            d.kind = Kind.WEBSOCKET
            d.ws = FrameReader(bool(d.pending[1] & 0x80))  # no handshake seen: masked frames come from the client
            d.label = "WSS" if d.label in ("TLS", "WSS") else "WS"
            return True
        d.kind, d.framer = Kind.SIP, SipFramer()
        return True

    def _head(self, d: _Direction) -> bytes | None:
        """An HTTP head: a WebSocket Upgrade request, or the response to one. The bytes after it
        (WebSocket frames) are returned once it is whole; None while it is not."""
        end = head_end(d.pending)
        if end < 0:
            if len(d.pending) > MAX_HEAD:
                d.kind = Kind.NOT_SIP
            return None
        head, rest = parse_head(bytes(d.pending[:end])), bytes(d.pending[end:])
        d.pending = bytearray()
        reverse = (d.key[2], d.key[3], d.key[0], d.key[1])
        if head is not None and head.method and is_upgrade(head):
            self._handshakes[d.key] = Handshake(head, d.frame)
            d.kind, d.ws = Kind.WEBSOCKET, FrameReader(from_client=True)
        elif head is not None and head.status is not None and reverse in self._handshakes:
            shake = self._handshakes[reverse]
            shake.response, shake.response_frame = head, d.frame
            deflate, client_reset, server_reset = shake.deflate()
            if shake.accepted:
                d.kind, d.ws = Kind.WEBSOCKET, FrameReader(False, deflate, server_reset)
                client = self._direction_of(reverse)
                if client is not None and client.ws is not None and deflate:
                    client.ws = FrameReader(True, deflate, client_reset)
            else:
                d.kind = Kind.NOT_SIP
            self._check(reverse)
        else:
            d.kind = Kind.NOT_SIP
            return None
        if d.kind == Kind.WEBSOCKET:
            d.label = "WSS" if d.label in ("TLS", "WSS") else "WS"
            return rest
        return None

    def _direction_of(self, key: tuple) -> _Direction | None:
        return self._plain.get(key) or self._tcp.get(key)

    def _check(self, client_key: tuple) -> None:
        """The handshake's verdict (RFC 7118 4.1), once its response is seen (or the capture ends)."""
        shake = self._handshakes.pop(client_key, None)
        if shake is not None and shake.problems():
            self._findings.append(transport_rules.websocket_handshake(client_key, shake))

    def _frames(self, d: _Direction, events: list, where) -> list[tuple]:
        out = []
        for ev in events:
            if isinstance(ev, Message):
                if not ev.data.strip(b"\r\n"):  # CRLF keep-alives (RFC 7118 6, RFC 5626 4.4.1) are not messages
                    continue
                if looks_like_sip(ev.data):
                    d.other = -1  # SIP seen: the direction stays WebSocket SIP
                    out.append((ev.data, where, ev.frame, d.label, False))
                elif d.other >= 0:
                    d.other += 1  # a WebSocket carrying something else (JSON, MSRP...): not parsed as SIP
                    if d.other > WS_PROBE_MESSAGES:
                        d.kind = Kind.NOT_SIP
            elif isinstance(ev, Problem):
                self._ws_problems.setdefault(d.key, []).append((ev.frame, ev.what))
            elif isinstance(ev, Close) and ev.code not in (None, 1000, 1001):
                self._findings.append(transport_rules.websocket_closed(d.key, ev, d.label))
        return out

    def _close(self, table: dict, key: tuple, pkt) -> list[tuple]:
        """A direction ended (FIN, RST, end of capture): a message cut short is still analysed, and
        what could not be framed becomes a finding."""
        d = table.pop(key, None)
        if d is None:
            return []
        if d.stream is not None:
            self.tcp_gaps += d.stream.gaps
        out = []
        where = pkt or FlowEnd(key, d.time)
        if d.framer is not None:
            out = [(raw, where, frame, d.label, True) for raw, frame in d.framer.flush()]
            if d.framer.damaged:
                self._findings.append(rules.framing_damage(key, d.framer.damage, d.framer.damaged, d.label))
        self._check(key)
        return out

    # --- SCTP --------------------------------------------------------------------------------

    def sctp(self, pkt) -> list[tuple]:
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        chunks, problem = data_chunks(pkt.payload, pkt.frame)
        if problem is not None:
            self._sctp_problems.setdefault(key, []).append((pkt.frame, problem))
        out = []
        if chunks:
            assoc = self._sctp.get(key)
            if assoc is None:
                assoc = self._sctp[key] = Reassembly()
            for chunk in chunks:
                for data, frames in assoc.add(chunk):
                    if looks_like_sip(data):
                        out.append((data, pkt, frames[-1], "SCTP", False))
        if pkt.payload[:1] and pkt.payload[0] in SCTP_END:
            for k in (key, (key[2], key[3], key[0], key[1])):
                self._end_association(k)
        return out

    def _end_association(self, key: tuple) -> None:
        assoc = self._sctp.pop(key, None)
        if assoc is not None:
            assoc.flush()
            if assoc.problems:
                self._sctp_problems.setdefault(key, []).extend(assoc.problems)

    # --- end ---------------------------------------------------------------------------------

    def finish(self) -> list[tuple]:
        out = []
        for table in (self._tcp, self._plain):
            for key in list(table):
                out += self._close(table, key, None)
        for key in list(self._handshakes):
            self._check(key)
        for key in list(self._sctp):
            self._end_association(key)
        return out

    def findings(self) -> list[Finding]:
        out = list(self._findings)
        out += [transport_rules.websocket_malformed(key, problems) for key, problems in self._ws_problems.items()]
        out += [transport_rules.sctp_malformed(key, problems) for key, problems in self._sctp_problems.items()]
        return out


def _sip_start(payload: bytes) -> bool:
    """The first bytes of a WebSocket message are a SIP start line (or plainly begin one)."""
    line, crlf, _ = payload.partition(b"\r\n")
    if crlf:
        return is_start_line(line)
    return payload.startswith(b"SIP/2.0 ") or _SIP_REQUEST.match(payload) is not None
