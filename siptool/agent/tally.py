"""What a capacity run (`call --calls N`) has done so far, for its live board: fed the calls' typed
events (a call starts with its INVITE, is answered with the 2xx to it) and their results. Its
figures, percentiles included, are analysis/capacity.live's; the board only shows them."""

from __future__ import annotations

from ..analysis import capacity
from ..report.capacity_model import LiveFigures
from .events import Received, Sent


class Tally:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.started: set[str] = set()
        self.answered: set[str] = set()
        self.failed = 0
        self.pdd: list[float] = []
        self.mos: list[float] = []

    def event(self, e) -> None:
        if isinstance(e, Sent) and e.initial:
            self.started.add(e.call_id)
        elif isinstance(e, Received) and e.method == "INVITE" and e.status is not None and 200 <= e.status < 300:
            self.answered.add(e.call_id)

    def finished(self, res) -> None:
        self.done += 1
        self.failed += not (res.status and 200 <= res.status < 300)
        if res.pdd_ms is not None:
            self.pdd.append(res.pdd_ms)
        if res.rx.mos is not None:
            self.mos.append(res.rx.mos)

    def figures(self) -> LiveFigures:
        return capacity.live(self.total, len(self.started), len(self.answered), self.done, self.failed,
                             self.pdd, self.mos)
