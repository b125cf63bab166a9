"""The agent's one clock: the wall-clock time as a pcap record holds it (so what the agent logs and
what the Analyzer reads of the same packet are the same reading), and a timer the asyncio drivers
set to a sans-I/O object's next deadline on that clock."""

from __future__ import annotations

import asyncio
import time
from typing import Callable


def stamp(now: float | None = None) -> float:
    """The wall-clock time (or `now`) as a pcap record holds it: seconds and nanoseconds."""
    t = time.time() if now is None else now
    sec = int(t)
    nsec = round((t - sec) * 1e9)
    if nsec >= 1_000_000_000:
        sec, nsec = sec + 1, nsec - 1_000_000_000
    return sec + nsec * 1e-9


class Deadline:
    """One pending call of `fire(now)` at a wall-clock time; setting another time replaces it."""

    def __init__(self, fire: Callable[[float], None]) -> None:
        self.fire = fire
        self.when: float | None = None
        self._handle: asyncio.TimerHandle | None = None

    def at(self, when: float | None) -> None:
        if when == self.when:
            return
        self.cancel()
        self.when = when
        if when is not None:
            self._handle = asyncio.get_running_loop().call_later(max(0.0, when - time.time()), self._run)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self.when = None

    def _run(self) -> None:
        self._handle = self.when = None
        self.fire(stamp())
