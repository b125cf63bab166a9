"""The echo agent's figures for monitoring (`siptool echo --metrics`): typed events (report/events.py)
for an exporter (report/prometheus.Exporter, echo=True).

Each call that ends gives its outcome and, from the Analyzer's Call of its signalling (echo.analyse:
what `analyze` says of it), its final status, post-dial delay and findings. Once a second, on the
agent's own event loop (so nothing is read from another thread), come the calls in progress, the
RTP packets echoed since the last tick and the requests turned away since: over a source's rate
limit (dropped unread), over --max-calls (503), malformed (400, or dropped). Nothing here names a
call: every figure is a count.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..report.events import REFUSALS, ActiveCalls, EchoCallEnded, Echoed, Event, Refused, from_call

TICK_S = 1.0


class EchoMetrics:
    """Follows an EchoServer (agent/echo.py): its ended calls through `on_call` (chained with any hook
    already there), the rest by `tick()` (`run()` ticks every TICK_S)."""

    def __init__(self, server, emit: Callable[[Event], None]) -> None:
        self.server, self.emit = server, emit
        self._echoed_by_ended = 0  # packets echoed by the calls that ended
        self._echoed = 0  # packets echoed, as emitted so far
        self._refused = dict.fromkeys(REFUSALS, 0)
        before = server.on_call

        def on_call(record) -> None:
            self.ended(record)
            if before is not None:
                before(record)
        server.on_call = on_call

    def ended(self, record) -> None:
        """A call is over (agent/echo.EchoCall, its Analyzer's Call in `.call`)."""
        self._echoed_by_ended += record.packets_echoed
        self.emit(EchoCallEnded(record.session.outcome))
        if record.call is not None:
            for event in from_call(record.call):
                self.emit(event)

    def tick(self) -> None:
        server = self.server
        self.emit(ActiveCalls(len(server.calls)))
        echoed = self._echoed_by_ended + sum(c.packets_echoed for c in server.calls.values())
        if echoed > self._echoed:  # a call's count only grows, also as it moves from active to ended
            self.emit(Echoed(echoed - self._echoed))
            self._echoed = echoed
        limiter = server.ua.limiter
        counts = {"rate_limit": limiter.dropped if limiter is not None else 0, "max_calls": server.core.over_limit,
                  "malformed": server.ua.ep.malformed}
        for reason, count in counts.items():
            if count > self._refused[reason]:
                self.emit(Refused(reason, count - self._refused[reason]))
                self._refused[reason] = count

    async def run(self, every: float = TICK_S) -> None:
        while True:
            self.tick()
            await asyncio.sleep(every)
