"""The ladder pictures as a browser shows them: headless Chromium renders each SVG and HTML page, and
the rendered layout must have no text on text, no text under an arrowhead, no text off the picture
and no console errors. Screenshots go to $SIPTOOL_SCREENSHOTS when set (to look at), else tmp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from interop.chromium import Chromium, layout_problems
from support import FIXTURES, SHARED, require_binary
from typer.testing import CliRunner

from siptool.cli import get_app
from siptool.report.ladder_layout import build
from siptool.report.ladder_svg import html, svg
from siptool.report.model import Call, LadderStep, Stream

pytestmark = pytest.mark.interop

FIXTURE_CAPTURES = ["example.pcap", "media_oneway.pcap", "media_impaired.pcap", "calls_mixed.pcap",
                    "call_tcp.pcap", "cancel_487.pcap", "auth_401.pcap", "media_nat_sdp.pcap"]
# From ../shared/pcaps: 4 and 5 hosts with 108-character labels, retransmissions (heplify erspan),
# TCP and UDP in one exchange, IPv6 columns, 4 hosts of SIP INFO, RTP bands.
SHARED_CAPTURES = ["heplify_erspan_sip_ipv4_udp.pcapng", "heplify_sip_ipv4_tcp_retrans.pcap",
                   "heplify_sip_ipv6_udp.pcap", "wsc_DTMFsipinfo.pcap", "sipnab_rtp-protocol.pcap",
                   "voipshark_SIP-RTP-Normal_Call_two_parties.pcap", "sipnab_sip-proxy.pcap"]


@pytest.fixture(scope="module")
def browser():
    chromium = Chromium(require_binary("chromium"))
    yield chromium
    chromium.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    where = Path(os.environ.get("SIPTOOL_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def check(browser, page: Path, shots: Path, pictures: int, marks: int) -> None:
    """Render `page`, save its screenshot, and fail on any layout problem. `pictures` and `marks`
    (arrowheads: one per message and band) say what the page must hold, so an empty render fails."""
    rendered = browser.render(page)
    (shots / f"{page.stem}_{page.suffix[1:]}.png").write_bytes(rendered.screenshot)
    assert len(rendered.svgs) == pictures
    assert sum(len(s["heads"]) for s in rendered.svgs) == marks
    assert all(s["texts"] for s in rendered.svgs)
    assert all(h["size"] <= 12 for s in rendered.svgs for h in s["heads"])  # a fixed-size head, any stroke
    problems = layout_problems(rendered)
    assert not problems, "\n".join(problems[:20])


def html_of(capture: Path, out: Path) -> tuple[int, int]:
    """`siptool ladder CAPTURE --all --html OUT`; returns (calls, arrowheads) the page must show."""
    from siptool.drivers.files import analyze_file

    result = CliRunner().invoke(get_app(), ["ladder", str(capture), "--all", "--html", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    calls = analyze_file(capture).calls
    return len(calls), sum(len(c.ladder) + len(c.streams) for c in calls)


@pytest.mark.parametrize("name", FIXTURE_CAPTURES)
def test_fixture_pages(browser, shots, tmp_path, name):
    page = tmp_path / f"{Path(name).stem}.html"
    calls, marks = html_of(FIXTURES / name, page)
    check(browser, page, shots, calls, marks)


@pytest.mark.shared
@pytest.mark.parametrize("name", SHARED_CAPTURES)
def test_shared_pages(browser, shots, tmp_path, name):
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED / name} is not here")
    page = tmp_path / f"shared_{Path(name).stem}.html"
    calls, marks = html_of(SHARED / name, page)
    check(browser, page, shots, calls, marks)


def hard_call() -> Call:
    """What no fixture has together: 6 columns (one IPv6), messages from a host to itself (in the
    middle and in the last column), long labels and notes, retransmissions, and RTP bands to the
    far column, between neighbours and from a host to itself."""
    hosts = ["10.0.0.1:5060", "[2001:db8:1234:5678::1]:5061", "192.168.100.200:5080", "10.0.0.4:5060",
             "172.16.31.254:65535", "10.0.0.6:5060"]
    steps = []

    def step(src, dst, label, status=None, method="INVITE", retrans=False, summary=""):
        steps.append(LadderStep(frame=len(steps) + 1, time=1_700_000_000 + 0.37 * len(steps) ** 1.5,
                                src=hosts[src], dst=hosts[dst], transport="TLS" if src == 1 else "UDP",
                                label=label, method=method, status=status, cseq=1, retransmission=retrans,
                                summary=summary))

    step(0, 1, "INVITE", summary="Diversion: <sip:+4930123456789@carrier.example.net>;reason=unconditional")
    for _ in range(3):
        step(0, 1, "INVITE", retrans=True)
    step(1, 1, "OPTIONS", method="OPTIONS", summary="keepalive to itself")
    step(1, 2, "INVITE")
    step(2, 5, "INVITE")
    step(5, 5, "MESSAGE", method="MESSAGE", summary="a long note about a message a host sent to itself")
    step(5, 2, "183 Session Progress", 183, summary="early media from the announcement server")
    step(2, 1, "503 Service Unavailable", 503, summary="Retry-After: 120; Reason: Q.850;cause=34;text=\"No "
         "circuit/channel available\"")
    step(1, 0, "500 Server Internal Error", 500)
    step(0, 1, "ACK", method="ACK")
    step(3, 4, "NOTIFY", method="NOTIFY", summary="Event: dialog; Subscription-State: active;expires=3600")
    step(4, 3, "200 OK", 200, method="NOTIFY")
    streams = [Stream(ssrc=1, src="10.0.0.1:40000", dst="10.0.0.6:30000", payload_type=0, codec="PCMU",
                      packets=123456, lost=12345, loss_pct=9.1, max_jitter_ms=123.4, mos=1.23, first_frame=9),
               Stream(ssrc=2, src="172.16.31.254:20000", dst="10.0.0.4:20002", payload_type=8, codec="PCMA",
                      packets=5, first_frame=10),
               Stream(ssrc=3, src="10.0.0.4:20000", dst="10.0.0.4:20000", payload_type=9, codec="G722",
                      packets=50, mos=4.5, first_frame=11)]
    return Call(call_id="a-very-long-call-id-0123456789abcdef0123456789abcdef@host.example.com", number=12,
                kind="call", method="INVITE", from_user="+4930123456789012", to_user="+4940987654321098",
                final_status=503, final_reason="Service Unavailable", ladder=steps, streams=streams)


def test_hard_ladder(browser, shots, tmp_path):
    call = hard_call()
    lad = build(call)
    assert len(lad.hosts) == 6 and sum(r.src == r.dst for r in lad.rows) == 2
    assert any(b.src == b.dst for b in lad.bands)
    picture = tmp_path / "hard.svg"
    picture.write_text(svg(lad), encoding="utf-8")
    check(browser, picture, shots, 1, len(call.ladder) + len(call.streams))
    page = tmp_path / "hard.html"
    page.write_text(html([(call, lad), (call, build(call))], "hard"), encoding="utf-8")
    check(browser, page, shots, 2, 2 * (len(call.ladder) + len(call.streams)))


def mermaid_js() -> Path:
    """Mermaid's own browser bundle (.ci/run fetches it from the npm registry into .venv/mermaid)."""
    from support import REPO

    path = Path(os.environ.get("SIPTOOL_MERMAID_JS") or REPO / ".venv" / "mermaid" / "mermaid.min.js")
    if not path.exists():
        if os.environ.get("SIPTOOL_REQUIRE_PEERS"):
            pytest.fail(f"{path} is required (SIPTOOL_REQUIRE_PEERS is set): npm pack mermaid@11")
        pytest.skip(f"{path} is not here (npm pack mermaid@11)")
    return path


