"""Many captures (drivers/many.py, `siptool analyze DIR | FILE...`): rotated files give the same calls
as the single capture; independent captures keep their calls apart, in parallel and on Dask."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest
from support import FIXTURES, require_binary

from siptool.capture.reader import Capture
from siptool.capture.writer import PcapWriter
from siptool.drivers.files import analyze_file
from siptool.drivers.many import analyze_files, expand, plan, rotation_key
from siptool.report.jsonout import report_dict
from siptool.report.model import SCHEMA_VERSION
from siptool.report.schema import report_schema

FILE_FIELDS = ("source_file", "capture_point")


def without_file_fields(report) -> dict:
    """The report's JSON less what says which file(s) it came from."""
    d = json.loads(json.dumps(report_dict(report)))
    for key in ("file", "bytes", "format"):
        d["capture"].pop(key)
    d.pop("sources"), d.pop("grouping")

    def walk(x):
        if isinstance(x, dict):
            for key in FILE_FIELDS:
                x.pop(key, None)
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(d)
    return d


def editcap_split(src, folder, packets: int, fmt: str = "pcap"):
    editcap = require_binary("editcap")
    folder.mkdir(exist_ok=True)
    subprocess.run([editcap, "-F", fmt, "-c", str(packets), src, folder / "part.pcap"], check=True,
                   capture_output=True)
    return sorted(folder.iterdir())


@pytest.mark.parametrize("name, packets, fmt", [
    ("example.pcap", 250, "pcap"),  # calls and RTP streams cross the cuts; the numpy batch path
    ("example.pcap", 97, "pcapng"),  # the per-packet path
    ("call_tcp.pcap", 3, "pcap"),  # SIP over TCP reassembled across files
    ("media_impaired.pcap", 400, "pcap"),
])
def test_editcap_split_gives_the_same_calls(tmp_path, name, packets, fmt):
    parts = editcap_split(FIXTURES / name, tmp_path / "parts", packets, fmt)
    assert len(parts) > 1
    whole = analyze_file(FIXTURES / name)
    rotated = analyze_files([str(tmp_path / "parts")])
    assert len(rotated.sources) == len(parts) and {s.capture_point for s in rotated.sources} == \
        {str(tmp_path / "parts" / "part_*_*.pcap")}
    assert without_file_fields(rotated) == without_file_fields(whole)
    # each call names the file of its first message; frames count on across the files
    for call in rotated.calls:
        first = call.ladder[0].frame
        src = max((s for s in rotated.sources if s.first_frame <= first), key=lambda s: s.first_frame)
        assert call.source_file == src.file and call.capture_point == src.capture_point
    assert [s.first_frame for s in rotated.sources] == [1 + sum(s.packets for s in rotated.sources[:i])
                                                         for i in range(len(parts))]


def test_the_projects_ring_writer_split_gives_the_same_calls(tmp_path):
    """siptool capture --ring's writer (capture/writer.py), cut every 5 s of capture time."""
    base = tmp_path / "ring" / "trunk.pcap"
    base.parent.mkdir()
    with Capture(FIXTURES / "example.pcap") as cap, PcapWriter(base, 1, ring=100, ring_size="5s") as writer:
        for rec in cap:
            sec = int(rec.time)
            writer.write(sec, int(round((rec.time - sec) * 1e9)), rec.data, rec.orig_len)
    files = sorted(os.listdir(base.parent))
    assert len(files) > 3 and files[0] == "trunk_00001.pcap"
    rotated = analyze_files([str(base.parent)])
    assert without_file_fields(rotated) == without_file_fields(analyze_file(FIXTURES / "example.pcap"))


def test_independent_captures_keep_their_calls_apart(tmp_path):
    """Two probes saw the same calls: each Call-ID twice, once per capture point, never merged."""
    a, b = tmp_path / "probe-a.pcap", tmp_path / "probe-b.pcap"
    shutil.copy(FIXTURES / "calls_mixed.pcap", a)
    shutil.copy(FIXTURES / "calls_mixed.pcap", b)
    one = analyze_file(a)
    both = analyze_files([str(a), str(b)], workers=2)
    assert "automatic" in both.grouping and "2 capture points" in both.grouping
    assert len(both.calls) == 2 * len(one.calls)
    for call in one.calls:
        pair = [c for c in both.calls if c.call_id == call.call_id and c.kind == call.kind]
        assert sorted(c.capture_point for c in pair) == [str(a), str(b)]
        assert all(c.messages == call.messages and c.final_status == call.final_status for c in pair)
    assert [c.number for c in both.calls] == list(range(1, len(both.calls) + 1))
    assert both.metrics.calls == 2 * one.metrics.calls
    assert both.metrics.answer_seizure_ratio == one.metrics.answer_seizure_ratio
    # parallel or not, the same report; valid against the published schema
    assert report_dict(analyze_files([str(a), str(b)], workers=1)) == report_dict(both)
    jsonschema.validate(report_dict(both), report_schema())


