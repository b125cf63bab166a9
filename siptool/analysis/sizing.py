"""Trunk sizing from a capture: the channels the traffic held, how fast calls came, the busy hour's
traffic in Erlangs, the channels Erlang's B formula asks for, and where failures begin against
concurrency.

A channel is what a trunk's concurrent call capacity (CCC) counts. RFC 6076 defines no concurrency
figure; a carrier's CCC and an SBC's session limit count a session from the INVITE they admit until
it ends, ringing included. So an INVITE session holds one channel from its first INVITE until it is
released (ITU-T E.600's holding time, seizure to release): its BYE, or its final failure response.
Answered calls up at once are reported beside it (the conversations alone).

Computed from the finished calls, as metrics.py is: a few numbers per call, sorted once. The series
over time is cut into at most MAX_STEPS steps, so a day-long capture gives as small a series as an
hour's (1-minute steps instead of 1 s), and the per-second call rate is kept as counts of the seconds
that had calls, never as one value per second of the capture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..report.model import (Call, CallState, ConcurrencyBand, FailureOnset, Finding, LadderStep, Report, Severity,
                            Sizing, SizingSeries)
from .thresholds import Thresholds

TIMER_B_S = 32.0  # 64*T1: an INVITE with no response at all is given up (RFC 3261 17.1.1.2)
HOUR_S = 3600.0
MAX_STEPS = 1440  # points in the series, whatever the capture's length
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)  # series resolutions, seconds
ONSET_CODES = (503, 486, 480)  # failures judged against concurrency (a trunk at its limit sends these)
REFUSED = frozenset((503,))  # attempts offered but refused for capacity: added back to offered traffic
MAX_BANDS = 10


@dataclass(frozen=True, slots=True)
class SizingPlan:
    """What to size for: the grade of service (blocking probability, `analyze --gos`) and the
    traffic growth to allow for (`--headroom`, percent)."""

    gos: float = 0.01
    headroom_pct: float = 20.0


DEFAULT_PLAN = SizingPlan()


# --- Erlang B ------------------------------------------------------------------------------------

def erlang_b(traffic: float, channels: int) -> float:
    """Probability that a call offered `traffic` Erlangs finds all `channels` busy (Erlang's B
    formula, blocked calls cleared), by the stable recursion B(A, 0) = 1,
    B(A, n) = A B(A, n-1) / (n + A B(A, n-1)) (ITU-T E.520, Iversen's Teletraffic Engineering 4.3)."""
    b = 1.0
    for n in range(1, channels + 1):
        b = traffic * b / (n + traffic * b)
    return b


def channels_for(traffic: float, gos: float) -> int:
    """Fewest channels that carry `traffic` Erlangs with a blocking probability of at most `gos`."""
    if traffic <= 0:
        return 0
    b, n = 1.0, 0
    while b > gos:
        n += 1
        b = traffic * b / (n + traffic * b)
    return n


# --- the sessions --------------------------------------------------------------------------------

def holding(call: Call, capture_end: float) -> tuple[float, float]:
    """(seizure, release) of the channel an INVITE session held: from its first INVITE to its BYE, or
    to its final failure response. A call up or ringing when the capture ended holds it to the end; a
    CANCEL whose 487 was not captured releases at the last message; an INVITE that got no response at
    all is given up by Timer B."""
    start = call.start
    if call.answer is not None:
        release = call.end if call.end is not None else capture_end
    elif (final := _final_step(call)) is not None:
        release = final.time
    elif call.state == CallState.CANCELLED:
        release = call.ladder[-1].time if call.ladder else start
    elif call.first_provisional is None:
        release = min(capture_end, start + TIMER_B_S)
    else:
        release = capture_end
    return start, max(release, start)


def _final_step(call: Call) -> LadderStep | None:
    """The final response that ended the INVITE session (none for an answered one)."""
    if call.final_status is None or call.final_status < 300:
        return None
    return next((s for s in call.ladder if s.status == call.final_status and s.method == "INVITE"), None)


def _sweep(begin: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times where the number held changes, the number held after each, and the channel-seconds
    held up to each (its integral). At one instant releases go first: a freed channel is reused."""
    keep = end > begin
    begin, end = begin[keep], end[keep]
    times = np.concatenate([end, begin])
    step = np.concatenate([-np.ones(len(end), np.int64), np.ones(len(begin), np.int64)])
    order = np.lexsort((step, times))
    times, level = times[order], np.cumsum(step[order])
    held = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))]) if len(times) else np.zeros(0)
    return times, level, held


def _held_between(times: np.ndarray, integral: np.ndarray, a, b):
    """Channel-seconds held between a and b (arrays or numbers); the integral is piecewise linear."""
    if not len(times):
        return np.zeros_like(np.asarray(b, float))
    return np.interp(b, times, integral) - np.interp(a, times, integral)


def _peak(times: np.ndarray, level: np.ndarray) -> tuple[int, float | None]:
    if not len(level):
        return 0, None
    i = int(np.argmax(level))
    return int(level[i]), float(times[i])


# --- figures -------------------------------------------------------------------------------------

def compute_sizing(calls: list[Call], first: float | None, last: float | None,
                   plan: SizingPlan = DEFAULT_PLAN) -> Sizing | None:
    """The Sizing of the INVITE sessions among `calls`, over a capture from `first` to `last`."""
    sessions = [c for c in calls if c.kind == "call"]
    if not sessions or first is None or last is None:
        return None
    last = max(last, max(c.start for c in sessions))
    spans = np.array([holding(c, last) for c in sessions], float).reshape(-1, 2)
    start, release = spans[:, 0], spans[:, 1]
    status = np.array([c.final_status or 0 for c in sessions], np.int64)
    up = [(c.answer, c.end if c.end is not None else last) for c in sessions if c.answer is not None]
    up_arr = np.array(up, float).reshape(-1, 2)
    times, level, integral = _sweep(start, release)
    a_times, a_level, a_integral = _sweep(up_arr[:, 0], up_arr[:, 1])
    s = Sizing(window="busy hour" if last - first >= HOUR_S else "whole capture", attempts=len(sessions),
               gos=plan.gos, headroom_pct=plan.headroom_pct)
    s.peak_channels, s.peak_channels_time = _peak(times, level)
    s.peak_answered, s.peak_answered_time = _peak(a_times, a_level)
    s.cps_peak, s.cps_peak_time, s.cps_p95 = _call_rate(start, first, last)
    s.window_start, s.window_end = _busy_window(times, integral, first, last)
    _traffic(s, times, integral, start, status, plan)
    held = _held_at_arrival(start, release)
    s.onsets = _onsets(sessions, held, status)
    s.bands = _bands(held, status, [o.level for o in s.onsets])
    s.series = _series(times, level, integral, a_times, a_level, start, status, first, last)
    return s


def _call_rate(start: np.ndarray, first: float, last: float) -> tuple[int, float, float]:
    """Peak and 95th percentile of the INVITE sessions begun per 1 s window, windows aligned on the
    capture clock's whole seconds and every window of the capture counted (quiet ones as 0)."""
    seconds, counts = np.unique(np.floor(start).astype(np.int64), return_counts=True)
    i = int(np.argmax(counts))
    windows = int(math.floor(last) - math.floor(first)) + 1
    ordered = np.sort(counts)
    zeros = max(windows - len(ordered), 0)
    total = zeros + len(ordered)

    def at(k: int) -> float:
        return 0.0 if k < zeros else float(ordered[k - zeros])

    pos = (total - 1) * 0.95  # numpy's default (linear) quantile, as metrics.py
    lo = int(pos)
    hi = min(lo + 1, total - 1)
    return int(counts[i]), float(seconds[i]), round(at(lo) + (at(hi) - at(lo)) * (pos - lo), 3)


def _busy_window(times: np.ndarray, integral: np.ndarray, first: float, last: float) -> tuple[float, float]:
    """The 60-minute window with the most channel-seconds (sliding, not clock-aligned hours), or the
    whole capture when it is shorter. The held time of a sliding window is piecewise linear in its
    start, so its maximum is at a start or end meeting a change: those starts are the candidates."""
    if last - first <= HOUR_S or not len(times):
        return first, last
    candidates = np.clip(np.concatenate([times, times - HOUR_S, [first]]), first, last - HOUR_S)
    held = _held_between(times, integral, candidates, candidates + HOUR_S)
    best = candidates[held >= held.max() - 1e-6].min()  # the earliest of equal hours
    return float(best), float(best + HOUR_S)


def _traffic(s: Sizing, times, integral, start, status, plan: SizingPlan) -> None:
    """Carried traffic = mean channels held over the window. Offered = carried with the attempts
    refused for capacity added back at the carried attempts' mean holding time (ITU-T E.501's
    estimate of offered from carried traffic): carried x attempts / attempts carried."""
    a, b = s.window_start, s.window_end
    if b <= a:
        return
    s.carried_erlangs = round(float(_held_between(times, integral, a, b)) / (b - a), 4)
    inside = (start >= a) & (start <= b)
    s.window_attempts = int(inside.sum())
    s.window_refused = int((inside & np.isin(status, list(REFUSED))).sum())
    carried_attempts = s.window_attempts - s.window_refused
    if carried_attempts <= 0:
        return
    s.offered_erlangs = round(s.carried_erlangs * s.window_attempts / carried_attempts, 4)
    s.channels = channels_for(s.offered_erlangs, plan.gos)
    s.channels_with_headroom = channels_for(s.offered_erlangs * (1 + plan.headroom_pct / 100), plan.gos)


def _held_at_arrival(start: np.ndarray, release: np.ndarray) -> np.ndarray:
    """Channels already held when each session's INVITE came (itself not counted)."""
    held = release > start
    begun = np.sort(start[held])
    freed = np.sort(release[held])
    return np.searchsorted(begun, start, "left") - np.searchsorted(freed, start, "right")


def _onsets(sessions: list[Call], held: np.ndarray, status: np.ndarray) -> list[FailureOnset]:
    out = []
    for code in ONSET_CODES:
        failed = status == code
        if not failed.any():
            continue
        level = int(held[failed].min())
        from_level = held >= level
        first = sorted(np.flatnonzero(failed), key=lambda i: sessions[i].start)[:10]
        out.append(FailureOnset(
            status=code, count=int(failed.sum()), level=level, attempts_below=int((~from_level).sum()),
            attempts_from=int(from_level.sum()),
            failure_pct_from=round(100.0 * int(failed.sum()) / max(int(from_level.sum()), 1), 2),
            frames=[step.frame for step in (_final_step(sessions[i]) for i in first) if step]))
    return out


def _bands(held: np.ndarray, status: np.ndarray, onsets: list[int]) -> list[ConcurrencyBand]:
    """Attempts and their 503/486/480 failures by the channels held when they arrived, in at most
    about MAX_BANDS bands, each failure onset beginning a band of its own."""
    top = int(held.max()) if len(held) else 0
    width = max(1, math.ceil((top + 1) / MAX_BANDS))
    edges = sorted(set(range(0, top + 1, width)) | {max(0, x) for x in onsets}) + [top + 1]
    bands = []
    for low, high in zip(edges, edges[1:]):
        inside = (held >= low) & (held < high)
        n = int(inside.sum())
        if not n:
            continue
        band = ConcurrencyBand(low=low, high=high - 1, attempts=n)
        for code in ONSET_CODES:
            k = int((inside & (status == code)).sum())
            if k:
                band.failures[str(code)] = k
                band.failure_pct[str(code)] = round(100.0 * k / n, 2)
        bands.append(band)
    return bands


def _series(times, level, integral, a_times, a_level, start, status, first: float, last: float) -> SizingSeries:
    span = max(last - first, 0.0)
    step = next((float(x) for x in STEPS if x * MAX_STEPS >= span), float(math.ceil(span / MAX_STEPS)))
    origin = math.floor(first / step) * step
    n = int((last - origin) // step) + 1
    edges = origin + step * np.arange(n + 1)
    index = np.clip(((start - origin) // step).astype(np.int64), 0, n - 1)
    series = SizingSeries(
        start=origin, step_s=step, channels=_step_max(times, level, edges),
        answered=_step_max(a_times, a_level, edges),
        erlangs=_step_traffic(times, integral, edges, step),
        attempts=np.bincount(index, minlength=n).tolist())
    for code in ONSET_CODES:
        if (status == code).any():
            series.failures[str(code)] = np.bincount(index[status == code], minlength=n).tolist()
    return series


def _step_traffic(times, integral, edges: np.ndarray, step: float) -> list[float]:
    if not len(times):
        return [0.0] * (len(edges) - 1)
    cumulative = np.interp(edges, times, integral)
    return [round(float(x), 4) for x in np.diff(cumulative) / step]


def _step_max(times: np.ndarray, level: np.ndarray, edges: np.ndarray) -> list[int]:
    """The most held at once within each step [a, b): the number held at a (after the changes at a
    itself), or after a change inside it."""
    if not len(times):
        return [0] * (len(edges) - 1)
    lo = np.searchsorted(times, edges[:-1], "right")
    hi = np.searchsorted(times, edges[1:], "left")
    out = np.where(lo > 0, level[np.maximum(lo - 1, 0)], 0)
    busy = hi > lo
    if busy.any():  # max over level[lo:hi] of each busy step: reduceat over (lo, hi) pairs
        bounds = np.column_stack([lo[busy], hi[busy]]).ravel()
        out[busy] = np.maximum(out[busy], np.maximum.reduceat(np.append(level, 0), bounds)[::2])
    return out.astype(int).tolist()


# --- applying it ---------------------------------------------------------------------------------

def resize(report: Report, plan: SizingPlan | None = None) -> None:
    """Recompute the report's sizing over its calls (after --filter, or for another plan)."""
    if plan is None:
        old = report.sizing
        plan = SizingPlan(old.gos, old.headroom_pct) if old is not None else DEFAULT_PLAN
    report.sizing = compute_sizing(report.calls, report.capture.first_time, report.capture.last_time, plan)


def concurrency_limit(sizing: Sizing | None, limits: Thresholds) -> list[Finding]:
    """503s (or 486s, 480s) that begin at a number of calls up, and not below it: the trunk's
    concurrent call capacity is near that number."""
    if sizing is None:
        return []
    out = []
    for o in sizing.onsets:
        if o.level < 1 or o.count < limits.onset_failures or o.attempts_below < limits.onset_below \
                or o.failure_pct_from < limits.onset_pct:
            continue
        failed_from = round(o.attempts_from * o.failure_pct_from / 100)
        out.append(Finding(
            code="capacity.concurrency_limit", severity=Severity.WARNING,
            title=f"{o.status}s begin above {o.level} concurrent calls: a CCC limit near {o.level}",
            explanation=f"None of the {o.attempts_below:,} INVITEs that came while fewer than {o.level} calls "
                        f"held a channel got a {o.status}; from {o.level} up, {failed_from:,} of "
                        f"{o.attempts_from:,} ({o.failure_pct_from:.0f} %) did. A trunk that refuses calls "
                        "past a number of calls in progress (INVITE to BYE) has a concurrent call capacity "
                        "there: the carrier's contracted CCC, an SBC's session limit or a licence.",
            fix=f"Ask the carrier for the trunk's CCC (or raise the SBC's session limit) above the "
                f"busy hour's need: the sizing section gives Erlang-B channels for it; a "
                f"{o.status} at the limit costs calls.",
            frames=list(o.frames),
            evidence={"status": o.status, "level": o.level, "failures": o.count,
                      "attempts_below": o.attempts_below, "attempts_from": o.attempts_from,
                      "failure_pct_from": o.failure_pct_from}))
    return out
