"""A capacity ramp's levels and answer (analysis/capacity.py) from judged Calls: the verdict of a
level, what broke it in words, and a late generator that makes a level inconclusive, not failed."""

from __future__ import annotations

from siptool.analysis import capacity
from siptool.report.capacity_model import CapacityRamp
from siptool.report.model import AgentView, Call, MediaFigures


def call(i: int, status: int = 200, reason: str = "OK", problems=(), mos: float = 4.4, lost: int = 0,
         one_way: str | None = None, pdd: float = 20.0) -> Call:
    """A judged call: answered at i, up for 10 s (or refused), with the agent's verdict."""
    c = Call(call_id=f"c{i}", final_status=status, final_reason=reason, start=float(i), pdd_ms=pdd)
    a = c.agent = AgentView(codec="PCMU" if status == 200 else None, problems=list(problems), one_way=one_way)
    if status == 200:
        c.answer, c.end = i + 0.1, 100.0
        a.rx = MediaFigures(packets=500 - lost, lost=lost, loss_pct=round(lost * 100 / 500, 3), mos=mos,
                            source="measured")
        a.tx = MediaFigures(packets=500, mos=mos + 0.1, source="rtcp")
    return c


def on_time():
    return capacity.lateness([0.001] * 10, [0.002] * 100, 100.0)


def test_a_clean_level_passes_with_its_figures():
    calls = [call(i, pdd=10.0 * (i + 1), mos=4.4 - i * 0.1) for i in range(4)]
    lv = capacity.level(4, calls, [], on_time())
    assert (lv.verdict, lv.attempted, lv.answered, lv.passed, lv.setup_ratio) == ("pass", 4, 4, 4, 1.0)
    assert lv.peak_concurrent == 4 and lv.why == [] and lv.media_clean
    assert lv.pdd_p50_ms == 25.0 and lv.pdd_p95_ms == 38.5  # numpy's linear percentiles of 10, 20, 30, 40
    assert lv.mos_p5 == 4.12  # 5th percentile of 4.4, 4.3, 4.2, 4.1 (each call's worse direction: rx), 2 decimals
    assert lv.loss_pct == 0.0 and lv.one_way == 0 and lv.rejected == {}


def test_503s_fail_the_level_and_the_answer_says_media_is_clean():
    calls = [call(i) for i in range(48)] + [call(48, 503, "Call Limit Reached")]
    ramp = CapacityRamp("sip:100@trunk", 46, 1, 50, 5.0, 10.0)
    ramp.levels = [capacity.level(n, [call(i) for i in range(n)], [], on_time()) for n in (46, 47, 48)]
    ramp.levels.append(capacity.level(49, calls, [], on_time()))
    lv = ramp.levels[-1]
    assert lv.verdict == "fail" and lv.rejected == {"503": 1} and lv.media_clean and lv.setup_ratio == round(48 / 49, 4)
    assert lv.why == ["1 call: the trunk answers 503 Call Limit Reached"]
    capacity.conclude(ramp)
    assert ramp.ccc == 48
    assert ramp.answer == "CCC 48: from 49 calls the trunk answers 503 Call Limit Reached (1 of 49), media still clean"


def test_media_failures_are_named():
    bad = call(2, problems=["loss received 3.00% >= 1%"], lost=15, mos=3.9)
    lv = capacity.level(3, [call(0), call(1), bad], [], on_time())
    assert lv.verdict == "fail" and not lv.media_clean and lv.loss_pct == round(100 * 15 / 1500, 3)
    assert lv.loss_pct_max == 3.0
    assert lv.why == ["1 call answered failed a media limit (first: loss received 3.00% >= 1%)"]
    ramp = CapacityRamp("t", 3, 1, 3, 1.0, 1.0, levels=[lv])
    capacity.conclude(ramp)
    assert ramp.ccc is None and ramp.answer.startswith("no level passed: from 3 calls media fails: 1 call answered")


def test_a_late_generator_makes_media_failures_inconclusive():
    late = capacity.lateness([0.001] * 5, [0.002] * 50 + [0.25], 100.0)
    assert late.late and late.loop_lag_max_ms == 250.0
    lv = capacity.level(2, [call(0), call(1, problems=["max jitter received 45.0 ms >= 30 ms"])], [], late)
    assert lv.verdict == "inconclusive" and "the load generator ran late" in lv.why[-1]
    ramp = CapacityRamp("t", 1, 1, 4, 1.0, 1.0, levels=[capacity.level(1, [call(0)], [], on_time()), lv])
    capacity.conclude(ramp)
    assert ramp.ccc == 1 and ramp.answer.startswith("CCC 1; at 2 calls inconclusive: the load generator ran late")


def test_refusals_are_the_trunks_even_when_the_generator_is_late():
    late = capacity.lateness([0.3], [0.3], 100.0)
    lv = capacity.level(2, [call(0), call(1, 486, "Busy Here")], [], late)
    assert lv.verdict == "fail" and lv.rejected == {"486": 1}


def test_calls_without_a_final_response_are_errors():
    lv = capacity.level(3, [call(0)], ["no response to INVITE", "no response to INVITE"], on_time())
    assert lv.attempted == 3 and lv.errors == {"no response to INVITE": 2} and lv.verdict == "fail"
    assert lv.why == ["2 calls: no response to INVITE"]


def test_every_level_passed():
    ramp = CapacityRamp("t", 1, 1, 2, 1.0, 1.0, levels=[capacity.level(n, [call(i) for i in range(n)], [], on_time())
                                                        for n in (1, 2)])
    capacity.conclude(ramp)
    assert ramp.ccc == 2 and ramp.answer.startswith("CCC 2: every level up to 2 calls passed")


def test_live_figures():
    f = capacity.live(10, 6, 4, 5, 1, [10.0, 30.0], [4.0, 4.4])
    assert (f.active, f.setup_pct, f.pdd_p50_ms, f.mos_min, f.mos_median) == (1, 80.0, 20.0, 4.0, 4.2)
