"""Failover between the servers RFC 3263 located, sans-I/O: which server a request goes to next,
and a record of each one tried.

RFC 3263 4.3: a request that fails at a server (a transport error, a timeout, a 503) is sent again,
identical but for a new Via branch (a new transaction), to the next server in the order RFC 2782
gives. Once a server answers anything else it serves the request: its retransmissions, the ACK and
the CANCEL go there too (the session keeps it as its `target`).

RFC 3261 21.5.4: after a 503 with Retry-After, no request goes to that server until the time has
passed. `Backoff` remembers that for a whole run (every call of it), `Failover` skips such a
server and says so."""

from __future__ import annotations

from enum import StrEnum

from ..report.model import TargetTry
from ..sip.locate import Server
from ..sip.message import SipMessage

Addr = tuple[str, int]
MAX_RETRY_AFTER = 3600  # s: a longer Retry-After is read as this (a far end cannot bench us for days)


class Outcome(StrEnum):
    """What became of a request sent to one server."""

    SERVED = "served"  # it answered (anything but 503): it serves the request
    REFUSED = "503"  # 503 Service Unavailable (RFC 3261 21.5.4)
    TIMEOUT = "timeout"  # no response: timer B or F (RFC 3261 17.1), or the per-server limit
    UNREACHABLE = "unreachable"  # a transport error: ICMP unreachable, TCP reset, TLS refused (18.4)
    SKIPPED = "skipped"  # not sent: the server's Retry-After has not passed


FAILED = (Outcome.REFUSED, Outcome.TIMEOUT, Outcome.UNREACHABLE)


def retry_after(msg: SipMessage) -> int | None:
    """Seconds of a Retry-After header (RFC 3261 20.33: delta-seconds, then a comment or params)."""
    value = (msg.get("retry-after") or "").strip()
    digits = value.split("(")[0].split(";")[0].strip()
    return min(int(digits), MAX_RETRY_AFTER) if digits.isdigit() else None


class Backoff:
    """Servers not to be sent anything until a time (their 503's Retry-After), for one run."""

    def __init__(self) -> None:
        self.until: dict[Addr, float] = {}

    def hold(self, addr: Addr, until: float) -> None:
        self.until[addr] = max(until, self.until.get(addr, 0.0))

    def held(self, addr: Addr, now: float) -> float | None:
        """Until when `addr` is held, or None when it may be tried."""
        until = self.until.get(addr)
        if until is not None and until <= now:
            del self.until[addr]
            return None
        return until


class Failover:
    """The servers one request tries, in order (`servers`: Resolution.order() drawn for it).
    `start(now)` gives the first to send to; `failed(...)` records why it did not serve and gives the
    next (None when none is left); `served(...)` records the one that answered."""

    def __init__(self, servers: list[Server], backoff: Backoff | None = None) -> None:
        self.servers = list(servers)
        self.backoff = backoff if backoff is not None else Backoff()
        self.tries: list[TargetTry] = []
        self.current: Server | None = None
        self._at = 0  # the next server's index
        self._sent = 0.0
        self.settled = False  # a server answered: no more failover for this request

    @property
    def left(self) -> int:
        """Servers not yet tried."""
        return len(self.servers) - self._at

    def start(self, now: float) -> Server | None:
        return self._next(now)

    def served(self, now: float, detail: str) -> None:
        if self.current is not None and not self.settled:
            self.settled = True
            self._record(Outcome.SERVED, detail, now)

    def failed(self, now: float, outcome: Outcome, detail: str, retry_s: int | None = None) -> Server | None:
        """The current server did not serve; the next to try, or None."""
        if self.current is None or self.settled:
            return None
        if retry_s:
            self.backoff.hold(self.current.addr(), now + retry_s)
            detail += f" (Retry-After {retry_s} s)"
        self._record(outcome, detail, now)
        return self._next(now)

    def give_up(self, now: float, detail: str) -> None:
        """The request ended before the current server answered (a CANCEL, the caller stopped)."""
        if self.current is not None and not self.settled:
            self.settled = True
            self._record(Outcome.TIMEOUT, detail, now)

    def summary(self) -> str:
        """Every server tried and what happened, in one line (the error of a dead trunk)."""
        return "; ".join(f"{t.name} {_hostport(t.address, t.port)} {t.transport.upper()}: {t.detail or t.outcome}"
                         for t in self.tries)

    def _next(self, now: float) -> Server | None:
        self.current = None
        while self._at < len(self.servers):
            s = self.servers[self._at]
            self._at += 1
            until = self.backoff.held(s.addr(), now)
            if until is None:
                self.current, self._sent = s, now
                return s
            self.tries.append(_try(s, Outcome.SKIPPED, f"held by its Retry-After for {until - now:.0f} s more", None))
        return None

    def _record(self, outcome: Outcome, detail: str, now: float) -> None:
        self.tries.append(_try(self.current, outcome, detail, round((now - self._sent) * 1000, 1)))


def _try(s: Server, outcome: Outcome, detail: str, ms: float | None) -> TargetTry:
    return TargetTry(s.name, s.address, s.port, s.transport, s.found, outcome.value, detail, ms)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
