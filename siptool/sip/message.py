"""SIP message parse and serialise (RFC 3261 section 7, 20, 25).

`parse()` takes the bytes of one message and returns a `SipMessage` or raises `SipParseError` with a
reason a person can read. Header names are kept canonical (compact forms expanded, RFC 3261 7.3.3);
values are kept as text. Helpers pull out what dialogs need: Call-ID, CSeq, tags, Via branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..digits import uint

COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type", "d": "request-disposition",
    "e": "content-encoding", "f": "from", "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info", "o": "event", "r": "refer-to",
    "s": "subject", "t": "to", "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}
CANONICAL = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate", "via": "Via",
    "rack": "RAck", "rseq": "RSeq", "mime-version": "MIME-Version", "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
}
# Headers whose values may be comma-joined lists (RFC 3261 7.3.1); others may contain bare commas.
LIST_HEADERS = {"via", "contact", "route", "record-route", "allow", "supported", "require",
                "proxy-require", "unsupported", "accept", "allow-events", "path"}
METHOD_RE = re.compile(rb"^[A-Za-z0-9.!%*_+`'~-]+$")  # RFC 3261 25.1 token
STATUS_RE = re.compile(rb"^SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)$", re.S)
MAX_MESSAGE = 65535


class SipParseError(ValueError):
    """The bytes are not a well-formed SIP message; the text says why."""


def canonical(name: str) -> str:
    """Canonical display form of a header name: 'call-id' -> 'Call-ID', 'content-length' -> 'Content-Length'."""
    low = name.lower()
    low = COMPACT.get(low, low)
    return CANONICAL.get(low) or "-".join(p.capitalize() for p in low.split("-"))


@dataclass(slots=True)
class SipMessage:
    """One SIP request or response. `headers` keeps order and repeats as (lowercase full name, value)."""

    method: str | None = None  # requests
    uri: str | None = None
    status: int | None = None  # responses
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    problems: list[str] = field(default_factory=list)  # tolerated faults (Content-Length mismatch...)

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of a header (name in any case, compact or full)."""
        key = COMPACT.get(name.lower(), name.lower())
        for k, v in self.headers:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, list headers split at top-level commas."""
        key = COMPACT.get(name.lower(), name.lower())
        out: list[str] = []
        for k, v in self.headers:
            if k == key:
                out.extend(split_list(v) if key in LIST_HEADERS else [v])
        return out

    @property
    def call_id(self) -> str | None:
        return self.get("call-id")

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method); (-1, '') when absent or unreadable."""
        value = self.get("cseq") or ""
        parts = value.split()
        number = uint(parts[0], 10, 2**31 - 1) if len(parts) == 2 else None  # RFC 3261 8.1.1.5
        return (number, parts[1].upper()) if number is not None else (-1, "")

    @property
    def from_tag(self) -> str | None:
        return param(self.get("from") or "", "tag")

    @property
    def to_tag(self) -> str | None:
        return param(self.get("to") or "", "tag")

    @property
    def branch(self) -> str | None:
        vias = self.get_all("via")
        return param(vias[0], "branch") if vias else None

    @property
    def first_line(self) -> str:
        if self.is_request:
            return f"{self.method} {self.uri} SIP/2.0"
        return f"SIP/2.0 {self.status} {self.reason}".rstrip()

    @property
    def label(self) -> str:
        """Short name for ladders: 'INVITE' or '180 Ringing'."""
        return self.method if self.is_request else f"{self.status} {self.reason}".rstrip()

    def serialise(self) -> bytes:
        """Bytes on the wire; Content-Length is written from the body (RFC 3261 20.14)."""
        lines = [self.first_line]
        lines += [f"{canonical(k)}: {v}" for k, v in self.headers if k != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body


MANDATORY = ("call-id", "cseq", "from", "to", "via")  # RFC 3261 8.1.1 (headers keep full lowercase names)


def looks_like_sip(data: bytes) -> bool:
    """Cheap test on a datagram's first line: a SIP request or status line."""
    if data[:8] == b"SIP/2.0 ":
        return True
    end = data.find(b"\r\n", 0, 512)
    if end < 0:
        end = data.find(b"\n", 0, 512)
    line = data[:end] if end > 0 else b""
    return line.endswith(b" SIP/2.0") and line[:1].isalpha() and line.count(b" ") >= 2


def parse(data: bytes, stream: bool = False) -> SipMessage:
    """Parse one message. On UDP (stream=False) a missing Content-Length means the rest is body."""
    if len(data) > MAX_MESSAGE * 4:
        raise SipParseError(f"message of {len(data)} bytes is larger than any SIP message")
    head_end = data.find(b"\r\n\r\n")
    sep = 4
    if head_end < 0:
        head_end, sep = data.find(b"\n\n"), 2
    if head_end < 0:
        head_end, sep = len(data), 0
        if not data.endswith(b"\r\n") and b"\r\n" not in data:
            raise SipParseError("no end-of-line: not a SIP message")
    head = data[:head_end]
    body = data[head_end + sep:]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    msg = _start_line(lines[0])
    if sep == 0:
        msg.problems.append("headers are not followed by an empty line (message cut short?)")
    _headers(lines[1:], msg)
    clen = msg.get("content-length")
    if clen is not None:
        clen = clen.strip()
        n = uint(clen, 10)
        if n is None:
            msg.problems.append(f"Content-Length is not a number: {clen[:40]!r}")
            n = len(body)
        if n < len(body):
            if body[n:].strip(b"\r\n\x00 "):
                msg.problems.append(f"Content-Length {n} but {len(body)} body bytes follow")
            body = body[:n]
        elif n > len(body):
            msg.problems.append(f"Content-Length {n} but only {len(body)} body bytes present")
    elif stream and body:
        msg.problems.append("no Content-Length on a stream transport (RFC 3261 18.3 requires it)")
    msg.body = body
    present = {name for name, _ in msg.headers}
    for name in MANDATORY:
        if name not in present:
            msg.problems.append(f"mandatory header {canonical(name)} is missing (RFC 3261 8.1.1)")
    return msg


def _start_line(line: bytes) -> SipMessage:
    line = line.rstrip(b"\r")
    if line.startswith(b"SIP/"):
        m = STATUS_RE.match(line)
        if not m:
            raise SipParseError(f"bad status line: {_show(line)}")
        return SipMessage(status=int(m.group(1)), reason=m.group(2).decode("utf-8", "replace").strip())
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0":
        raise SipParseError(f"bad request line: {_show(line)}")
    if not METHOD_RE.match(parts[0]):
        raise SipParseError(f"bad method token: {_show(parts[0])}")
    if b":" not in parts[1]:
        raise SipParseError(f"Request-URI has no scheme: {_show(parts[1])}")
    return SipMessage(method=parts[0].decode("ascii"), uri=parts[1].decode("utf-8", "replace"))


def _headers(lines: list[bytes], msg: SipMessage) -> None:
    headers = msg.headers
    for raw in lines:
        if not raw.strip():
            continue
        if raw[:1] in (b" ", b"\t"):  # folded continuation (RFC 3261 7.3.1)
            if not headers:
                raise SipParseError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, value + " " + raw.strip().decode("utf-8", "replace"))
            continue
        colon = raw.find(b":")
        if colon <= 0:
            raise SipParseError(f"header line without a colon: {_show(raw)}")
        name = raw[:colon].strip().decode("ascii", "replace").lower()
        if not name or " " in name:
            raise SipParseError(f"bad header name: {_show(raw[:colon])}")
        headers.append((COMPACT.get(name, name), raw[colon + 1:].strip().decode("utf-8", "replace")))


def _show(b: bytes, limit: int = 60) -> str:
    text = b[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(b) > limit else ""))


def split_list(value: str) -> list[str]:
    """Split a header value at commas that are outside quotes and <...> (RFC 3261 7.3.1)."""
    out, start, depth, quoted = [], 0, 0, False
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and quoted:
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [v for v in out if v]


def param(value: str, name: str) -> str | None:
    """A ;name=value parameter of a header value, outside the <URI> (e.g. tag, branch)."""
    if ">" in value:
        value = value[value.rfind(">") + 1:]
    for part in value.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == name:
            return val.strip().strip('"')
    return None
