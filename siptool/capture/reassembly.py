"""IP fragment reassembly and TCP byte-stream ordering (sans-I/O, bounded memory)."""

from __future__ import annotations

from dataclasses import dataclass, field

FRAGMENT_TIMEOUT = 30.0  # seconds of capture time a partial datagram is kept (RFC 791 suggests 15-120)
MAX_PENDING = 4096  # partial datagrams kept at once; the oldest go first
TCP_MAX_GAP_BUFFER = 64  # out-of-order segments held per direction


@dataclass
class _Partial:
    first_time: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)
    total: int | None = None  # known once the last fragment (MF=0) arrives


class FragmentBuffer:
    """IPv4/IPv6 fragment reassembly (RFC 791, RFC 8200 4.5). Duplicate pieces are ignored."""

    def __init__(self) -> None:
        self._pending: dict[tuple, _Partial] = {}
        self.incomplete: list[list[int]] = []  # frames of datagrams that never completed

    def add(self, key, offset: int, more: bool, data: bytes, frame: int, time: float):
        """Add one fragment; return (whole payload, frames) when the datagram is complete."""
        part = self._pending.get(key)
        if part is None:
            self._expire(time)
            part = self._pending[key] = _Partial(time)
        part.pieces.setdefault(offset, data)
        part.frames.append(frame)
        if not more:
            part.total = offset + len(data)
        if part.total is None:
            return None
        pos, chunks = 0, []
        for off in sorted(part.pieces):
            if off > pos:
                return None  # a hole remains
            piece = part.pieces[off]
            if off + len(piece) > pos:
                chunks.append(piece[pos - off:])
                pos = off + len(piece)
        if pos < part.total:
            return None
        del self._pending[key]
        return b"".join(chunks)[:part.total], part.frames

    def _expire(self, now: float) -> None:
        stale = [k for k, p in self._pending.items() if now - p.first_time > FRAGMENT_TIMEOUT]
        if len(self._pending) - len(stale) >= MAX_PENDING:
            stale.append(next(iter(self._pending)))
        for k in stale:
            self.incomplete.append(self._pending.pop(k).frames)

    def flush(self) -> list[list[int]]:
        """End of capture: every partial datagram left is incomplete."""
        self.incomplete.extend(p.frames for p in self._pending.values())
        self._pending.clear()
        return self.incomplete


class TcpStream:
    """Orders one direction of a TCP connection into contiguous bytes.

    Retransmitted and overlapping segments are trimmed; segments past a hole wait (bounded) for
    the hole to fill. If the hole never fills, the stream skips it and says so in `gaps`.
    """

    __slots__ = ("next_seq", "held", "gaps")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.held: dict[int, tuple[bytes, int]] = {}
        self.gaps = 0

    def feed(self, seq: int, data: bytes, frame: int, syn: bool = False) -> list[tuple[bytes, int]]:
        """Return the newly contiguous (bytes, frame) pieces in order."""
        if syn:
            self.next_seq = (seq + 1) & 0xFFFFFFFF
            self.held.clear()
            return []
        if not data:
            return []
        if self.next_seq is None:
            self.next_seq = seq
        out: list[tuple[bytes, int]] = []
        rel = (seq - self.next_seq) & 0xFFFFFFFF
        if rel >= 0x80000000:  # starts before what we have: a retransmission, maybe with new bytes
            overlap = (self.next_seq - seq) & 0xFFFFFFFF
            if overlap >= len(data):
                return out
            data, seq = data[overlap:], self.next_seq
            rel = 0
        if rel > 0:
            kept = self.held.get(seq)
            if kept is None or len(kept[0]) < len(data):  # a longer resend (coalesced) wins
                self.held[seq] = (data, frame)
            if len(self.held) <= TCP_MAX_GAP_BUFFER:
                return out
            self.gaps += 1  # give up on the hole: jump to the earliest held segment
            self.next_seq = min(self.held, key=lambda s: (s - self.next_seq) & 0xFFFFFFFF)
        else:
            out.append((data, frame))
            self.next_seq = (seq + len(data)) & 0xFFFFFFFF
        while self.held:
            nxt = self.held.pop(self.next_seq, None)
            if nxt is None:
                # a held segment may overlap next_seq without starting at it
                for s in list(self.held):
                    if (self.next_seq - s) & 0xFFFFFFFF < 0x80000000:
                        d, f = self.held.pop(s)
                        cut = (self.next_seq - s) & 0xFFFFFFFF
                        if cut < len(d):
                            nxt = (d[cut:], f)
                            break
                if nxt is None:
                    break
            out.append(nxt)
            self.next_seq = (self.next_seq + len(nxt[0])) & 0xFFFFFFFF
        return out
