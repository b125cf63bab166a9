"""siptool plot: a real PNG with jitter, deltas and loss per stream; clear errors otherwise."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import FIXTURES, SHARED
from typer.testing import CliRunner

from siptool.cli import get_app
from siptool.drivers.files import analyze_file
from siptool.report.model import Finding
from siptool.report.plot import SEVERITY_COLORS, lost_per_second, plot_call
from siptool.status import ExitStatus


def loss_bars(fig, call):
    """Per stream, the heights of its bars in the loss panel (drawn in stream order, one per second)."""
    loss = fig.axes[2]
    containers = loss.containers
    assert len(containers) == len(call.streams)
    return [[p.get_height() for p in c.patches] for c in containers]


def test_figure_has_three_panels_one_line_per_stream(tmp_path):
    series: dict = {}
    report = analyze_file(FIXTURES / "media_impaired.pcap", series=series)
    (call,) = report.calls
    fig = plot_call(call, series, tmp_path / "c.png")
    jitter, delta, loss = fig.axes[:3]
    assert len(jitter.get_lines()) - len([ln for ln in jitter.get_lines() if ln.get_linestyle() == ":"]) >= 2
    assert {t.get_text() for t in jitter.get_legend().get_texts()} == {
        f"{s.src} -> {s.dst} PCMU, MOS {s.mos:.2f}" for s in call.streams}
    # The loss panel says what analyze says (tshark's expected - received, duplicates included):
    # on the impaired leg the relay dropped 6 and duplicated 2.
    relay = json.loads((FIXTURES / "media_impaired.relay.json").read_text())["summary"]
    bars = loss_bars(fig, call)
    assert [sum(b) for b in bars] == [s.lost for s in call.streams]
    assert max(s.lost for s in call.streams) == relay["dropped"] - relay["duplicated"] == 4
    assert {t.get_text() for t in loss.get_legend().get_texts()} == {"0 lost", "4 lost (2 dup)"}
    image = matplotlib.image.imread(tmp_path / "c.png")
    assert image.shape[0] > 500 and image.shape[1] > 800


def test_arrival_deltas_are_points_not_a_line(tmp_path):
    """A gap is one high point at the packet after it, not a ramp drawn from the packet before."""
    series: dict = {}
    (call,) = analyze_file(FIXTURES / "media_impaired.pcap", series=series).calls
    fig = plot_call(call, series, tmp_path / "c.png")
    drawn = [ln for ln in fig.axes[1].get_lines() if ln.get_gid() == "stream"]
    assert len(drawn) == len(call.streams)
    assert all(ln.get_linestyle() == "None" and ln.get_marker() == "." for ln in drawn)
    jitter = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "stream"]
    assert len(jitter) == len(call.streams) and all(ln.get_drawstyle() == "steps-post" for ln in jitter)


def test_empty_panel_starts_at_zero(tmp_path):
    series: dict = {}
    (call,) = analyze_file(FIXTURES / "media_ok.pcap", series=series).calls
    fig = plot_call(call, series, tmp_path / "c.png")
    assert fig.axes[2].get_ylim() == (0, 1)  # no loss: 0..1, not -0.04..0.04
    assert fig.axes[0].get_ylim()[0] == 0 and fig.axes[1].get_ylim()[0] == 0


def test_findings_are_marked_where_their_frames_are(tmp_path):
    """A finding's line is at the time of the packets (or SIP message) its frames name, not at the
    stream's start."""
    series: dict = {}
    (call,) = analyze_file(FIXTURES / "media_impaired.pcap", series=series).calls
    s = call.streams[1]
    m = series[(s.src, s.dst, s.ssrc)]
    t0 = call.ladder[0].time
    packets = [int(m.frames[100]), int(m.frames[150])]
    bye = next(step for step in call.ladder if step.label == "BYE")
    call.findings = [Finding(code="test.packets", severity="critical", title="t", explanation="e", frames=packets),
                     Finding(code="test.sip", severity="info", title="t", explanation="e", frames=[bye.frame, 10**9])]
    fig = plot_call(call, series, tmp_path / "c.png")

    def marks(color):
        return sorted({round(ln.get_xdata()[0], 6) for ln in fig.axes[0].get_lines() if ln.get_color() == color})

    assert marks(SEVERITY_COLORS["critical"]) == [round(m.start + m.times[i] - t0, 6) for i in (100, 150)]
    assert marks(SEVERITY_COLORS["info"]) == [round(bye.time - t0, 6)]
    assert {t.get_text() for t in fig.axes[2].texts} >= {"test.packets", "test.sip"}


def test_lost_per_second_is_expected_minus_received():
    seq = np.array([1, 2, 4, 4, 5, 9, 10])  # 4 missing, 1 duplicate: tshark says 3 lost
    times = np.array([0.1, 0.2, 0.3, 0.35, 1.2, 1.5, 2.1])
    bins, lost = lost_per_second(times, seq, 0.0, 2.1)
    assert list(bins) == [0.0, 1.0, 2.0] and list(lost) == [0, 3, 0]
    # late packets: the last one below the highest; tshark's expected uses the last sequence
    _, lost = lost_per_second(np.array([0.1, 0.2, 1.5, 1.6]), np.array([1, 2, 5, 3]), 0.0, 1.6)
    assert list(lost) == [0, -1] and lost.sum() == (3 - 1 + 1) - 4


