"""A capacity ramp's figures and verdicts, from the Analyzer's Calls of the calls placed (each
judged by analysis/placed.judge with the one Thresholds object) and the load generator's own
lateness. Nothing here measures: it counts and takes percentiles of figures the Analyzer and
the agent gave.

    level(n, calls, errors, lateness) -> CapacityLevel    one level's figures and verdict
    conclude(ramp)                                        ccc and the answer in words
    live(...) -> LiveFigures                              a capacity run so far (the live board)

A level passes when every call it placed passed. It fails when the trunk refused calls or calls
failed their thresholds; when the failures are media or delay only and the generator ran late
(calls sent late against the schedule, or its event loop lagging), the level is inconclusive:
a slow generator is never blamed on the trunk."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..report.capacity_model import CapacityLevel, CapacityRamp, Lateness, LevelVerdict, LiveFigures
from ..report.model import Call
from .placed import passed

MEDIA_WORDS = ("loss", "jitter", "MOS", "no media", "one-way", "no audio")  # a failed media limit (placed.judge)


def percentile(values, q: float) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.percentile(values, q)), 2) if values else None


def lateness(starts_late_s: list[float], loop_lag_s: list[float], limit_ms: float) -> Lateness:
    """The generator's lateness over a level: calls against their schedule, the loop's timer lag."""
    late = Lateness(limit_ms=limit_ms)
    if starts_late_s:
        late.start_p95_ms = round(float(np.percentile(starts_late_s, 95)) * 1000, 1)
        late.start_max_ms = round(max(starts_late_s) * 1000, 1)
    if loop_lag_s:
        late.loop_lag_p95_ms = round(float(np.percentile(loop_lag_s, 95)) * 1000, 1)
        late.loop_lag_max_ms = round(max(loop_lag_s) * 1000, 1)
    late.late = max(late.start_p95_ms, late.loop_lag_max_ms) >= limit_ms
    return late


def peak_concurrent(calls: list[Call]) -> int:
    """Most calls up at the same time (answer to end), from the Analyzer's times of each."""
    edges = []
    for c in calls:
        if c.kind == "call" and c.answer is not None:
            edges += [(c.answer, 1), (c.end if c.end is not None else float("inf"), -1)]
    peak = cur = 0
    for _, d in sorted(edges, key=lambda e: (e[0], e[1])):
        cur += d
        peak = max(peak, cur)
    return peak


def _worse_mos(call: Call) -> float | None:
    a = call.agent
    values = [f.mos for f in (a.rx, a.tx) if f is not None and f.mos is not None]
    return min(values) if values else None


def level(n: int, calls: list[Call], errors: list[str], late: Lateness, duration_s: float = 0.0) -> CapacityLevel:
    """Level `n`: the Analyzer's Calls of the calls that got a final response (judged: call.agent), and
    `errors`, why each of the others got none (a timeout, a transport error, nothing sent)."""
    lv = CapacityLevel(calls=n, attempted=len(calls) + len(errors), lateness=late, duration_s=round(duration_s, 2))
    answered = [c for c in calls if c.final_status is not None and 200 <= c.final_status < 300]
    lv.answered, lv.passed = len(answered), sum(passed(c) for c in calls)
    lv.setup_ratio = round(lv.answered / lv.attempted, 4) if lv.attempted else 0.0
    lv.peak_concurrent = peak_concurrent(calls)
    pdd = [c.pdd_ms for c in calls]
    lv.pdd_p50_ms, lv.pdd_p95_ms = percentile(pdd, 50), percentile(pdd, 95)
    lv.mos_p5 = percentile([_worse_mos(c) for c in answered], 5)
    rx = [c.agent.rx for c in answered if c.agent.rx is not None and c.agent.rx.packets]
    expected = sum(f.packets + f.lost for f in rx)
    if rx:
        lv.loss_pct = round(100.0 * sum(f.lost for f in rx) / expected, 3) if expected else 0.0
        lv.loss_pct_max = max(f.loss_pct for f in rx)
    lv.one_way = sum(1 for c in answered if c.agent.one_way)
    for c in calls:
        if c.final_status is not None and c.final_status >= 300:
            key = str(c.final_status)
            lv.rejected[key] = lv.rejected.get(key, 0) + 1
            lv.reasons.setdefault(key, c.final_reason or "")
    lv.errors = dict(Counter(e[:100] for e in errors))
    media = [c for c in answered if c.agent.one_way or _media_problems(c)]
    lv.media_clean = not media
    lv.why = _why(lv, answered, media)
    if not lv.why:
        lv.verdict = LevelVerdict.PASS.value
    elif late.late and not lv.rejected and not lv.errors:
        lv.verdict = LevelVerdict.INCONCLUSIVE.value
        lv.why.append(f"the load generator ran late (calls sent up to {late.start_max_ms:.0f} ms after their time, "
                      f"its loop {late.loop_lag_max_ms:.0f} ms behind at worst): not the trunk's doing")
    else:
        lv.verdict = LevelVerdict.FAIL.value
    return lv


