"""What a capacity ramp found (`call --ramp`, the check type "capacity"): each level of concurrent
calls with its figures and verdict, the highest level that passed and what broke the first that
did not. analysis/capacity.py fills it; report/ramp_view.py and the JSON (`siptool.ramp/1`,
docs/json-schema.md) render it."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

RAMP_SCHEMA = "siptool.ramp/1"


class LevelVerdict(StrEnum):
    PASS = "pass"  # every call answered and within the thresholds
    FAIL = "fail"  # the trunk refused calls, or calls failed their thresholds
    INCONCLUSIVE = "inconclusive"  # calls failed on media or delay while the load generator itself ran late


@dataclass(slots=True)
class Lateness:
    """How late the load generator itself ran during a level: never the trunk's doing."""

    start_p95_ms: float = 0.0  # calls sent after the time the schedule gave them (95th percentile)
    start_max_ms: float = 0.0
    loop_lag_p95_ms: float = 0.0  # the event loop's lag: how late a short timer fired
    loop_lag_max_ms: float = 0.0
    limit_ms: float = 100.0  # over this, a level's media and delay failures are not blamed on the trunk
    late: bool = False


@dataclass(slots=True)
class LiveFigures:
    """A capacity run so far, for the live board: its percentiles computed here, not by the board."""

    done: int = 0
    total: int = 0
    started: int = 0
    answered: int = 0
    failed: int = 0  # not answered
    active: int = 0
    setup_pct: float = 0.0  # answered of those done
    pdd_p50_ms: float | None = None
    pdd_p95_ms: float | None = None
    mos_min: float | None = None
    mos_median: float | None = None


@dataclass(slots=True)
class CapacityLevel:
    """One level: `calls` placed at the ramp's rate, all up together for the hold time, with media."""

    calls: int
    attempted: int = 0
    answered: int = 0
    passed: int = 0  # calls that met every threshold (analysis/placed.judge)
    peak_concurrent: int = 0  # most answered calls up at once, from the Analyzer's answer and end times
    setup_ratio: float = 0.0  # answered / attempted
    pdd_p50_ms: float | None = None
    pdd_p95_ms: float | None = None
    mos_p5: float | None = None  # 5th percentile of each answered call's worse direction
    loss_pct: float | None = None  # received packets lost over expected, every answered call together
    loss_pct_max: float | None = None  # the worst call's
    one_way: int = 0  # calls with one-way audio
    rejected: dict[str, int] = field(default_factory=dict)  # final status ("503", "486", "480"...) -> calls
    reasons: dict[str, str] = field(default_factory=dict)  # that status -> its reason phrase as the trunk gave it
    errors: dict[str, int] = field(default_factory=dict)  # no final response: why -> calls
    media_clean: bool = True  # no answered call failed a media limit (loss, jitter, MOS, one-way, gaps)
    verdict: str = LevelVerdict.PASS.value
    why: list[str] = field(default_factory=list)  # what broke it, one line per cause
    lateness: Lateness = field(default_factory=Lateness)
    duration_s: float = 0.0
    tries: int = 1  # runs of this level: an inconclusive one is run again (agent/ramp.py)


@dataclass(slots=True)
class CapacityRamp:
    """The ramp START:STEP:MAX at `cps` new calls per second, each level held `hold_s` seconds."""

    target: str
    start: int
    step: int
    max: int
    hold_s: float
    cps: float
    levels: list[CapacityLevel] = field(default_factory=list)
    ccc: int | None = None  # the highest level that passed (None: none did)
    answer: str = ""  # "CCC 48: from 49 calls the trunk answers 503 Call Limit Reached (1 of 49), media still clean"
    schema: str = RAMP_SCHEMA