@given(st.lists(st.integers(0, 300), min_size=2, max_size=60))
def test_lost_per_second_adds_up_to_the_streams_lost(seq):
    seq = np.array(seq)
    times = np.linspace(0.0, 7.3, len(seq))
    _, lost = lost_per_second(times, seq, 0.0, times[-1])
    assert lost.sum() == (seq[-1] - seq[0] + 1) - len(seq)


CAPTURES = [FIXTURES / n for n in ("media_impaired.pcap", "example.pcap", "media_nat_sdp.pcap")] + [
    SHARED / n for n in ("rtpproxy_dtmf.pcap", "rtpproxy_weird_o.pcap", "wsc_SIP_DTMF2.cap",
                         "rtpproxy_rtcp_o.pcap", "wsc_SIP_CALL_RTP_G711.pcap")]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_loss_bins_sum_to_analyzes_lost(path):
    """On every stream (duplicates, a 2106-packet loss, wraps): the bins add up to Stream.lost, the
    figure analyze prints and tshark's rtp,streams gives."""
    if not path.exists():
        pytest.skip(f"{path} is not here")
    series: dict = {}
    report = analyze_file(path, series=series)
    streams = [s for c in report.calls for s in c.streams] + report.streams
    assert streams
    for s in streams:
        m = series[(s.src, s.dst, s.ssrc)]
        t = m.start + m.times
        _, lost = lost_per_second(t, m.sequence, t[0], t[-1])
        assert lost.sum() == s.lost, (s.src, s.dst, s.ssrc)


def test_cli(tmp_path):
    runner, app = CliRunner(), get_app()
    out = runner.invoke(app, ["plot", str(FIXTURES / "media_ok.pcap"), "-o", str(tmp_path / "ok.png")])
    assert out.exit_code == 0, out.stderr
    assert (tmp_path / "ok.png").read_bytes()[:4] == b"\x89PNG"
    out = runner.invoke(app, ["plot", str(FIXTURES / "call_ok.pcap"), "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "no call in this capture has media" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "call_ok.pcap"), "--call", "1", "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "has no RTP" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "-o", str(tmp_path / "x.png")])
    assert out.exit_code == 2 and "pick one with --call" in out.stderr
    # --call is the number analyze prints (call 4 is the one-way call), or a whole Call-ID
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--call", "4", "-o", str(tmp_path / "o.png")])
    assert out.exit_code == 0 and "(call 4, Call-ID 1-media_oneway@127.0.0.1, 1 stream)" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--call", "1-media_oneway@127.0.0.1", "-o",
                              str(tmp_path / "o.png")])
    assert out.exit_code == 0 and "(call 4, Call-ID 1-media_oneway@127.0.0.1, 1 stream)" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--call", "oneway", "-o", str(tmp_path / "o.png")])
    assert out.exit_code == 2 and "did you mean call 4" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "example.pcap"), "--filter", "silent", "--filter", "answered",
                              "-o", str(tmp_path / "o.png")])
    assert out.exit_code == 2 and "pick one with --call" in out.stderr  # two answered calls to "silent"


def test_unwritable_output_is_bad_input_before_any_work(tmp_path):
    runner, app = CliRunner(), get_app()
    out = runner.invoke(app, ["plot", str(tmp_path / "missing.pcap"), "-o", "/nonexistent/x.png"])
    assert out.exit_code == ExitStatus.BAD_INPUT and out.stderr.count("\n") == 1
    assert "-o /nonexistent/x.png: no such folder /nonexistent" in out.stderr
    out = runner.invoke(app, ["plot", str(FIXTURES / "media_ok.pcap"), "-o", str(tmp_path / "x.svg")])
    assert out.exit_code == ExitStatus.BAD_INPUT and "ending in .png" in out.stderr
    assert not (tmp_path / "x.svg").exists()


def test_speech_panel_shows_each_streams_talk_spurts(tmp_path):
    """plot --content: a fourth panel, one row per stream, its talk spurts as bars at their times."""
    from siptool.analysis.content import ContentOptions
    from siptool.drivers.files import analyze_file
    from siptool.report.plot import plot_call

    series: dict = {}
    report = analyze_file(FIXTURES / "speech_faults.pcap", series=series, content=ContentOptions())
    call = report.calls[0]
    fig = plot_call(call, series, tmp_path / "p.png")
    assert len(fig.axes) == 4 and (tmp_path / "p.png").stat().st_size > 10_000
    t0 = call.ladder[0].time
    bars = [c for c in fig.axes[3].collections if c.get_gid() == "speech"]
    assert len(bars) == len(call.streams)
    for s, bar in zip(call.streams, bars):
        got = [(round(e.x0, 3), round(e.x1, 3)) for e in (p.get_extents() for p in bar.get_paths())]
        want = [(round(x.start - t0, 3), round(x.end - t0, 3)) for x in s.content.talk_spurts]
        assert got == want
    assert [t.get_text().split(" (")[0] for t in fig.axes[3].get_yticklabels()] == [s.content.side for s in call.streams]
