"""What one source may cost the agent: a token bucket per source address, so that a scanner's sweep
or a flood from one host cannot starve the real test caller. Sans-I/O: the caller passes the time."""

from __future__ import annotations

from dataclasses import dataclass

MALFORMED_COST = 10.0  # a message that does not parse or lacks what RFC 3261 requires costs this many


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class SourceLimiter:
    """`rate` messages per second per source host, bursts of up to `burst` (default four seconds'
    worth); at most `sources` hosts are remembered (the longest idle is forgotten first), so memory
    stays bounded whoever sends."""

    def __init__(self, rate: float = 500.0, burst: float | None = None, sources: int = 4096) -> None:
        self.rate, self.burst, self.sources = rate, 4 * rate if burst is None else burst, sources
        self.buckets: dict[str, _Bucket] = {}
        self.dropped = 0

    def allow(self, host: str, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens from `host`'s bucket; False (and counted) when it has too few."""
        b = self.buckets.pop(host, None)  # re-inserted: dict order is least recently seen first
        if b is None:
            if len(self.buckets) >= self.sources:
                del self.buckets[next(iter(self.buckets))]
            b = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.at) * self.rate)
        b.at = now
        self.buckets[host] = b
        if b.tokens < cost:
            self.dropped += 1
            return False
        b.tokens -= cost
        return True

    def charge(self, host: str, cost: float) -> None:
        """Take more from a source after the fact (it sent something malformed), down to minus one
        burst: a source that keeps sending garbage waits longer before it is heard again."""
        b = self.buckets.get(host)
        if b is not None:
            b.tokens = max(b.tokens - cost, -self.burst)
