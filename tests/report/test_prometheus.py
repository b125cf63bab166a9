"""Prometheus metrics (report/prometheus.py): exposition valid for promtool, figures equal the report's,
labels bounded; a live run (analysis/events.LiveEvents) counts what its finished Report counts."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest
from interop.peers import free_port
from prometheus_client.parser import text_string_to_metric_families
from support import FIXTURES, require_binary

from siptool.analysis import events as ev
from siptool.analysis.session import Analyzer
from siptool.drivers.many import analyze_files
from siptool.report.prometheus import Exporter


def samples(text: bytes) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture(scope="module")
def report():
    return analyze_files([str(FIXTURES)], "independent", workers=1)


def test_exposition_passes_promtool(report, tmp_path):
    promtool = require_binary("promtool")
    text = Exporter().observe_report(report).exposition()
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert b"siptool_calls_total" in text and b"siptool_stream_mos_bucket" in text


def test_figures_are_the_reports(report):
    got = samples(Exporter().observe_report(report).exposition())
    invites = [c for c in report.calls if c.kind == "call"]
    by_code = {}
    for c in invites:
        key = ev.status_labels(c.final_status)
        by_code[key] = by_code.get(key, 0) + 1
    for (cls, code), n in by_code.items():
        assert got[("siptool_calls_total", (("status_class", cls), ("status_code", code)))] == n
    assert got[("siptool_post_dial_delay_seconds_count", ())] == sum(c.pdd_ms is not None for c in invites)
    audio = [s for c in report.calls for s in c.streams if s.media == "audio"] + \
        [s for s in report.streams if s.media == "audio"]
    assert got[("siptool_stream_loss_ratio_count", ())] == len(audio)
    lossy = sum(1 for s in audio if s.loss_pct / 100 > 0.01)
    assert got[("siptool_stream_loss_ratio_count", ())] - got[("siptool_stream_loss_ratio_bucket", (("le", "0.01"),))] \
        == lossy
    one_way = sum(1 for f in report.all_findings() if f.code == "media.one_way")
    assert one_way and got[("siptool_findings_total", (("code", "media.one_way"), ("severity", "error")))] == one_way
    assert got[("siptool_packets_total", ())] == report.capture.packets


def test_labels_are_bounded():
    assert ev.status_labels(486) == ("4xx", "486") and ev.status_labels(499) == ("4xx", "other")
    assert ev.status_labels(None) == ("none", "none") and ev.status_labels(999) == ("none", "none")
    assert ev.finding_label("sip.failed.486") == "sip.failed.486"
    assert ev.finding_label("sip.failed.477") == "sip.failed.other" and ev.finding_label("media.loss") == "media.loss"
    exporter = Exporter()
    for status in range(100, 700):  # a hostile peer's every code: at most the registry's series
        exporter.apply(ev.CallEnded(status, None))
    series = [k for k in samples(exporter.exposition()) if k[0] == "siptool_calls_total"]
    assert len(series) == len(ev.REGISTERED_STATUS) + 6  # and one 'other' per class, 1xx to 6xx


def run_live(path, observers):
    """A capture file replayed through a live run (drivers/live.LiveRun), observers following it."""
    from drivers.test_live_driver import Replay

    from siptool.analysis.session import _media_tracker
    from siptool.drivers.live import LiveRun

    live = LiveRun(Replay(path), Analyzer(media=_media_tracker()), observers, refresh_s=0.0)
    return live.run()


def without_created(text: bytes) -> dict:
    return {k: v for k, v in samples(text).items() if not k[0].endswith("_created")}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.pcap")))
def test_a_live_run_counts_what_its_report_counts(name):
    """Every fixture replayed through a live run with LiveEvents: calls counted at their final response,
    findings as made, streams as they close, packets at each refresh, the rest at the end. The metrics
    a live run leaves equal those of its finished Report, series for series."""
    live = Exporter()
    report = run_live(FIXTURES / name, [ev.LiveEvents(live.apply)])
    want = without_created(Exporter().observe_report(report).exposition())
    assert without_created(live.exposition()) == pytest.approx(want, rel=1e-9)  # sums added in another order


def test_calls_are_counted_at_their_final_response():
    """While the run goes: a call is counted when its final response is read, and only then, once."""
    seen = []
    exporter = Exporter()

    class Probe:
        """After each SIP message (and LiveEvents' own hook), the calls the metrics count so far."""

        def message(self, msg, record, call):
            got = samples(exporter.exposition())
            seen.append((msg, sum(v for k, v in got.items() if k[0] == "siptool_calls_total")))

    report = run_live(FIXTURES / "calls_mixed.pcap", [ev.LiveEvents(exporter.apply), Probe()])
    counts = [0] + [n for _, n in seen]
    for (msg, _), before, after in zip(seen, counts, counts[1:]):
        assert after - before in (0, 1)
        if after > before:
            assert msg.status >= 200 and msg.status not in (401, 407) and msg.cseq[1] == "INVITE"
    invites = [c for c in report.calls if c.kind == "call"]
    assert counts[-1] == sum(c.final_status is not None for c in invites) > 1


def test_served_over_http(report):
    exporter = Exporter().observe_report(report)
    port = free_port()  # free for UDP and TCP
    server = exporter.serve("127.0.0.1", port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        server.shutdown()
    assert samples(body)[("siptool_packets_total", ())] == report.capture.packets
