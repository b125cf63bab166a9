"""Trunk sizing (analysis/sizing.py): Erlang B against published tables, and every capture-derived
figure against a slow reference computed second by second from the calls' own times."""

from __future__ import annotations

import random

import numpy as np
import pytest
from support import FIXTURES

from siptool.drivers.files import analyze_file
from siptool.analysis.sizing import (MAX_STEPS, SizingPlan, channels_for, compute_sizing, concurrency_limit,
                                     erlang_b)
from siptool.analysis.thresholds import DEFAULT
from siptool.report.model import Call, CallState, LadderStep

# Collins, "Carrier Grade Voice over IP" (2nd ed., McGraw-Hill 2003), Appendix A "Table of Erlang B":
# traffic in Erlangs (1 decimal) a number of channels carries at a blocking probability.
COLLINS_GOS = (0.0001, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01,
               0.02, 0.03, 0.04, 0.05)
COLLINS = {
    1: (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1),
    2: (0.0, 0.0, 0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4),
    3: (0.1, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    4: (0.2, 0.4, 0.4, 0.5, 0.6, 0.7, 0.7, 0.7, 0.8, 0.8, 0.8, 0.9, 1.1, 1.3, 1.4, 1.5),
    5: (0.5, 0.6, 0.8, 0.9, 1.0, 1.1, 1.1, 1.2, 1.2, 1.3, 1.3, 1.4, 1.7, 1.9, 2.1, 2.2),
    6: (0.7, 1.0, 1.1, 1.3, 1.4, 1.5, 1.6, 1.7, 1.8, 1.8, 1.9, 1.9, 2.3, 2.5, 2.8, 3.0),
    7: (1.1, 1.4, 1.6, 1.8, 1.9, 2.1, 2.2, 2.2, 2.3, 2.4, 2.4, 2.5, 2.9, 3.2, 3.5, 3.7),
    8: (1.4, 1.8, 2.1, 2.3, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0, 3.1, 3.1, 3.6, 4.0, 4.3, 4.5),
    9: (1.8, 2.3, 2.6, 2.9, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 4.3, 4.7, 5.1, 5.4),
}


def carried_at(channels: int, gos: float) -> float:
    """The traffic `channels` carry at blocking `gos`: erlang_b inverted by bisection (it rises with traffic)."""
    lo, hi = 0.0, 10.0 * channels + 10
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if erlang_b(mid, channels) > gos else (mid, hi)
    return lo


@pytest.mark.parametrize("channels", sorted(COLLINS))
def test_erlang_b_matches_the_published_table(channels):
    for gos, published in zip(COLLINS_GOS, COLLINS[channels]):
        assert round(carried_at(channels, gos), 1) == published, (channels, gos)


def test_erlang_b_matches_westbay_examples():
    # erlang.com calculator manual: 15 lines at 1 % blocking carry 8.108 Erlangs of busy-hour traffic
    assert round(carried_at(15, 0.01), 3) == 8.108
    # erlang.com forum (Westbay): 1,200 busy-hour calls "divided by 36" (100 s each) = 33.333 E -> 45
    # lines at 1 %
    assert channels_for(1200 * 100 / 3600, 0.01) == 45
    assert erlang_b(0.0, 3) == 0.0 and erlang_b(5.0, 0) == 1.0 and channels_for(0.0, 0.01) == 0


def test_channels_for_is_the_least_that_meets_the_grade():
    for traffic in (0.3, 4.461, 12.0, 37.9, 84.06, 250.0):
        for gos in (0.001, 0.01, 0.05):
            n = channels_for(traffic, gos)
            assert erlang_b(traffic, n) <= gos < erlang_b(traffic, n - 1)


# --- capture-derived figures against a second-by-second reference ---------------------------------

T0 = 1_800_000_000.0


def call(start: float, release: float, answer: float | None = None, status: int = 200, frame: int = 1) -> Call:
    """An INVITE session: INVITE at `start`, then a final `status` at `release` (failure) or an
    answer and a BYE at `release`."""
    ladder = [LadderStep(frame, start, "a:1", "b:1", "UDP", "INVITE", "INVITE", None, 1)]
    c = Call(call_id=f"c{frame}", kind="call", start=start, final_status=status, ladder=ladder)
    if status < 300:
        c.answer = answer if answer is not None else start
        c.end, c.state = release, CallState.COMPLETED
        ladder.append(LadderStep(frame + 1, c.answer, "b:1", "a:1", "UDP", "200 OK", "INVITE", 200, 1))
    else:
        c.end, c.state = release, CallState.FAILED
        ladder.append(LadderStep(frame + 1, release, "b:1", "a:1", "UDP", f"{status} X", "INVITE", status, 1))
    return c


def random_calls(seed: int, hours: float, rate_per_s: float, limit: int | None = None) -> list[Call]:
    """Poisson arrivals at whole seconds; holding 1-600 s. With `limit`: a trunk that answers 503 to
    an INVITE arriving while `limit` calls hold a channel (its CCC)."""
    rng = random.Random(seed)
    calls, t, frame = [], T0, 1
    while t < T0 + hours * 3600:
        t += max(1.0, round(rng.expovariate(rate_per_s)))
        held = sum(1 for c in calls if c.final_status != 503 and c.start < t < c.end)
        if limit is not None and held >= limit:  # refused at once (and never two in one second)
            calls.append(call(t, t + 0.01, status=503, frame=frame))
        elif rng.random() < 0.05:
            calls.append(call(t, t + 3, status=486, frame=frame))
        else:
            calls.append(call(t, t + rng.randint(1, 600), answer=t + rng.randint(0, 1), frame=frame))
        frame += 2
    return calls


def reference(calls: list[Call], first: int, last: int) -> dict:
    """Slow and plain: the channels held in each whole second [s, s+1) (every time here is whole),
    busy hour by trying every start second. (A 0.01 s refusal holds no whole second.)"""
    held = np.zeros(last - first + 1, int)
    answered = np.zeros_like(held)
    per_second = np.zeros_like(held)
    for c in calls:
        held[int(c.start) - first:int(c.end) - first] += 1
        if c.answer is not None:
            answered[int(c.answer) - first:int(c.end) - first] += 1
        per_second[int(c.start) - first] += 1
    span = last - first
    if span < 3600:
        window, carried = (first, last), held[:-1].sum() / span
    else:
        sums = np.convolve(held[:-1], np.ones(3600, int), "valid")
        i = int(np.argmax(sums))
        window, carried = (first + i, first + i + 3600), sums[i] / 3600
    return {"peak": held.max(), "answered": answered.max(), "cps_peak": per_second.max(),
            "cps_p95": float(np.percentile(per_second, 95)), "window": window, "carried": carried,
            "held": held, "per_second": per_second}


@pytest.mark.parametrize("seed,hours,rate", [(1, 0.5, 0.2), (2, 3.0, 0.05), (3, 2.0, 0.5)])
def test_figures_equal_the_reference(seed, hours, rate):
    calls = random_calls(seed, hours, rate)
    first, last = int(calls[0].start) - 7, int(max(c.end for c in calls)) + 5
    s = compute_sizing(calls, first, last)
    ref = reference(calls, first, last)
    assert s.attempts == len(calls)
    assert s.peak_channels == ref["peak"] and s.peak_answered == ref["answered"]
    assert s.cps_peak == ref["cps_peak"] and s.cps_p95 == pytest.approx(ref["cps_p95"])
    assert (s.window_start, s.window_end) == ref["window"]
    assert s.window == ("busy hour" if hours >= 1 else "whole capture")
    assert s.carried_erlangs == pytest.approx(ref["carried"], abs=1e-4)
    assert s.offered_erlangs == s.carried_erlangs  # nothing refused for capacity
    assert s.channels == channels_for(s.offered_erlangs, 0.01)
    assert s.channels_with_headroom == channels_for(s.offered_erlangs * 1.2, 0.01)
    # the series: bounded, and each step holds the reference's figures of its seconds
    series = s.series
    assert len(series.channels) <= MAX_STEPS and series.step_s >= (last - first) / MAX_STEPS
    assert sum(series.attempts) == len(calls)
    for k, peak in enumerate(series.channels):
        a = int(series.start + k * series.step_s) - first
        b = a + int(series.step_s)
        assert peak == ref["held"][max(a, 0):b].max(), k
    assert sum(series.erlangs) * series.step_s == pytest.approx(ref["held"][:-1].sum(), rel=1e-5)


def test_a_day_stays_small():
    # a day of calls: the series has at most MAX_STEPS steps (here 1 minute each), not 86,400 seconds
    calls = [call(T0 + 60 * k, T0 + 60 * k + 90, frame=2 * k + 1) for k in range(24 * 60)]
    s = compute_sizing(calls, T0, T0 + 86400)
    assert s.series.step_s == 60 and len(s.series.channels) == 1441
    assert s.peak_channels == 2 and s.carried_erlangs == pytest.approx(1.5)
    assert s.cps_peak == 1 and s.cps_p95 == 0.0  # one call a minute: most seconds have none


def test_ccc_limit_is_found_where_the_trunk_refuses():
    calls = random_calls(4, 1.0, 0.5, limit=46)
    s = compute_sizing(calls, calls[0].start, max(c.end for c in calls))
    (onset,) = [o for o in s.onsets if o.status == 503]
    assert onset.level == 46 and onset.failure_pct_from > 50 and onset.attempts_below > 100
    assert s.peak_channels == 47  # the 46 held and one being refused, for a moment
    assert s.window_refused == onset.count and s.offered_erlangs > s.carried_erlangs
    (finding,) = concurrency_limit(s, DEFAULT)
    assert finding.code == "capacity.concurrency_limit"
    assert finding.title == "503s begin above 46 concurrent calls: a CCC limit near 46"
    assert finding.evidence["level"] == 46 and len(finding.frames) == 10
    # the band that begins at the onset holds every 503
    band = next(b for b in s.bands if b.low == 46)
    assert band.failures["503"] == onset.count
    assert not any("503" in b.failures for b in s.bands if b.high < 46)


def test_random_busy_calls_are_no_ccc_limit():
    calls = random_calls(5, 1.0, 0.5)  # 486s at random, whatever the concurrency
    s = compute_sizing(calls, calls[0].start, max(c.end for c in calls))
    assert [o.status for o in s.onsets] == [486]
    assert concurrency_limit(s, DEFAULT) == []


def test_plan_and_filter_recompute():
    calls = random_calls(6, 0.5, 0.3)
    strict = compute_sizing(calls, calls[0].start, calls[-1].end, SizingPlan(gos=0.001, headroom_pct=50))
    loose = compute_sizing(calls, calls[0].start, calls[-1].end, SizingPlan(gos=0.05, headroom_pct=0))
    assert strict.channels > loose.channels == loose.channels_with_headroom
    assert strict.channels_with_headroom > strict.channels and strict.gos == 0.001


def test_unfinished_calls_hold_their_channel_sensibly():
    ringing = Call(call_id="r", kind="call", start=T0, first_provisional=T0 + 0.1, state=CallState.IN_PROGRESS,
                   ladder=[LadderStep(1, T0, "a:1", "b:1", "UDP", "INVITE", "INVITE", None, 1)])
    silent = Call(call_id="s", kind="call", start=T0, state=CallState.IN_PROGRESS,
                  ladder=[LadderStep(2, T0, "a:1", "c:1", "UDP", "INVITE", "INVITE", None, 1)])
    up = call(T0, T0 + 500)
    up.end, up.state = None, CallState.ANSWERED
    s = compute_sizing([ringing, silent, up], T0, T0 + 100)
    # ringing and still up: held to the end of the capture; no response at all: Timer B (32 s)
    assert s.carried_erlangs == pytest.approx((100 + 32 + 100) / 100)
    assert compute_sizing([], T0, T0 + 1) is None


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_quiet_on_the_fixtures(path):
    report = analyze_file(path)
    assert not [f for f in report.all_findings() if f.code == "capacity.concurrency_limit"] or \
        path.name.startswith("ccc_limit")


def test_cli_plan_options():
    import json

    from typer.testing import CliRunner

    from siptool.cli import get_app

    path = str(FIXTURES / "calls_mixed.pcap")
    run = CliRunner().invoke(get_app(), ["analyze", path, "--json", "--gos", "0.001", "--headroom", "50"])
    assert run.exit_code == 0, run.output
    s = json.loads(run.stdout)["sizing"]
    assert (s["gos"], s["headroom_pct"]) == (0.001, 50.0)
    assert s["channels"] == channels_for(s["offered_erlangs"], 0.001)
    assert s["channels_with_headroom"] == channels_for(s["offered_erlangs"] * 1.5, 0.001)
    for bad in (["--gos", "0"], ["--gos", "1"], ["--headroom", "-5"]):
        run = CliRunner().invoke(get_app(), ["analyze", path, *bad])
        assert run.exit_code == 2, bad
    # a filter sizes the calls it keeps
    run = CliRunner().invoke(get_app(), ["analyze", path, "--json", "--filter", "answered"])
    assert json.loads(run.stdout)["sizing"]["attempts"] == 5


# --- a real trunk limit: kamailio refusing 503 past CCC_LIMIT calls in progress (make_pcaps.sh) ---

def script_limit() -> int:
    import re

    from support import REPO

    return int(re.search(r"^CCC_LIMIT=(\d+)$", (REPO / "fixtures" / "make_pcaps.sh").read_text(), re.M).group(1))


def ccc_verdict(path) -> None:
    limit = script_limit()
    report = analyze_file(path)
    s = report.sizing
    (finding,) = [f for f in report.findings if f.code == "capacity.concurrency_limit"]
    assert finding.title == f"503s begin above {limit} concurrent calls: a CCC limit near {limit}"
    assert s.peak_answered == limit  # the trunk never carried more
    (onset,) = s.onsets
    assert onset.status == 503 and onset.level == limit and onset.failure_pct_from == 100.0
    refused = [c for c in report.calls if c.final_status == 503]
    assert onset.count == len(refused) == s.window_refused > 0 and s.attempts == 40
    assert s.offered_erlangs > s.carried_erlangs and s.channels > limit


def test_kamailio_call_limit_fixture():
    ccc_verdict(FIXTURES / "ccc_limit.pcap")


@pytest.mark.interop
def test_kamailio_call_limit_regenerated(tmp_path):
    """make_pcaps.sh ccc_limit: SIPp through kamailio with a dialog-profile call limit (needs root)."""
    import os
    import subprocess

    from support import REPO, require_binary

    if os.geteuid() != 0:
        pytest.skip("make_pcaps.sh needs root for its network namespace")
    for tool in ("sipp", "tcpdump", "ip", "kamailio"):
        require_binary(tool)
    subprocess.run([str(REPO / "fixtures" / "make_pcaps.sh"), "ccc_limit"], check=True, capture_output=True,
                   timeout=120, env=dict(os.environ, SIPTOOL_FX_OUT=str(tmp_path)))
    ccc_verdict(tmp_path / "ccc_limit.pcap")
