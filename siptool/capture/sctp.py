"""SCTP DATA chunks (RFC 9260 3.3.1) and user messages rebuilt from them, as SIP uses SCTP (RFC 4168).
Sans-I/O.

`data_chunks()` reads the chunks of one SCTP packet (after its 12-byte common header, which the
decoder reads) and keeps the DATA chunks; a chunk whose length runs past the packet or is below
its own header is a problem with the frame number, and reading stops there. `Reassembly` takes one
direction's DATA chunks in capture order and returns whole user messages: unfragmented chunks at
once, fragments (B/E flags) once every TSN from the first to the last is there (RFC 9260 6.9:
the fragments of a message take consecutive TSNs); retransmitted TSNs are dropped. Memory is
bounded: at most MAX_HELD fragments wait per direction, the oldest going first (and said).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

DATA = 0
_CHUNK = struct.Struct("!BBH")
_DATA = struct.Struct("!IHHI")  # TSN, stream identifier, stream sequence number, payload protocol id
MAX_HELD = 512  # fragments waiting for their message, per direction
MAX_MESSAGE = 256 * 1024
SEEN_TSNS = 4096  # recent TSNs remembered per direction to drop retransmissions


@dataclass(slots=True)
class DataChunk:
    tsn: int
    stream: int
    ssn: int
    ppid: int
    begin: bool  # B: the first fragment of a user message
    end: bool  # E: the last one
    unordered: bool  # U
    data: bytes
    frame: int = 0


def data_chunks(chunks: bytes, frame: int = 0) -> tuple[list[DataChunk], str | None]:
    """The DATA chunks among an SCTP packet's chunks, and what is malformed (None: nothing)."""
    out: list[DataChunk] = []
    pos, n = 0, len(chunks)
    while pos + 4 <= n:
        ctype, flags, length = _CHUNK.unpack_from(chunks, pos)
        if length < 4 or pos + length > n:
            return out, f"chunk of type {ctype} with length {length} at byte {pos + 12} runs past the packet"
        if ctype == DATA:
            if length < 17:
                return out, f"DATA chunk of {length} bytes carries no user data (RFC 9260 3.3.1)"
            tsn, stream, ssn, ppid = _DATA.unpack_from(chunks, pos + 4)
            out.append(DataChunk(tsn, stream, ssn, ppid, bool(flags & 2), bool(flags & 1), bool(flags & 4),
                                 chunks[pos + 16:pos + length], frame))
        pos += (length + 3) & ~3
    if pos < n and chunks[pos:].strip(b"\0"):
        return out, f"{n - pos} bytes after the last chunk"
    return out, None


def serialise(chunk: DataChunk) -> bytes:
    """A DATA chunk as bytes (padded): what the tshark engine rebuilds from tshark's fields."""
    flags = chunk.unordered * 4 | chunk.begin * 2 | chunk.end * 1
    body = _DATA.pack(chunk.tsn, chunk.stream, chunk.ssn, chunk.ppid) + chunk.data
    raw = _CHUNK.pack(DATA, flags, 4 + len(body)) + body
    return raw + b"\0" * (-len(raw) % 4)


class Reassembly:
    """One direction of an association: DATA chunks in -> user messages (bytes, frames) out."""

    __slots__ = ("held", "seen", "_seen_order", "dropped", "problems")

    def __init__(self) -> None:
        self.held: dict[int, DataChunk] = {}  # TSN -> fragment waiting for the rest of its message
        self.seen: set[int] = set()
        self._seen_order: list[int] = []
        self.dropped = 0  # retransmitted chunks (a TSN seen before)
        self.problems: list[tuple[int, str]] = []

    def add(self, chunk: DataChunk) -> list[tuple[bytes, list[int]]]:
        if chunk.tsn in self.seen:
            self.dropped += 1
            return []
        self._remember(chunk.tsn)
        if chunk.begin and chunk.end:
            return [(chunk.data, [chunk.frame])]
        self.held[chunk.tsn] = chunk
        if len(self.held) > MAX_HELD:
            oldest = max(self.held, key=lambda t: (chunk.tsn - t) & 0xFFFFFFFF)  # the farthest behind
            self.problems.append((self.held.pop(oldest).frame, "a fragment whose message never completed was "
                                                                "dropped (too many fragments waiting)"))
        whole = self._message(chunk.tsn)
        return [whole] if whole is not None else []

    def _message(self, tsn: int) -> tuple[bytes, list[int]] | None:
        """The message `tsn` belongs to, if every fragment of it is held: walk back to B, on to E."""
        first = tsn
        while not self.held[first].begin:
            first = (first - 1) & 0xFFFFFFFF
            if first not in self.held:
                return None
        last, size = first, 0
        while True:
            piece = self.held.get(last)
            if piece is None or piece.stream != self.held[first].stream:
                return None
            size += len(piece.data)
            if piece.end:
                break
            last = (last + 1) & 0xFFFFFFFF
        pieces, t = [], first
        while True:
            pieces.append(self.held.pop(t))
            if t == last:
                break
            t = (t + 1) & 0xFFFFFFFF
        if size > MAX_MESSAGE:
            self.problems.append((pieces[-1].frame, f"a user message of {size:,} bytes, larger than any SIP "
                                                    "message, was dropped"))
            return None
        return b"".join(p.data for p in pieces), sorted({p.frame for p in pieces})

    def _remember(self, tsn: int) -> None:
        self.seen.add(tsn)
        self._seen_order.append(tsn)
        if len(self._seen_order) > SEEN_TSNS:
            old = self._seen_order[:SEEN_TSNS // 2]
            del self._seen_order[:SEEN_TSNS // 2]
            self.seen.difference_update(old)

    def flush(self) -> None:
        """The association (or the capture) ended: fragments still held never made a message."""
        frames = sorted({c.frame for c in self.held.values()})
        if frames:
            self.problems.append((frames[0], f"{len(self.held)} fragment(s) of user messages never completed "
                                             f"(frames {', '.join(map(str, frames[:8]))})"))
        self.held.clear()
