"""SIP message framing on stream transports (RFC 3261 18.3): split a byte stream at Content-Length.

Sans-I/O: feed bytes as they arrive (from a TCP socket or from capture reassembly), take whole
messages out. Shared by the capture side and the agent's TCP/TLS transport.
"""

from __future__ import annotations

import re

_START = re.compile(rb"(?:SIP/2\.0 [1-6]\d\d[^\r\n]*|[A-Z][A-Z0-9_.!%*+`'~-]* \S+ SIP/2\.0)\r?\n")
_CLEN = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*(\d+)", re.I)
MAX_HEADER = 64 * 1024


class SipFramer:
    """Buffer for one direction of a stream. `feed()` returns [(message bytes, last frame)]."""

    __slots__ = ("buf", "frame", "skipped", "is_sip")

    def __init__(self) -> None:
        self.buf = b""
        self.frame = 0
        self.skipped = 0  # bytes discarded while looking for a start line
        self.is_sip = False  # seen at least one SIP start line

    def feed(self, data: bytes, frame: int = 0) -> list[tuple[bytes, int]]:
        self.buf += data
        self.frame = frame
        out: list[tuple[bytes, int]] = []
        while True:
            buf = self.buf.lstrip(b"\r\n")  # CRLF keep-alives (RFC 5626 4.4.1)
            if not buf:
                self.buf = b""
                return out
            if not _START.match(buf):
                m = _START.search(buf)
                if m is None:
                    # keep a tail in case a start line is split across segments
                    keep = buf[-200:] if len(buf) > 200 else buf
                    self.skipped += len(buf) - len(keep)
                    self.buf = keep
                    return out
                self.skipped += m.start()
                buf = buf[m.start():]
            self.is_sip = True
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER:
                    self.skipped += len(buf)
                    buf = b""
                self.buf = buf
                return out
            m = _CLEN.search(buf, 0, end + 2)
            length = int(m.group(1)) if m else 0
            total = end + 4 + length
            if len(buf) < total:
                self.buf = buf
                return out
            out.append((buf[:total], frame))
            self.buf = buf[total:]
