"""WebSocket (RFC 6455) as it carries SIP (RFC 7118): the HTTP Upgrade and the frames. Sans-I/O.

`parse_head()` reads the Upgrade request or response; `Handshake` says what RFC 6455 4 and RFC 7118
4.1 ask of the pair (the `sip` subprotocol offered and selected, the accept key, no refusal).
`FrameReader` takes one direction's ordered bytes after the Upgrade and returns whole messages
(reassembled from continuation frames, unmasked, inflated when permessage-deflate (RFC 7692) was
agreed), Close frames, and what breaks RFC 6455 with the frame number of the segment that carried
it. Nothing raises: a broken frame is a `Problem`, skipped by its own length.

The client's side (siptool call --transport ws|wss) writes with `client_request()` and `frame()`,
checks the server's answer with the same `Handshake`, and reads with a FrameReader that also reports
pings (`pings=True`), which a client must answer (RFC 6455 5.5.2).

Memory is bounded: a frame or message over MAX_MESSAGE is skipped byte by byte, not buffered.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

MAX_MESSAGE = 256 * 1024  # larger than any SIP message (sip/framing.py MAX_BODY + headers)
MAX_HEAD = 16 * 1024  # an HTTP Upgrade head longer than this is not one
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
_DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.2


class Opcode(IntEnum):
    CONTINUATION = 0
    TEXT = 1
    BINARY = 2
    CLOSE = 8
    PING = 9
    PONG = 10


CLOSE_CODES = {1000: "normal closure", 1001: "going away", 1002: "protocol error", 1003: "unsupported data",
               1007: "invalid data", 1008: "policy violation", 1009: "message too big",
               1010: "extension required", 1011: "internal error", 1012: "service restart",
               1013: "try again later", 1014: "bad gateway"}


# --- the Upgrade (RFC 6455 4) ---------------------------------------------------------------

@dataclass(slots=True)
class Head:
    """An HTTP/1.1 request or response head: start line and headers (names in lower case)."""

    method: str = ""  # requests
    target: str = ""
    status: int | None = None  # responses
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # repeated headers joined with ", "

    def tokens(self, name: str) -> list[str]:
        """A comma-separated header's tokens, lower case (Upgrade, Connection, Sec-WebSocket-Protocol)."""
        return [t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()]


def head_end(data: bytes | bytearray) -> int:
    """Where the head ends (after its blank line), -1 while it is incomplete."""
    end = data.find(b"\r\n\r\n")
    return end + 4 if end >= 0 else -1


def parse_head(data: bytes) -> Head | None:
    """The head of an HTTP/1.1 message (bytes up to and including the blank line); None when the
    start line is neither a request line nor an HTTP status line."""
    lines = data.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2:
        return None
    if parts[0].startswith("HTTP/1."):
        if not (parts[1].isascii() and parts[1].isdigit() and len(parts[1]) == 3):
            return None
        head = Head(status=int(parts[1]), reason=parts[2] if len(parts) > 2 else "")
    elif len(parts) == 3 and parts[2].startswith("HTTP/1.") and parts[0].isalpha():
        head = Head(method=parts[0], target=parts[1])
    else:
        return None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon and name.strip():
            key = name.strip().lower()
            value = value.strip()
            head.headers[key] = f"{head.headers[key]}, {value}" if key in head.headers else value
    return head


def is_upgrade(request: Head) -> bool:
    """A WebSocket opening handshake request (RFC 6455 4.1): GET with Upgrade: websocket."""
    return request.method == "GET" and "websocket" in request.tokens("upgrade")


@dataclass(slots=True)
class Handshake:
    """One connection's Upgrade request and (once seen) its response, with their frame numbers."""

    request: Head
    request_frame: int
    response: Head | None = None
    response_frame: int = 0

    @property
    def accepted(self) -> bool:
        return self.response is not None and self.response.status == 101

    @property
    def subprotocol(self) -> str:
        """The subprotocol the server selected ("" when none)."""
        return self.response.headers.get("sec-websocket-protocol", "").strip().lower() if self.response else ""

    def deflate(self) -> tuple[bool, bool, bool]:
        """(permessage-deflate agreed, client resets its context per message, server does)."""
        if self.response is None:
            return False, False, False
        agreed = self.response.tokens("sec-websocket-extensions")
        for ext in agreed:
            params = [p.strip() for p in ext.split(";")]
            if params[0] == "permessage-deflate":
                return True, "client_no_context_takeover" in params, "server_no_context_takeover" in params
        return False, False, False

    def problems(self) -> list[str]:
        """What RFC 7118 4.1 and RFC 6455 4 ask of this handshake and it does not do."""
        out = []
        offered = self.request.tokens("sec-websocket-protocol")
        if "sip" not in offered:
            out.append("the Upgrade request does not offer the sip subprotocol (Sec-WebSocket-Protocol: sip, "
                       f"RFC 7118 4.1){'; it offers ' + ', '.join(offered) if offered else ''}")
        if self.response is None:
            return out
        if self.response.status != 101:
            out.append(f"the server refused the Upgrade: {self.response.status} {self.response.reason}".rstrip())
            return out
        if self.subprotocol != "sip":
            chosen = f"selected {self.subprotocol!r}" if self.subprotocol else "selected no subprotocol"
            out.append(f"the server's 101 {chosen}, not sip (RFC 7118 4.1: SIP may then not be sent)")
        key = self.request.headers.get("sec-websocket-key", "")
        accept = self.response.headers.get("sec-websocket-accept", "")
        if key and accept != accept_key(key):
            out.append("Sec-WebSocket-Accept does not match the request's key (RFC 6455 4.2.2): "
                       "the client must fail the connection")
        return out


