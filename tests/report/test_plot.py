"""siptool plot: a real PNG with jitter, deltas and loss per stream; clear errors otherwise."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
from support import FIXTURES
from typer.testing import CliRunner

from siptool.analysis.session import analyze_file
from siptool.cli import get_app
from siptool.report.plot import lost_per_second, plot_call


def test_figure_has_three_panels_one_line_per_stream(tmp_path):
    series: dict = {}
    report = analyze_file(FIXTURES / "media_impaired.pcap", series=series)
    (call,) = report.calls
    fig = plot_call(call, series, tmp_path / "c.png")
    jitter, delta, loss = fig.axes[:3]
    assert len(jitter.get_lines()) - len([ln for ln in jitter.get_lines() if ln.get_linestyle() == ":"]) >= 2
    assert {t.get_text() for t in jitter.get_legend().get_texts()} == {
        f"{s.src} -> {s.dst} PCMU, MOS {s.mos:.2f}" for s in call.streams}
    # the loss panel adds up to what the relay dropped on the caller's return path
    dropped = json.loads((FIXTURES / "media_impaired.relay.json").read_text())["summary"]["dropped"]
    assert sum(p.get_height() for p in loss.patches) == dropped
    image = matplotlib.image.imread(tmp_path / "c.png")
    assert image.shape[0] > 500 and image.shape[1] > 800


def test_lost_per_second_counts_gaps_not_duplicates():
    seq = np.array([1, 2, 4, 4, 5, 9, 10])
    times = np.array([0.1, 0.2, 0.3, 0.35, 1.2, 1.5, 2.1])
    bins, lost = lost_per_second(times, seq, 0.0, 2.1)
    assert list(bins) == [0.0, 1.0, 2.0] and list(lost) == [1, 3, 0]


def test_cli(tmp_path):
    runner, app = CliRunner(), get_app()
    out = runner.invoke(app, ["plot", str(FIXTURES / "media_ok.pcap"), "-o", str(tmp_path / "ok.png")])
    assert out.exit_code == 0, out.stderr
    assert (tmp_path / "ok.png").read_bytes()[:4] == b"\x89PNG"
    out = runner.invoke(app, ["plot", str(FIXTURES / "call_ok.pcap"), "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "0 calls with media" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "call_ok.pcap"), "--call", "1", "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "has no RTP" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "pick one with --call" in out.stderr
    # --call is the number analyze prints (call 4 is the one-way call), or a whole Call-ID
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--call", "4", "-o", str(tmp_path / "o.png")])
    assert out.exit_code == 0 and "(call 4, 1 stream)" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--call", "1-media_oneway@127.0.0.1", "-o",
                              str(tmp_path / "o.png")])
    assert out.exit_code == 0 and "(call 4, 1 stream)" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--call", "oneway", "-o", str(tmp_path / "o.png")])
    assert out.exit_code == 2 and "did you mean call 4" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--filter", "silent", "--filter", "answered",
                              "-o", str(tmp_path / "o.png")])
    assert out.exit_code == 2 and "pick one with --call" in out.stderr  # two answered calls to "silent"