def _media_problems(call: Call) -> list[str]:
    return [p for p in call.agent.problems if any(w in p for w in MEDIA_WORDS)]


def _why(lv: CapacityLevel, answered: list[Call], media: list[Call]) -> list[str]:
    why = [f"{_calls(k)}: the trunk answers {code} {lv.reasons.get(code, '')}".rstrip()
           for code, k in sorted(lv.rejected.items(), key=lambda kv: -kv[1])]
    why += [f"{_calls(k)}: {text}" for text, k in lv.errors.items()]
    if media:
        first = (_media_problems(media[0]) or [media[0].agent.one_way])[0]
        why.append(f"{_calls(len(media))} answered failed a media limit (first: {first})")
    others = [c for c in answered if c not in media and not passed(c)]
    if others:
        first = others[0].agent.problems[0] if others[0].agent.problems else "no codec agreed"
        why.append(f"{_calls(len(others))} answered failed (first: {first})")
    return why


def _calls(k: int) -> str:
    return f"{k} call" + ("s" if k != 1 else "")


def conclude(ramp: CapacityRamp) -> None:
    """The highest passing level (levels run in order and stop at the first that did not pass), and
    what broke the next one, in words."""
    passing = [lv.calls for lv in ramp.levels if lv.verdict == LevelVerdict.PASS.value]
    ramp.ccc = max(passing) if passing else None
    stop = next((lv for lv in ramp.levels if lv.verdict != LevelVerdict.PASS.value), None)
    head = f"CCC {ramp.ccc}" if ramp.ccc is not None else "no level passed"
    if stop is None:
        ramp.answer = f"CCC {ramp.ccc}: every level up to {ramp.max} calls passed (the ramp's end, not the trunk's)" \
            if ramp.levels else "no level ran"
        return
    if stop.verdict == LevelVerdict.INCONCLUSIVE.value:
        ramp.answer = f"{head}; at {stop.calls} calls inconclusive: {stop.why[-1]}"
        return
    causes = []
    for code, k in sorted(stop.rejected.items(), key=lambda kv: -kv[1]):
        reason = stop.reasons.get(code, "")
        causes.append(f"the trunk answers {code}{' ' + reason if reason else ''} ({k} of {stop.attempted})")
    causes += [f"{text} ({k} of {stop.attempted})" for text, k in stop.errors.items()]
    if not stop.media_clean:
        causes.append(f"media fails: {next(w for w in stop.why if 'media limit' in w)}")
    elif stop.answered:
        causes.append("media still clean")
    if len(causes) == 1 and causes[0] == "media still clean":  # answered, media clean, yet failed: PDD...
        causes = [stop.why[0], "media still clean"]
    ramp.answer = f"{head}: from {stop.calls} calls " + ", ".join(causes)


def live(total: int, started: int, answered: int, done: int, failed: int, pdd: list[float],
         mos: list[float]) -> LiveFigures:
    """The live board's figures: counts and percentiles of the calls finished so far."""
    return LiveFigures(done=done, total=total, started=started, answered=answered, failed=failed,
                       active=max(started - done, 0),
                       setup_pct=round(100.0 * (done - failed) / done, 1) if done else 0.0,
                       pdd_p50_ms=percentile(pdd, 50), pdd_p95_ms=percentile(pdd, 95),
                       mos_min=min(mos) if mos else None, mos_median=percentile(mos, 50))
