"""`siptool diff` as a user runs it: 80 columns, one line and exit 2 for what cannot be read, JSON
that validates against docs/diff.schema.json (which matches the model it documents)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest
from support import FIXTURES, REPO

from siptool.report.diff_json import diff_schema
from siptool.status import ExitStatus

CASES = ["diff_proxy", "diff_topoh", "diff_relay"]


def run(*args, columns: int = 80):
    env = dict(os.environ, NO_COLOR="1", COLUMNS=str(columns))
    return subprocess.run([sys.executable, "-m", "siptool", "diff", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)


def test_committed_schema_is_current():
    # python -m siptool.report.diff_json > docs/diff.schema.json
    assert json.loads((REPO / "docs" / "diff.schema.json").read_text()) == diff_schema()


@pytest.mark.parametrize("case", CASES)
def test_json_validates(case):
    out = run(FIXTURES / f"{case}_a.pcap", FIXTURES / f"{case}_b.pcap", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    jsonschema.validate(data, diff_schema())
    assert data["schema"] == "siptool.diff/1" and data["matched"] == len(data["calls"])


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_terminal_fits_and_keeps_the_figures(columns):
    out = run(FIXTURES / "diff_relay_a.pcap", FIXTURES / "diff_relay_b.pcap", columns=columns)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(len(ln) <= columns for ln in lines), max(lines, key=len)
    assert "…" not in out.stdout
    tokens = set(out.stdout.split())  # every figure whole, wherever the width put it
    assert {"1003,", "1046)", "PCMA", "1.25", "40002", "between", "50/0", "49/1"} <= tokens


def test_one_call_and_the_html_page(tmp_path):
    page = tmp_path / "d.html"
    out = run(FIXTURES / "diff_topoh_a.pcap", FIXTURES / "diff_topoh_b.pcap", "--call", "3", "--html", page)
    assert out.returncode == 0 and out.stdout == "" and f"wrote {page}" in out.stderr
    html = page.read_text()
    assert html.count("<svg") == 2 and "3-diff_topoh@10.18.1.2" in html and "2-diff_topoh" not in html


@pytest.mark.parametrize("args, expect", [
    (["nope.pcap", FIXTURES / "call_ok.pcap"], "no such file"),
    ([FIXTURES / "call_ok.pcap", FIXTURES / "README.md"], "not a pcap or pcapng"),
    ([FIXTURES / "call_ok.pcap", FIXTURES / "call_ok.pcap", "--call", "9"], "no call number 9"),
    ([FIXTURES / "call_ok.pcap", FIXTURES / "call_ok.pcap", "--html", "/no/such/dir/x.html"], "no such folder"),
])
def test_bad_input_is_one_line(tmp_path, args, expect):
    out = run(*args)
    assert out.returncode == ExitStatus.BAD_INPUT and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0] and "Traceback" not in out.stderr


def test_same_capture_twice_has_no_difference():
    out = run(FIXTURES / "calls_mixed.pcap", FIXTURES / "calls_mixed.pcap", "--json")
    data = json.loads(out.stdout)
    assert data["matched"] == 8 and data["only_a"] == data["only_b"] == 0
    for pair in data["calls"]:
        assert pair["rewrites"] == [] and pair["only_a"] == pair["only_b"] == 0
        assert all(m["delay_ms"] in (0.0, None) for m in pair["messages"])


def test_truncated_and_malformed_input_are_compared_not_fatal(tmp_path):
    """b cut in the middle of a packet, with a message that is not SIP's grammar inserted: diff still
    compares what was read, says so, and lists what b never saw."""
    import crafted

    whole = (FIXTURES / "diff_relay_b.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:len(whole) // 2 + 7])
    out = run(FIXTURES / "diff_relay_a.pcap", cut, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["b"]["truncated"] and data["matched"] == 1
    pair = data["calls"][0]
    assert pair["only_a"] >= 2 and pair["final_b"] == 200  # answered; b's capture ends before the BYE
    assert any(m["frame_b"] is None and m["label"] == "BYE" for m in pair["messages"])
    bad = tmp_path / "bad.pcap"
    good = crafted.sip("INVITE sip:bob@x SIP/2.0", "1 INVITE", call_id="ok1").encode()
    crafted.write(bad, [crafted.udp(crafted.A, crafted.B, b"INVITE sip:x SIP/2.0\r\nno colon here\r\n\r\n", 1.0),
                        crafted.udp(crafted.A, crafted.B, good, 1.1)])
    out = run(bad, FIXTURES / "call_ok.pcap", "--json")
    data = json.loads(out.stdout)
    assert out.returncode == 0 and data["a"]["malformed"] == 1 and data["a"]["calls"] == 1
    assert data["only_a"] == data["only_b"] == 1 and data["matched"] == 0