def test_auto_rule_and_explicit_modes(tmp_path):
    names = ["trunk_00001.pcap", "trunk_00002.pcap", "edge.pcap", "edge.pcap1", "edge.pcap2", "probe.pcapng"]
    assert rotation_key("d/trunk_00001.pcap") == rotation_key("d/trunk_00017.pcap")
    assert rotation_key("d/edge.pcap") == rotation_key("d/edge.pcap3") != rotation_key("d/probe.pcapng")
    assert rotation_key("d/a.pcap") != rotation_key("e/a.pcap")
    src = [FIXTURES / n for n in ("busy_486.pcap", "call_ok.pcap", "cancel_487.pcap", "reject_488.pcap",
                                  "auth_401.pcap", "call_tcp.pcap")]
    for name, path in zip(names, src):
        shutil.copy(path, tmp_path / name)
    (tmp_path / "README.txt").write_text("not a capture")
    files, others = expand([str(tmp_path)])
    assert others == [str(tmp_path / "README.txt")] and len(files) == 6
    auto = {t.name: t.files for t in plan(files)}
    assert sorted(auto) == sorted([str(tmp_path / "edge.pcap*"), str(tmp_path / "probe.pcapng"),
                                   str(tmp_path / "trunk_*.pcap")])
    # a timeline is in the order of first packets, not names
    firsts = [next(iter(Capture(f))).time for f in auto[str(tmp_path / "trunk_*.pcap")]]
    assert firsts == sorted(firsts)
    assert "1 file(s) left out, not captures" in analyze_files([str(tmp_path)]).grouping
    assert [len(t.files) for t in plan(files, "rotated")] == [6]
    assert [len(t.files) for t in plan(files, "independent")] == [1] * 6


def test_overlapping_files_read_as_one_rotation_are_flagged(tmp_path):
    a, b = tmp_path / "x_1.pcap", tmp_path / "x_2.pcap"
    shutil.copy(FIXTURES / "calls_mixed.pcap", a)
    shutil.copy(FIXTURES / "calls_mixed.pcap", b)
    report = analyze_files([str(tmp_path)])
    found = [f for f in report.findings if f.code == "capture.files_overlap"]
    assert len(found) == 1 and "--independent" in found[0].fix
    clean = analyze_files([str(tmp_path)], "independent")
    assert not [f for f in clean.all_findings() if f.code == "capture.files_overlap"]
    parts = analyze_files([str(FIXTURES / "example.pcap")], "rotated")
    assert not [f for f in parts.all_findings() if f.code == "capture.files_overlap"]


def test_dask_local_cluster_gives_the_local_report(tmp_path):
    distributed = pytest.importorskip("distributed")
    paths = [str(FIXTURES / n) for n in ("calls_mixed.pcap", "media_oneway.pcap", "call_tcp.pcap")]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) \
            as cluster:
        on_dask = analyze_files(paths, dask=cluster.scheduler_address)
    assert report_dict(on_dask) == report_dict(analyze_files(paths, workers=1))


def run_cli(*args):
    env = dict(os.environ, NO_COLOR="1", COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "siptool", "analyze", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_many_files_json_and_errors(tmp_path):
    parts = editcap_split(FIXTURES / "example.pcap", tmp_path / "parts", 500)
    out = run_cli(tmp_path / "parts", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema_version"] == SCHEMA_VERSION and len(data["sources"]) == len(parts)
    assert tuple(map(int, SCHEMA_VERSION.split("."))) >= (1, 5)  # sources came in 1.5
    assert {c["source_file"] for c in data["calls"]} <= {str(p) for p in parts}
    text = run_cli(tmp_path / "parts", FIXTURES / "call_ok.pcap", "--parquet", tmp_path / "tables")
    assert "2 capture points (1 rotated); automatic" in text.stdout and text.returncode == 0
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["calls.parquet", "findings.parquet",
                                                                      "streams.parquet"]
    for args, words in [(["--rotated", "--independent", FIXTURES / "call_ok.pcap"], "choose one"),
                        ([tmp_path / "nothing"], "no such file"),
                        ([tmp_path / "nothing", tmp_path / "none"], "no such file or folder"),
                        ([FIXTURES / "call_ok.pcap", "-"], "native engine"),
                        ([tmp_path / "parts", "--workers", "0"], "use 1 or more"),
                        ([tmp_path / "parts", "--parquet", FIXTURES / "call_ok.pcap"], "is a file")]:
        bad = run_cli(*args)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_cli_dask_unreachable_scheduler_is_one_line():
    pytest.importorskip("distributed")
    from interop.peers import free_port

    out = run_cli(FIXTURES / "call_ok.pcap", "--dask", f"tcp://127.0.0.1:{free_port()}")
    assert out.returncode == 2 and "cannot reach the scheduler" in out.stderr and len(out.stderr.splitlines()) == 1
