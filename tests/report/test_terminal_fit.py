"""The analyze tables on narrow and wide terminals: no line wider than the terminal, nothing cut
(no ellipsis), and every number of every call and stream present whole, at every width."""

from __future__ import annotations

import re

import pytest
from rich.console import Console
from support import FIXTURES, SHARED

from siptool.drivers.files import analyze_file
from siptool.report.fit import Column, fit_table
from siptool.report.terminal import render

WIDTHS = (60, 80, 100, 132, 200)
CAPTURES = sorted(FIXTURES.glob("*.pcap"))
if SHARED.is_dir():  # the public corpus, where present: long IPv6 addresses, many calls, odd statuses
    CAPTURES += [SHARED / n for n in ("heplify_sip_ipv6_udp.pcap", "wsc_SIP_DTMF2.cap",
                                      "sipnab_sipp-branch-scenario.pcapng") if (SHARED / n).exists()]


def _rendered(report, width: int) -> str:
    console = Console(width=width, record=True, no_color=True, force_terminal=False, file=open("/dev/null", "w"))
    render(report, console)
    return console.export_text()


def _numbers(report) -> set[str]:
    """The figures a reader needs whole: packet counts, loss, jitter, MOS, status codes, call numbers."""
    found = set()
    for call in [c for c in report.calls if c.kind == "call"]:  # other dialogs are summed by method
        found.add(str(call.number))
        if call.final_status:
            found.add(str(call.final_status))
    for s in [s for c in report.calls for s in c.streams] + list(report.streams):
        found |= {f"{s.packets:,}", f"{s.loss_pct:.1f}%", f"{s.max_delta_ms:.1f}",
                  f"{s.mean_jitter_ms:.2f}/{s.max_jitter_ms:.2f}"}
        if s.mos is not None:
            found.add(f"{s.mos:.2f}")
    z = report.sizing
    if z is not None:  # the sizing figures
        found |= {f"{z.peak_channels:,}", f"{z.peak_answered:,}", f"{z.cps_p95:g}"}
        found |= {f"{v:,.2f}" for v in (z.carried_erlangs, z.offered_erlangs) if v is not None}
        found |= {f"{b.attempts:,}" for b in z.bands}
    return found


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_tables_fit_every_width_and_keep_every_number(capture):
    report = analyze_file(capture)
    for width in WIDTHS:
        text = _rendered(report, width)
        lines = text.splitlines()
        too_wide = [ln for ln in lines if len(ln.rstrip()) > width]
        assert not too_wide, f"{capture.name} at {width} columns: {too_wide[0]!r}"
        assert "…" not in text, f"{capture.name} at {width} columns cuts a cell"
        tokens = {t.rstrip(",") for t in re.split(r"[\s│┃]+", text)}
        missing = sorted(n for n in _numbers(report) if n not in tokens)
        assert not missing, f"{capture.name} at {width} columns lost {missing[:5]}"


def test_minor_columns_move_before_anything_folds():
    columns = [Column("#", "right", priority=9), Column("path", fold=8, priority=9),
               Column("n", "right", priority=8), Column("notes", fold=8, priority=1)]
    rows = [["1", "10.0.0.1:5060 -> 10.0.0.2:5060", "1,234", "no SDP, 2 dup"]]
    console = Console(width=50, record=True, file=open("/dev/null", "w"))
    console.print(fit_table(columns, rows, 50, host=1))
    lines = console.export_text().splitlines()
    first = next(ln for ln in lines if ln.lstrip().startswith("1 "))
    assert "10.0.0.1:5060 -> 10.0.0.2:5060" in first and "1,234" in first  # the path stays whole
    assert any("notes no SDP, 2 dup" in ln for ln in lines)  # the minor column went below


def test_numbers_move_rather_than_shrink_when_space_runs_out():
    columns = [Column("#", "right", priority=9), Column("path", fold=8, priority=9),
               Column("packets", "right", priority=3), Column("MOS", "right", priority=8)]
    rows = [["1", "a-long-host.example.com -> b.example.com", "1,234,567", "4.41"]]
    console = Console(width=32, record=True, file=open("/dev/null", "w"))
    console.print(fit_table(columns, rows, 32, host=1))
    text = console.export_text()
    assert "1,234,567" in text.split() or "packets 1,234,567" in " ".join(text.split())
    assert "4.41" in text.split() and "…" not in text
    assert all(len(ln.rstrip()) <= 32 for ln in text.splitlines())


@pytest.mark.parametrize("capture", sorted(FIXTURES.glob("speech_*.pcap")), ids=lambda p: p.name)
def test_conversation_table_fits_and_keeps_its_figures(capture):
    """analyze --content: the conversation figures (first speech, response gaps, levels) whole at every width."""
    from siptool.analysis.content import ContentOptions
    from siptool.report.terminal import _gaps, _level, _s

    report = analyze_file(capture, content=ContentOptions())
    figures = set()
    for call in report.calls:
        v = call.conversation
        figures |= {_s(v.callee_first_speech_ms), f"{_level(call, 'caller')}/{_level(call, 'callee')}"}
        if v.callee_responses:
            figures.add(_gaps(v.callee_responses).split()[0])
    for width in WIDTHS:
        text = _rendered(report, width)
        assert "Conversation" in text and "…" not in text
        assert all(len(ln.rstrip()) <= width for ln in text.splitlines())
        tokens = {t.rstrip(",") for t in re.split(r"[\s│┃]+", text)}
        assert figures <= tokens, (width, figures - tokens)
