"""SIP message framing on stream transports (RFC 3261 18.3): split a byte stream at Content-Length.

Sans-I/O: feed bytes as they arrive (from a TCP socket or from capture reassembly), take whole
messages out. Shared by the capture side and the agent's TCP/TLS transport.

Hostile or broken streams cost linear time and bounded memory: a start line is looked for one line
at a time (a line longer than MAX_LINE is never one), headers are at most MAX_HEADER bytes, and a
body at most MAX_BODY. Whatever cannot be framed is recorded in `damage` (frame, what, bytes) and
framing resumes at the next start line; a message whose Content-Length cannot be true is handed
over cut at the next start line, so it is still analysed (and its parse says what is wrong).
"""

from __future__ import annotations

import re

from .message import METHOD_RE

MAX_LINE = 8 * 1024  # a request or status line longer than this is not one
MAX_HEADER = 64 * 1024
MAX_BODY = 192 * 1024  # larger than any SIP body seen in practice (multipart with SDP and ISUP)
MAX_DAMAGE = 100  # damage records kept per direction (the count goes on)
_CLEN = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,20})[ \t]*\r?(?=\n)", re.I)
_STATUS = re.compile(rb"SIP/2\.0 [1-6][0-9][0-9](?: [^\r\n]*)?")

_HUNT, _HEADERS, _BODY, _OVERSIZED = range(4)


def is_start_line(line: bytes) -> bool:
    """A SIP request line (Method SP Request-URI SP SIP/2.0) or status line (RFC 3261 7.1, 7.2)."""
    if line.startswith(b"SIP/2.0 "):
        return _STATUS.fullmatch(line) is not None
    parts = line.split(b" ")
    return len(parts) == 3 and parts[2] == b"SIP/2.0" and bool(parts[1]) and \
        METHOD_RE.match(parts[0]) is not None and parts[0][:1].isalpha()


class SipFramer:
    """Buffer for one direction of a stream. `feed()` returns [(message bytes, last frame)]."""

    __slots__ = ("buf", "frame", "skipped", "is_sip", "damage", "damaged", "_state", "_scan", "_body_at",
                 "_length", "_in_line")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.frame = 0
        self.skipped = 0  # bytes discarded while looking for a start line
        self.is_sip = False  # seen at least one SIP start line
        self.damage: list[tuple[int, str, int]] = []  # (frame, what went wrong, bytes affected)
        self.damaged = 0  # damage events in all (damage keeps the first MAX_DAMAGE)
        self._state = _HUNT
        self._scan = 0  # where the next search in the buffer starts (nothing before it is searched twice)
        self._body_at = 0  # where the body of the message in progress starts
        self._length = 0  # its Content-Length
        self._in_line = False  # HUNT: the buffer starts in the middle of a line being skipped

    def feed(self, data: bytes, frame: int = 0) -> list[tuple[bytes, int]]:
        self.buf += data
        self.frame = frame
        out: list[tuple[bytes, int]] = []
        while self._step(out):
            pass
        return out

    def flush(self) -> list[tuple[bytes, int]]:
        """The stream ended: a message in progress is handed over as it is (cut short)."""
        out: list[tuple[bytes, int]] = []
        if self._state != _HUNT and self.buf:
            self._note(f"the stream ended inside a message ({len(self.buf)} bytes)", len(self.buf))
            out.append((bytes(self.buf), self.frame))
        self._reset(len(self.buf))
        return out

    # --- states -----------------------------------------------------------------------------

    def _step(self, out: list) -> bool:
        """Advance as far as the buffer allows; True when called again could make progress."""
        if self._state == _HUNT:
            return self._hunt()
        if self._state == _HEADERS:
            return self._headers()
        if self._state == _BODY:
            if len(self.buf) < self._body_at + self._length:
                return False
            end = self._body_at + self._length
            out.append((bytes(self.buf[:end]), self.frame))
            self._reset(end)
            return True
        return self._oversized(out)

    def _hunt(self) -> bool:
        buf = self.buf
        while True:
            if self._in_line:  # finish skipping a line that cannot be a start line
                nl = buf.find(b"\n")
                if nl < 0:
                    self.skipped += len(buf)
                    del buf[:]
                    return False
                self.skipped += nl + 1
                del buf[:nl + 1]
                self._in_line = False
            start = 0
            while start < len(buf) and buf[start] in (13, 10):  # CRLF keep-alives (RFC 5626 4.4.1)
                start += 1
            if start:
                del buf[:start]
            if not buf:
                return False
            nl = buf.find(b"\n", 0, MAX_LINE + 2)
            if nl < 0:
                if len(buf) > MAX_LINE:
                    self._in_line = True
                    continue
                return False  # a start line may still be arriving
            line = bytes(buf[:nl]).rstrip(b"\r")
            if is_start_line(line):
                self.is_sip = True
                self._state, self._scan = _HEADERS, 0
                return True
            if self.is_sip:
                self._note("bytes that are not SIP between messages were skipped", nl + 1)
            self.skipped += nl + 1
            del buf[:nl + 1]

    def _headers(self) -> bool:
        buf = self.buf
        end = buf.find(b"\r\n\r\n", max(self._scan - 3, 0))
        sep = 4
        if end < 0:
            lf = buf.find(b"\n\n", max(self._scan - 1, 0))
            if lf >= 0:
                end, sep = lf, 2
        if end < 0:
            if len(buf) > MAX_HEADER:
                self._note(f"headers longer than {MAX_HEADER // 1024} KB: skipped to the next start line", len(buf))
                self._reset(len(buf), in_line=True)
                return True
            self._scan = len(buf)
            return False
        m = _CLEN.search(buf, 0, end + 2)
        length = int(m.group(1)) if m else 0
        self._body_at = end + sep
        if length > MAX_BODY:
            self._note(f"Content-Length {length} is larger than any SIP message: the message was cut at the "
                       "next start line", length)
            self._state, self._scan = _OVERSIZED, self._body_at
            return True
        self._length, self._state = length, _BODY
        return True

    def _oversized(self, out: list) -> bool:
        """A message whose Content-Length cannot be true: its body runs to the next start line."""
        buf = self.buf
        pos = self._scan
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0 or nl - pos > MAX_LINE:
                if nl < 0 and len(buf) - self._body_at <= MAX_BODY:
                    self._scan = pos
                    return False
                if nl < 0:  # no start line within MAX_BODY: hand over what there is, skip the rest
                    out.append((bytes(buf[:self._body_at + MAX_BODY]), self.frame))
                    self._reset(len(buf), in_line=True)
                    return True
                pos = nl + 1
                continue
            line_start = pos
            pos = nl + 1
            if line_start > self._body_at and is_start_line(bytes(buf[line_start:nl]).rstrip(b"\r")):
                out.append((bytes(buf[:line_start]), self.frame))
                self._reset(line_start)
                return True
            if pos - self._body_at > MAX_BODY:
                out.append((bytes(buf[:self._body_at + MAX_BODY]), self.frame))
                self._reset(len(buf), in_line=True)
                return True

    # --- helpers ------------------------------------------------------------------------------

    def _reset(self, consumed: int, in_line: bool = False) -> None:
        del self.buf[:consumed]
        self._state, self._scan, self._body_at, self._length = _HUNT, 0, 0, 0
        self._in_line = in_line

    def _note(self, what: str, size: int) -> None:
        self.damaged += 1
        if len(self.damage) < MAX_DAMAGE:
            self.damage.append((self.frame, what, size))
