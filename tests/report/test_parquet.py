"""Parquet tables (report/parquet.py) read by DuckDB: the README's "ASR per carrier per hour" query,
run on tables written from two days of captures, equals siptool's own ASR over the same calls."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from support import FIXTURES

from siptool.analysis.metrics import compute_metrics
from siptool.drivers.many import analyze_files
from siptool.report.parquet import write_tables

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
QUERY = re.search(r"```sql\n(.*?)```", README.split("## At scale", 1)[1], re.S).group(1)


@pytest.fixture(scope="module")
def reports():
    """Two probes' reports: every fixture, analysed as a set (one Parquet folder each). Alternate
    files, so each set holds calls with media however many fixtures there are."""
    fixtures = sorted(FIXTURES.glob("*.pcap"))
    return [analyze_files([str(p) for p in fixtures[::2]], "independent", workers=1),
            analyze_files([str(p) for p in fixtures[1::2]], "independent", workers=1)]


def test_readme_query_gives_siptools_asr(reports, tmp_path):
    for i, report in enumerate(reports):
        write_tables(report, tmp_path / "tables" / f"day{i}")
    query = QUERY.replace("'tables/", f"'{tmp_path}/tables/")
    rows = duckdb.sql(query).fetchall()
    # the same grouping by hand over the reports' calls, ASR by siptool's metrics
    groups: dict[tuple, list] = {}
    for report in reports:
        for call in report.calls:
            host = re.search(r"@([^;>:]+)", call.to_uri)
            hour = dt.datetime.fromtimestamp(call.start // 3600 * 3600, dt.timezone.utc)
            groups.setdefault((host.group(1) if host else "", hour), []).append(call)
    assert len(rows) == len(groups) >= 2
    for carrier, hour, attempts, answered, asr in rows:
        metrics = compute_metrics(groups[(carrier, hour)])
        assert (attempts, answered, asr) == (metrics.calls, metrics.answered, metrics.answer_seizure_ratio)


def test_tables_hold_every_call_stream_and_finding(reports, tmp_path):
    report = reports[0]
    paths = write_tables(report, tmp_path / "t")
    assert [Path(p).name for p in paths] == ["calls.parquet", "streams.parquet", "findings.parquet"]
    calls = duckdb.sql(f"SELECT call, call_id, capture_point, source_file, final_status, pdd_ms FROM "
                       f"'{tmp_path}/t/calls.parquet' ORDER BY call").fetchall()
    assert calls == [(c.number, c.call_id, c.capture_point, c.source_file, c.final_status, c.pdd_ms)
                     for c in report.calls]
    streams = [s for c in report.calls for s in c.streams] + report.streams
    got = duckdb.sql(f"SELECT ssrc, packets, lost, mos, capture_point FROM '{tmp_path}/t/streams.parquet'").fetchall()
    assert got == [(s.ssrc, s.packets, s.lost, s.mos, s.capture_point) for s in streams] and got
    findings = duckdb.sql(f"SELECT code, call, frames, json_extract(evidence, '$') IS NOT NULL "
                          f"FROM '{tmp_path}/t/findings.parquet'").fetchall()
    assert [(f[0], f[1], f[2]) for f in findings] == [(f.code, f.call, f.frames) for f in report.all_findings()]


def test_empty_report_writes_typed_tables(tmp_path):
    """No call at all: the tables exist with their columns, so a dataset of many folders still reads."""
    shutil.copy(FIXTURES / "frag_udp.pcap", tmp_path / "x.pcap")
    report = analyze_files([str(tmp_path / "x.pcap")], "independent")
    report.calls, report.streams, report.findings = [], [], []
    write_tables(report, tmp_path / "t")
    cols = {r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM '{tmp_path}/t/calls.parquet'").fetchall()}
    assert cols["start"].startswith("TIMESTAMP") and cols["final_status"] == "BIGINT"