def test_mermaid_parses_and_shows_our_text(browser, shots, tmp_path):
    """Mermaid itself parses each diagram, and what it draws is our text: addresses with their
    colons, "->" in the title, SDP notes with ";" and "<>", RTP bands."""
    import json

    from siptool.drivers.files import analyze_file
    from siptool.report.ladder import mermaid

    ladders = [build(c) for c in analyze_file(FIXTURES / "example.pcap").calls] + [build(hard_call())]
    texts = [mermaid(lad) for lad in ladders]
    page = tmp_path / "mermaid.html"
    page.write_text(f"""<!DOCTYPE html><html><head><meta charset='utf-8'>
<script src='{mermaid_js().resolve().as_uri()}'></script></head><body><div id='out'></div><script>
mermaid.initialize({{startOnLoad: false, securityLevel: 'strict'}});
window.results = null;
(async () => {{ const res = [];
  for (const [i, t] of {json.dumps(texts)}.entries()) {{
    try {{ const {{svg}} = await mermaid.render('m' + i, t);
      const div = document.createElement('div'); div.innerHTML = svg; document.getElementById('out').append(div);
      res.push({{ok: true, texts: [...div.querySelectorAll('text')].map(x => x.textContent)}});
    }} catch (e) {{ res.push({{ok: false, error: String(e.message || e)}}); }}
  }}
  window.results = res; }})();
</script></body></html>""", encoding="utf-8")
    rendered = browser.open(page, "window.results", ready="window.results !== null", timeout=60)
    (shots / "mermaid_html.png").write_bytes(rendered.screenshot)
    assert not rendered.errors
    results = rendered.value
    assert [r.get("error") for r in results] == [None] * len(ladders)
    for lad, r in zip(ladders, results):
        shown = set(r["texts"])
        assert set(lad.hosts) <= shown  # "127.0.0.1:5060", "[2001:db8:1234:5678::1]:5061"
        assert lad.title.split("  ")[0] in " ".join(shown)  # "call 7: caller -> silent"
        assert {b.label for b in lad.bands} <= shown
        assert {row.text + (f" [{row.note}]" if row.note else "") for row in lad.rows} <= shown


