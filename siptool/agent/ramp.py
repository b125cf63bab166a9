"""The capacity ramp's asyncio driver (`call --ramp START:STEP:MAX --hold S --cps R`, the check type
"capacity"): level by level, N calls on one user agent, sent R a second, each with media, lasting so
that all N are up together for S seconds; then all hang up, and when the last has ended the next
level begins. The first level that does not pass ends the ramp; one that is inconclusive (its
calls failed on media or delay while the generator itself ran late) is run again first.

It measures its own lateness as it goes (when each INVITE left against the schedule, and how late
a short timer fires on its event loop): analysis/capacity.py reads it so that a slow generator is
never blamed on the trunk. The calls are the ones `call` places (caller.OutgoingCall), each judged
by analysis/placed.judge; the level's figures and verdict are analysis/capacity.level's."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Callable

from ..analysis import capacity
from ..errors import SiptoolError
from ..report.capacity_model import CapacityLevel, CapacityRamp, LevelVerdict
from . import inputs
from .caller import CallOptions, OutgoingCall, _open, hang_up

TICK_S = 0.01  # the loop-lag probe's timer


@dataclass(frozen=True)
class RampPlan:
    start: int
    step: int
    max: int
    hold: float = 5.0  # s all of a level's calls are up together
    cps: float = 10.0  # new calls per second
    late_ms: float = 100.0  # generator lateness above which media and delay failures are inconclusive
    retries: int = 2  # an inconclusive level is run again, at most this many times

    @classmethod
    def parse(cls, text: str, hold: float, cps: float) -> "RampPlan":
        """START:STEP:MAX, e.g. 10:5:50 (levels 10, 15 ... 50), checked (exit 2 when wrong)."""
        parts = text.split(":")
        if len(parts) != 3 or not all(p.strip().isdigit() for p in parts):
            raise SiptoolError(f"--ramp {text!r}: use START:STEP:MAX, e.g. 10:5:50")
        plan = cls(*(int(p) for p in parts), hold=hold, cps=cps)
        plan.check()
        return plan

    def check(self) -> None:
        inputs.number("ramp start", self.start, 1, 10_000)
        inputs.number("ramp step", self.step, 1, 10_000)
        inputs.number("ramp max", self.max, self.start, 10_000)
        inputs.number("--hold", self.hold, 0, 3600, above=True, unit="s")
        inputs.number("--cps", self.cps, 0, 10_000, above=True, unit="calls/s")

    def levels(self) -> list[int]:
        return list(range(self.start, self.max + 1, self.step))


class LagProbe:
    """How late a short timer fires on this loop while a level runs: the loop's own lag."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK_S
            await asyncio.sleep(TICK_S)
            self.lags.append(max(0.0, loop.time() - due))

    def stop(self) -> list[float]:
        if self._task is not None:
            self._task.cancel()
        return self.lags


async def run_level(caller, o: CallOptions, n: int, plan: RampPlan, on_event: Callable | None = None) -> CapacityLevel:
    """One level: n calls sent `plan.cps` a second, call i lasting so that all end together after
    `plan.hold` s with every call up; then the Analyzer's reading of each, and the level's verdict."""
    loop = asyncio.get_running_loop()
    probe = LagProbe()
    probe.start()
    begin = loop.time()
    late: list[float] = []
    tasks: list[asyncio.Future] = []
    try:
        for i in range(n):
            due = begin + i / plan.cps
            await asyncio.sleep(max(0.0, due - loop.time()))
            late.append(max(0.0, loop.time() - due))
            each = dataclasses.replace(o, duration=plan.hold + (n - 1 - i) / plan.cps)
            tasks.append(asyncio.ensure_future(OutgoingCall(caller, each, on_event).run()))
        results = list(await asyncio.gather(*tasks))
    except BaseException:
        await hang_up(tasks)
        raise
    finally:
        lags = probe.stop()
    finals = [r.call for r in results if r.call is not None and r.call.final_status is not None]
    errors = [r.error or "no final response" for r in results if r.call is None or r.call.final_status is None]
    return capacity.level(n, finals, errors, capacity.lateness(late, lags, plan.late_ms), loop.time() - begin)


async def run_ramp(o: CallOptions, plan: RampPlan, on_level: Callable[[CapacityLevel], None] | None = None,
                   on_event: Callable | None = None) -> CapacityRamp:
    """The ramp, level by level, until a level does not pass or the last level ran."""
    plan.check()
    ramp = CapacityRamp(target=o.uri, start=plan.start, step=plan.step, max=plan.max, hold_s=plan.hold, cps=plan.cps)
    caller = await _open(o, on_event)
    try:
        async with caller as c:
            for n in plan.levels():
                for attempt in range(plan.retries + 1):  # a late generator: the level again
                    lv = await run_level(c, o, n, plan, on_event)
                    lv.tries = attempt + 1
                    if lv.verdict != LevelVerdict.INCONCLUSIVE.value:
                        break
                ramp.levels.append(lv)
                if on_level is not None:
                    on_level(lv)
                if lv.verdict != LevelVerdict.PASS.value:
                    break
    finally:
        if caller.pcap is not None:
            caller.pcap.close()
    capacity.conclude(ramp)
    return ramp
