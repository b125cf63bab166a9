"""A capacity ramp for people and machines: a line per level as it ends, the levels as a table, the
answer (report.capacity_model.CapacityRamp, filled by analysis/capacity.py), and its JSON
(`siptool.ramp/1`). Renderers: they compute nothing."""

from __future__ import annotations

from .capacity_model import CapacityLevel, CapacityRamp
from .jsonout import _clean

STYLE = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
HEAD = "calls   setup PDD p50/p95 MOS p5 loss % 1-way 486/503/480 lag ms verdict"


def _figure(v, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def level_line(lv: CapacityLevel) -> str:
    """One level in the table's columns (80 columns: PDD in ms; `lag ms`, the generator's lateness at
    worst, calls sent late or its loop behind)."""
    pdd = f"{_figure(lv.pdd_p50_ms, '{:.0f}')}/{_figure(lv.pdd_p95_ms, '{:.0f}')}"
    codes = "/".join(str(lv.rejected.get(c, 0)) for c in ("486", "503", "480"))
    late = max(lv.lateness.start_max_ms, lv.lateness.loop_lag_max_ms)
    style = STYLE.get(lv.verdict, "")
    return (f"{lv.calls:5d} {100 * lv.setup_ratio:6.1f}% {pdd:>11} {_figure(lv.mos_p5):>6} "
            f"{_figure(lv.loss_pct):>6} {lv.one_way:5d} {codes:>11} {late:6.0f} [{style}]{lv.verdict}[/]")


def render(out, ramp: CapacityRamp, header: bool = True) -> None:
    """The table of levels (unless shown line by line already), what broke, and the answer."""
    if header:
        out.print(f"capacity ramp {ramp.start}:{ramp.step}:{ramp.max} to {ramp.target}, {ramp.cps:g} calls/s, "
                  f"each level held {ramp.hold_s:g} s")
        out.print(HEAD)
        for lv in ramp.levels:
            out.print(level_line(lv))
    stop = next((lv for lv in ramp.levels if lv.verdict != "pass"), None)
    if stop is not None:
        out.print(f"at {stop.calls} calls:")
        for why in stop.why:
            out.print(f"  - {why}")
    late = [lv for lv in ramp.levels if lv.lateness.late]
    if late:
        worst = max(late, key=lambda lv: lv.lateness.loop_lag_max_ms)
        out.print(f"[yellow]the load generator ran late at {len(late)} level(s) (worst: loop lag "
                  f"{worst.lateness.loop_lag_max_ms:.0f} ms at {worst.calls} calls)[/]")
    style = "green" if stop is None else "bold"
    out.print(f"[{style}]{ramp.answer}[/]")


def ramp_json(ramp: CapacityRamp) -> dict:
    d = _clean(ramp)
    return {"schema": d.pop("schema"), **d}