def client_request(host: str, path: str, key: str) -> bytes:
    """The opening handshake of a SIP WebSocket client (RFC 6455 4.1, RFC 7118 4.1): GET `path`,
    Upgrade: websocket, the base64 16-byte `key`, version 13, subprotocol sip."""
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n").encode()


def frame(opcode: Opcode, payload: bytes, mask: bytes = b"") -> bytes:
    """One whole frame (RFC 6455 5.2), masked with the 4-byte `mask` when given (a client's frames
    must be, 5.3)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    return head + mask + (_unmask(payload, mask) if mask else payload)


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.strip().encode("latin-1") + GUID).digest()).decode()


# --- frames (RFC 6455 5) --------------------------------------------------------------------

@dataclass(slots=True)
class Message:
    """A whole data message (its frames joined and unmasked)."""

    data: bytes
    frame: int  # the capture frame that completed it
    text: bool


@dataclass(slots=True)
class Close:
    code: int | None
    reason: str
    frame: int


@dataclass(slots=True)
class Problem:
    frame: int
    what: str


@dataclass(slots=True)
class Ping:
    """A ping's payload (reported with `FrameReader(pings=True)`: the pong must echo it)."""

    data: bytes


class FrameReader:
    """One direction of a WebSocket connection after the Upgrade. `from_client`: frames must be
    masked (True), must not be (False), or either (None: the Upgrade was not captured)."""

    __slots__ = ("from_client", "buf", "frame", "closed", "_parts", "_size", "_opcode", "_skip",
                 "_inflate", "_reset_context", "_compressed", "problems", "pings")

    def __init__(self, from_client: bool | None = None, deflate: bool = False, reset_context: bool = False,
                 pings: bool = False) -> None:
        self.from_client = from_client
        self.pings = pings  # report Ping frames (a client answers them)
        self.buf = bytearray()
        self.frame = 0
        self.closed = False  # a Close was seen: anything after it breaks RFC 6455 5.5.1
        self._parts: list[bytes] = []  # the fragmented message in progress
        self._size = 0
        self._opcode: int | None = None  # its first frame's opcode, None when no message is in progress
        self._compressed = False
        self._skip = 0  # bytes of an oversized frame still to discard
        self._inflate = zlib.decompressobj(-15) if deflate else None
        self._reset_context = reset_context
        self.problems = 0

    def feed(self, data: bytes, frame: int = 0) -> list:
        """Bytes in order -> [Message | Close | Problem]."""
        self.frame = frame
        if self._skip:
            cut = min(self._skip, len(data))
            self._skip -= cut
            data = data[cut:]
        self.buf += data
        out: list = []
        while self._frame(out):
            pass
        return out

    def _frame(self, out: list) -> bool:
        buf = self.buf
        if len(buf) < 2:
            return False
        b0, b1 = buf[0], buf[1]
        fin, rsv, opcode, masked, length = b0 & 0x80, b0 & 0x70, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        at = 2
        if length == 126:
            if len(buf) < 4:
                return False
            length, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return False
            length, at = struct.unpack_from("!Q", buf, 2)[0], 10
        key = b""
        if masked:
            if len(buf) < at + 4:
                return False
            key, at = bytes(buf[at:at + 4]), at + 4
        if length > MAX_MESSAGE:
            self._problem(out, f"a frame of {length:,} bytes, larger than any SIP message: skipped")
            self._abandon()
            have = len(buf) - at
            if have >= length:  # the whole frame is here: drop it, read on
                del buf[:at + length]
                return True
            del buf[:]
            self._skip = length - have
            return False
        if len(buf) < at + length:
            return False
        payload = bytes(buf[at:at + length])
        del buf[:at + length]
        if masked:
            payload = _unmask(payload, key)
        self._check(out, opcode, rsv, masked, fin, length)
        self._deliver(out, Opcode(opcode) if opcode in Opcode._value2member_map_ else None, fin, rsv, payload)
        return True

    def _check(self, out: list, opcode: int, rsv: int, masked: int, fin: int, length: int) -> None:
        if self.closed:
            self._problem(out, "a frame after the Close frame (RFC 6455 5.5.1)")
        if self.from_client is True and not masked:
            self._problem(out, "an unmasked frame from the client (RFC 6455 5.1: the server must close)")
        elif self.from_client is False and masked:
            self._problem(out, "a masked frame from the server (RFC 6455 5.1: the client must close)")
        if rsv & ~(0x40 if self._inflate is not None else 0):
            self._problem(out, "reserved bits set with no extension agreed (RFC 6455 5.2)")
        if opcode >= 8 and (not fin or length > 125):
            self._problem(out, "a control frame fragmented or over 125 bytes (RFC 6455 5.5)")

    def _deliver(self, out: list, opcode: Opcode | None, fin: int, rsv: int, payload: bytes) -> None:
        if opcode is None:
            self._problem(out, "a frame with a reserved opcode (RFC 6455 5.2)")
        elif opcode == Opcode.CLOSE:
            self._close(out, payload)
        elif opcode in (Opcode.PING, Opcode.PONG):
            if opcode == Opcode.PING and self.pings:
                out.append(Ping(payload))
        elif opcode == Opcode.CONTINUATION:
            if self._opcode is None:
                self._problem(out, "a continuation frame with no message in progress (RFC 6455 5.4)")
                return
            self._add(out, payload, fin)
        else:
            if self._opcode is not None:
                self._problem(out, "a new message began before the fragmented one ended (RFC 6455 5.4): "
                                   "the unfinished one was dropped")
                self._abandon()
            self._opcode, self._compressed = opcode, bool(rsv & 0x40)
            self._add(out, payload, fin)

    def _add(self, out: list, payload: bytes, fin: int) -> None:
        self._parts.append(payload)
        self._size += len(payload)
        if self._size > MAX_MESSAGE:
            self._problem(out, f"a fragmented message over {MAX_MESSAGE // 1024} KB: dropped")
            self._abandon()
            return
        if not fin:
            return
        data, text = b"".join(self._parts), self._opcode == Opcode.TEXT
        compressed = self._compressed
        self._abandon()
        if compressed:
            data = self._inflated(out, data)
            if data is None:
                return
        if text and not _utf8(data):
            self._problem(out, "a text message that is not UTF-8 (RFC 6455 8.1)")
        out.append(Message(data, self.frame, text))

    def _inflated(self, out: list, data: bytes) -> bytes | None:
        if self._inflate is None:
            self._problem(out, "a compressed message with no permessage-deflate agreed (RFC 7692)")
            return None
        try:
            clear = self._inflate.decompress(data + _DEFLATE_TAIL, MAX_MESSAGE)
        except zlib.error:
            self._problem(out, "a compressed message that does not inflate (RFC 7692 7.2.2)")
            self._inflate = zlib.decompressobj(-15)
            return None
        if self._reset_context:
            self._inflate = zlib.decompressobj(-15)
        return clear

    def _close(self, out: list, payload: bytes) -> None:
        code, reason = None, ""
        if len(payload) == 1:
            self._problem(out, "a Close frame with a 1-byte body (RFC 6455 5.5.1)")
        elif len(payload) >= 2:
            code = struct.unpack_from("!H", payload)[0]
            reason = payload[2:].decode("utf-8", "replace")
            if not (1000 <= code <= 4999) or code in (1004, 1005, 1006, 1015):
                self._problem(out, f"a Close frame with status code {code}, which may not be sent (RFC 6455 7.4)")
        self.closed = True
        out.append(Close(code, reason, self.frame))

    def _abandon(self) -> None:
        self._parts, self._size, self._opcode, self._compressed = [], 0, None, False

    def _problem(self, out: list, what: str) -> None:
        self.problems += 1
        out.append(Problem(self.frame, what))


def _unmask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte masking key (RFC 6455 5.3), a machine word at a time."""
    n = len(payload)
    if not n:
        return payload
    mask = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ mask).to_bytes(n, "big")


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def first_payload(data: bytes | bytearray, n: int = 64) -> bytes | bool | None:
    """The first `n` unmasked payload bytes of the data frame these bytes begin with (the start of
    a direction whose Upgrade was not captured), to see whether it carries SIP. False: they do not
    begin with a text or binary frame; None: too few bytes to tell."""
    if len(data) < 2:
        return None
    b0, b1 = data[0], data[1]
    if b0 & 0x70 or (b0 & 0x0F) not in (Opcode.TEXT, Opcode.BINARY):
        return False
    size = b1 & 0x7F
    at = 2 + (2 if size == 126 else 8 if size == 127 else 0)
    if size < 126:
        n = min(n, size)
    end = at + (4 if b1 & 0x80 else 0)
    if len(data) < end + n:
        return None
    start = bytes(data[end:end + n])
    return _unmask(start, bytes(data[at:end])) if b1 & 0x80 else start
