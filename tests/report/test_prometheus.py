"""Prometheus metrics (report/prometheus.py): exposition valid for promtool, figures equal the report's,
labels bounded; the live event path (CallWatch) gives the same counts as the finished report."""

from __future__ import annotations

import subprocess
import urllib.request

import pytest
from interop.peers import free_port
from prometheus_client.parser import text_string_to_metric_families
from support import FIXTURES, require_binary

from siptool.analysis import events as ev
from siptool.analysis.session import Analyzer
from siptool.capture import open_capture
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


def test_live_events_count_what_the_report_counts():
    """Packets fed one by one, the live calls watched after each: every call is counted once, with
    the PDD the report gives it; the active gauge ends at the report's calls still up."""
    calls = {}  # the live calls' SIP records, as the Analyzer's on_message hook hands them
    analyzer = Analyzer(on_message=lambda msg, record, call: calls.setdefault(id(record), record))
    watch, live, exporter = ev.CallWatch(), Exporter(), Exporter()
    with open_capture(FIXTURES / "calls_mixed.pcap") as source:
        for pkt in source:
            analyzer.feed(pkt)
            for event in watch.events(calls.values()):
                live.apply(event)
        report = analyzer.finish(source.info)
    exporter.observe_report(report)
    a, b = samples(live.exposition()), samples(exporter.exposition())
    counted = {k: v for k, v in b.items() if k[0].startswith(("siptool_calls", "siptool_post_dial"))
               and "_created" not in k[0]}
    assert counted and all(a.get(k) == v for k, v in counted.items()), (a, counted)
    assert a[("siptool_active_calls", ())] == b[("siptool_active_calls", ())]


def test_served_over_http(report):
    exporter = Exporter().observe_report(report)
    port = free_port()  # free for UDP and TCP
    server = exporter.serve("127.0.0.1", port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    finally:
        server.shutdown()
    assert samples(body)[("siptool_packets_total", ())] == report.capture.packets
