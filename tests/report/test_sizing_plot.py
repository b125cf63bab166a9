"""siptool plot --sizing: concurrency and failures over time, drawn from the report's sizing series."""

from __future__ import annotations

import matplotlib.image
from support import FIXTURES
from typer.testing import CliRunner

from siptool.cli import get_app
from siptool.drivers.files import analyze_file
from siptool.report.sizing_plot import plot_sizing
from siptool.status import ExitStatus


def test_panels_show_the_series(tmp_path):
    report = analyze_file(FIXTURES / "calls_mixed.pcap")
    s = report.sizing
    fig = plot_sizing(s, tmp_path / "s.png", "calls_mixed")
    held, calls = fig.axes[:2]
    lines = {ln.get_gid(): ln for ln in held.get_lines() if ln.get_gid()}
    assert list(lines["channels"].get_ydata()[:-1]) == s.series.channels
    assert list(lines["answered"].get_ydata()[:-1]) == s.series.answered
    assert max(lines["channels"].get_ydata()) == s.peak_channels == 4
    legend = {t.get_text() for t in held.get_legend().get_texts()}
    assert f"Erlang-B {s.channels} channels at 1 % blocking" in legend
    assert {"503s begin with 3 held", "486s begin with 2 held"} <= legend
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in calls.containers}
    assert bars["attempts (INVITE sessions)"] == s.series.attempts and sum(s.series.attempts) == 8
    assert bars["503 (1)"] == s.series.failures["503"] and bars["486 (2)"] == s.series.failures["486"]
    image = matplotlib.image.imread(tmp_path / "s.png")
    assert image.shape[0] > 500 and image.shape[1] > 800


def test_cli_sizing(tmp_path):
    out = tmp_path / "sizing.png"
    run = CliRunner().invoke(get_app(), ["plot", str(FIXTURES / "calls_mixed.pcap"), "--sizing", "-o", str(out)])
    assert run.exit_code == 0, run.output
    assert out.stat().st_size > 10_000 and "8 INVITE sessions" in run.output
    # --call names one call, --sizing all of them: one line, exit 2
    run = CliRunner().invoke(get_app(), ["plot", str(FIXTURES / "calls_mixed.pcap"), "--sizing", "--call", "2",
                                         "-o", str(out)])
    assert run.exit_code == ExitStatus.BAD_INPUT
    # only REGISTER/OPTIONS or nothing left by a filter: nothing to size
    run = CliRunner().invoke(get_app(), ["plot", str(FIXTURES / "call_ok.pcap"), "--sizing", "--filter", "486",
                                         "-o", str(out)])
    assert run.exit_code == ExitStatus.BAD_INPUT and "no call matches" in run.output