SPEECH_BOXES = """(() => [...document.querySelectorAll('g.speech')].map(g => {
  const r = g.querySelector('rect').getBoundingClientRect();
  return {title: g.querySelector('title').textContent, x0: r.left, x1: r.right};
}))()"""


@pytest.mark.parametrize("name", ["speech_faults.pcap", "speech_turns.pcap", "speech_opus.pcap"])
def test_speech_lanes(browser, shots, tmp_path, name):
    """ladder --content --html: one lane per side under the ladder, each talk spurt a box whose edges
    sit on the lanes' time axis (seconds from the first message, one scale for both lanes), and
    the layout as clean as the ladder's."""
    import re

    from siptool.analysis.content import ContentOptions
    from siptool.drivers.files import analyze_file

    page = tmp_path / f"{Path(name).stem}_lanes.html"
    result = CliRunner().invoke(get_app(), ["ladder", str(FIXTURES / name), "--content", "--html", str(page), "-q"])
    assert result.exit_code == 0, result.stderr
    (call,) = analyze_file(FIXTURES / name, content=ContentOptions()).calls
    check(browser, page, shots, 1, len(call.ladder) + len(call.streams))
    boxes = browser.open(page, SPEECH_BOXES).value
    spurts = sorted((x.start, x.end) for s in call.streams for x in s.content.talk_spurts)
    assert len(boxes) == len(spurts) > 0
    times = [tuple(float(v) for v in re.search(r"([\d.]+)-([\d.]+) s$", b["title"]).groups()) for b in boxes]
    a0, a1 = min(t[0] for t in times), max(t[0] for t in times)
    first, last = min(boxes, key=lambda b: b["x0"]), max(boxes, key=lambda b: b["x0"])
    scale = (last["x0"] - first["x0"]) / (a1 - a0)
    for (a, b), box in zip(times, boxes):  # every edge on the one linear axis, to a pixel
        assert abs(first["x0"] + (a - a0) * scale - box["x0"]) <= 1.0
        assert abs(first["x0"] + (b - a0) * scale - box["x1"]) <= 1.5
