"""siptool ladder: arrows in the right direction, labels, retransmissions, bands; SVG/HTML/PNG/Mermaid."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from support import FIXTURES
from typer.testing import CliRunner

from siptool.cli import get_app
from siptool.drivers.files import analyze_file
from siptool.report.ladder import mermaid, terminal
from siptool.report.ladder_layout import build, clock, delta_text
from siptool.report.ladder_svg import html, svg
from siptool.report.model import Call, LadderStep
from siptool.status import ExitStatus

SVG_NS = "{http://www.w3.org/2000/svg}"


def one_call(name):
    (call,) = [c for c in analyze_file(FIXTURES / name).calls if c.kind == "call"]
    return call


def test_arrows_follow_the_messages():
    call = one_call("cancel_487.pcap")
    lad = build(call)
    assert lad.hosts == ["127.0.0.1:5060", "127.0.0.2:5060"]
    assert [(r.label, r.src, r.dst) for r in lad.rows] == [
        ("INVITE", 0, 1), ("100 Trying", 1, 0), ("180 Ringing", 1, 0), ("CANCEL", 0, 1),
        ("200 OK (CANCEL)", 1, 0), ("487 Request Terminated", 1, 0), ("ACK", 0, 1)]
    lines = [t.plain for t in terminal(lad, 100)]
    body = lines[3:]
    assert "▶" in body[0] and body[0].index("│") < body[0].index("INVITE") < body[0].index("▶")
    assert "◀" in body[1] and body[1].index("◀") < body[1].index("100 Trying")
    assert lines[0] == f"call {call.number}: caller -> alice  487 Request Terminated"


def test_sdp_and_media_bands():
    call = one_call("media_ok.pcap")
    lad = build(call)
    invite = lad.rows[0]
    assert invite.sdp and invite.note == "SDP PCMU"
    assert len(lad.bands) == 2 and {(b.src, b.dst) for b in lad.bands} == {(0, 1), (1, 0)}
    assert all("RTP PCMU 200 pkts" in b.label and not b.bad for b in lad.bands)
    impaired = build(one_call("media_impaired.pcap"))
    assert impaired.hosts[-1] == "127.0.0.3:40000"  # the relay only carries media: its own column
    assert [b.bad for b in impaired.bands] == [False, True]  # 2 % loss back to the caller


def test_band_colour_is_the_analysis_verdict():
    """A band is red when the analysis judged its stream past the thresholds it was given (the stream's
    past_limits, beside its media.loss finding): the renderer does not judge again with its own limits."""
    from siptool.analysis.thresholds import Thresholds

    path = FIXTURES / "media_impaired.pcap"
    for limits, red in ((Thresholds(), [False, True]), (Thresholds.from_limits(loss_pct=5.0), [False, False]),
                        (Thresholds.from_limits(jitter_ms=0.02), [True, True])):
        (call,) = [c for c in analyze_file(path, thresholds=limits).calls if c.kind == "call"]
        assert [b.bad for b in build(call).bands] == red == [s.past_limits for s in call.streams]
        verdicts = [f for f in call.findings if f.code in ("media.loss", "media.jitter", "media.mos")]
        assert bool(verdicts) == any(red)


def test_retransmissions_are_marked():
    steps = [LadderStep(frame=i + 1, time=100 + 0.5 * i, src="10.0.0.1:5060", dst="10.0.0.2:5060",
                        transport="UDP", label="INVITE", method="INVITE", status=None, cseq=1,
                        retransmission=i > 0) for i in range(3)]
    call = Call(call_id="r1", kind="call", method="INVITE", ladder=steps)
    lad = build(call)
    lines = [t.plain for t in terminal(lad, 100)][3:]
    assert ["(retrans)" in line for line in lines] == [False, True, True]
    assert mermaid(lad).count("-->>") == 2
    root = ET.fromstring(svg(lad))
    dashed = [el for el in root.iter(f"{SVG_NS}line") if el.get("stroke-dasharray") == "6 4"]
    assert len(dashed) == 2


def test_svg_is_well_formed_with_one_arrow_per_message_and_escapes_text():
    call = one_call("auth_401.pcap")
    call.call_id = "x<&>\"'y"  # hostile Call-ID must not break the XML
    lad = build(call)
    root = ET.fromstring(svg(lad))
    messages = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "msg"]
    assert len(messages) == len(call.ladder) == 10
    page = html([(call, lad)], "auth_401.pcap")
    assert page.count("<svg") == 1 and "x&lt;&amp;&gt;" in page and "x<&>" not in page


def test_mermaid_syntax():
    text = mermaid(build(one_call("busy_486.pcap")))
    lines = text.splitlines()
    assert lines[0] == "sequenceDiagram"
    assert "    participant H0 as 127.0.0.1:5060" in lines  # colons kept (they were spaces)
    assert "    title call 1: caller -#gt; busy 486 Busy Here" in lines  # "->" as Mermaid entity codes
    assert "    H1->>H0: 486 Busy Here" in lines


def test_cli_filters_and_writes(tmp_path):
    runner, app = CliRunner(), get_app()
    example = str(FIXTURES / "example.pcap")
    out = runner.invoke(app, ["ladder", example, "--filter", "busy", "--no-color"])
    assert out.exit_code == 0 and "486 Busy Here" in out.stdout and "media_ok" not in out.stdout
    out = runner.invoke(app, ["ladder", example, "--call", "nosuchcall"])
    assert out.exit_code == 2 and "no call has Call-ID 'nosuchcall'" in out.stderr
    out = runner.invoke(app, ["ladder", example, "--call", "4", "--no-color"])  # a number is the call's number
    assert out.exit_code == 0 and out.stdout.count("Call-ID ") == 1 and "1-media_oneway@" in out.stdout
    svg_file, html_file, png_file = tmp_path / "l.svg", tmp_path / "l.html", tmp_path / "l.png"
    out = runner.invoke(app, ["ladder", example, "--filter", "impaired", "--svg", str(svg_file), "--html",
                              str(html_file), "--png", str(png_file)])
    assert out.exit_code == 0, out.stderr
    ET.parse(svg_file)
    assert "Media streams" in html_file.read_text() and png_file.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = runner.invoke(app, ["ladder", example, "--mermaid"])
    assert out.exit_code == 0 and out.stdout.count("sequenceDiagram") == 7
    out = runner.invoke(app, ["ladder", str(tmp_path / "missing.pcap")])
    assert out.exit_code == 2 and "\n" == out.stderr[-1] and out.stderr.count("\n") == 1


def test_mermaid_escapes_its_syntax_characters():
    from siptool.report.ladder import _safe

    assert _safe("a;b#c<d>e%f{g}\nh") == "a#59;b#35;c#lt;d#gt;e#37;f#123;g#125; h"
    assert _safe("Retry-After: 30") == "Retry-After: 30"


def _calls_to_draw():
    from support import SHARED

    paths = sorted(FIXTURES.glob("*.pcap"))  # every committed fixture: enough calls without ../shared
    paths += sorted(SHARED.glob("heplify*")) + sorted(SHARED.glob("wsc_DTMF*")) + sorted(SHARED.glob("*ipv6*"))
    for path in paths:
        try:
            report = analyze_file(path)
        except Exception:  # a capture this reader refuses is not this test's business
            continue
        yield from report.calls


NUMBER = __import__("re").compile(r"\d+(?:\.\d+)?%?")


@pytest.mark.parametrize("width", [40, 60, 80, 100, 132])
def test_terminal_fits_the_width_and_keeps_every_number(width):
    """Every line within `width`; each message's time, delta, frame number and transport on one line;
    each number of a label, a band (packets, lost, loss %, MOS, jitter) and a host's port whole on
    some line (folded, never cut)."""
    drawn = 0
    for call in _calls_to_draw():
        lad = build(call)
        lines = [t.plain for t in terminal(lad, width)]
        assert all(len(line) <= width for line in lines), max(lines, key=len)
        for row in lad.rows:
            assert any(clock(row.time) in ln and delta_text(row.delta) in ln and f"#{row.frame} {row.transport}" in ln
                       for ln in lines), (row, width)
        found = {m for ln in lines for m in NUMBER.findall(ln)}
        for text in [r.text for r in lad.rows] + [b.label for b in lad.bands]:
            assert set(NUMBER.findall(text)) <= found, (text, width)
        for host in lad.hosts:
            port = host.rsplit(":", 1)[1]
            assert any(f":{port}" in ln for ln in lines), (host, width)
        drawn += 1
    assert drawn >= 20


def test_terminal_shows_transport_and_frames():
    lad = build(analyze_file(FIXTURES / "call_tcp.pcap").calls[0])
    body = [t.plain for t in terminal(lad, 80)][3:]
    assert body and all(" TCP " in line for line in body[:len(lad.rows)])
    assert [int(line.split("#")[1].split()[0]) for line in body[:len(lad.rows)]] == [r.frame for r in lad.rows]


def test_bands_carry_the_streams_figures():
    call = one_call("media_impaired.pcap")
    labels = [b.label for b in build(call).bands]
    for s, label in zip(call.streams, labels):
        assert f"{s.packets} pkts, {s.lost} lost ({s.loss_pct:.1f}%)" in label


@pytest.mark.parametrize("option", ["--svg", "--html", "--png"])
def test_unwritable_output_is_bad_input_before_any_work(tmp_path, option):
    runner, app = CliRunner(), get_app()
    # the capture does not exist either: the output is checked first, so that is what is reported
    out = runner.invoke(app, ["ladder", str(tmp_path / "missing.pcap"), option, "/nonexistent/x.out"])
    assert out.exit_code == ExitStatus.BAD_INPUT and out.stderr.count("\n") == 1
    assert f"{option} /nonexistent/x.out: no such folder /nonexistent" in out.stderr
    out = runner.invoke(app, ["ladder", str(FIXTURES / "call_ok.pcap"), option, str(tmp_path)])
    assert out.exit_code == ExitStatus.BAD_INPUT and "is a folder" in out.stderr
    if option == "--png":
        out = runner.invoke(app, ["ladder", str(FIXTURES / "call_ok.pcap"), option, str(tmp_path / "x.jpg")])
        assert out.exit_code == ExitStatus.BAD_INPUT and "ending in .png" in out.stderr


def test_png_is_the_svg_picture(tmp_path):
    """The PNG draws the same geometry as the SVG: the same size in pixels at 100 dpi."""
    import matplotlib.image

    from siptool.report.ladder_picture import picture
    from siptool.report.ladder_png import png

    lad = build(one_call("media_impaired.pcap"))
    pic = picture(lad)
    root = ET.fromstring(svg(lad))
    assert (int(root.get("width")), int(root.get("height"))) == (pic.width, pic.height)
    image = matplotlib.image.imread(png(lad, tmp_path / "l.png"))
    assert image.shape[:2] == (pic.height, pic.width)
