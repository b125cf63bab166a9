"""The sizing section of `analyze` in the terminal: the report's Sizing as two tables (figures, and
failures against concurrency), fitted to the width. Everything shown is in the model."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from .fit import Column, fit_table
from .model import Report, Sizing
from .clock import clock


def _at(value: int | float, when: float | None) -> str:
    return f"{value:,} at {clock(when)[:8]}" if when is not None else f"{value:,}"


def _window(s: Sizing) -> str:
    span = (s.window_end or 0) - (s.window_start or 0)
    if s.window == "busy hour":
        return f"busy hour {clock(s.window_start)[:8]} to {clock(s.window_end)[:8]} UTC"
    return f"whole capture, {span:,.1f} s: shorter than an hour"


def figures_table(s: Sizing) -> Table:
    table = Table(title=f"Sizing ({_window(s)})", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("peak channels held (a call holds one from INVITE to release)", _at(s.peak_channels, s.peak_channels_time)),
        ("peak answered calls up", _at(s.peak_answered, s.peak_answered_time)),
        ("calls per second: peak / p95 over 1 s windows", f"{_at(s.cps_peak, s.cps_peak_time)} / {s.cps_p95:g}"),
    ]
    if s.carried_erlangs is not None:
        rows.append(("traffic carried in the window (mean channels held)", f"{s.carried_erlangs:,.2f} E"))
    if s.offered_erlangs is not None:
        refused = f" ({s.window_refused:,} of {s.window_attempts:,} attempts refused 503, added back)" \
            if s.window_refused else ""
        rows.append(("traffic offered" + refused, f"{s.offered_erlangs:,.2f} E"))
    if s.channels is not None:
        rows.append((f"Erlang-B channels at {s.gos * 100:g} % blocking", f"{s.channels:,}"))
        rows.append((f"  with {s.headroom_pct:g} % traffic growth (headroom)", f"{s.channels_with_headroom:,}"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def bands_table(s: Sizing, width: int) -> Table | None:
    """Attempts and their 503/486/480 by the channels already held when each INVITE came."""
    codes = sorted({c for b in s.bands for c in b.failures}, key=lambda c: (c != "503", c))
    if not codes:
        return None
    onsets = {str(o.status): o.level for o in s.onsets}
    columns = [Column("held", "right", priority=9, label="channels held"),
               Column("attempts", "right", priority=8)]
    columns += [Column(code, "right", priority=7) for code in codes]
    rows = []
    for b in s.bands:
        row = [f"{b.low:,}" if b.low == b.high else f"{b.low:,}-{b.high:,}", f"{b.attempts:,}"]
        for code in codes:
            n = b.failures.get(code, 0)
            cell = Text(f"{n:,} {b.failure_pct[code]:.0f}%" if n else "-",
                        style="red" if n and b.low >= onsets.get(code, b.low + 1) else "")
            row.append(cell)
        rows.append(row)
    return fit_table(columns, rows, width, host=0)


def sizing_view(report: Report, width: int) -> list:
    """The tables to print, none when the capture has no INVITE session."""
    s = report.sizing
    if s is None:
        return []
    bands = bands_table(s, width)
    if bands is None:
        return [figures_table(s)]
    title = Text("Failures against concurrency (channels already held when each INVITE came)", style="italic")
    return [figures_table(s), title, bands]
