"""`siptool analyze` as a user runs it: a real subprocess, real capture files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest
from support import FIXTURES, SHARED

from siptool.report.model import SCHEMA_VERSION

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/pcaps is not present")


def run(*args, **kw):
    env = dict(os.environ, NO_COLOR="1", COLUMNS="140")
    return subprocess.run([sys.executable, "-m", "siptool", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120, **kw)


def test_help_has_examples():
    out = run("analyze", "--help")
    assert out.returncode == 0
    assert "Examples" in out.stdout and "--json" in out.stdout


@pytest.mark.parametrize("make, expect", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b"hello world, not a capture"), "not a pcap or pcapng"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.mkdir(), "no capture files found"),  # an empty folder (a folder of captures is a set)
])
def test_unreadable_input_is_one_line(tmp_path, make, expect):
    target = tmp_path / "input.pcap"
    make(target)
    out = run("analyze", target)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_permission_denied(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    target = tmp_path / "secret.pcap"
    target.write_bytes(b"\xd4\xc3\xb2\xa1")
    target.chmod(0)
    out = run("analyze", target)
    assert out.returncode == 2 and "permission denied" in out.stderr


@needs_shared
def test_json_schema_fields():
    out = run("analyze", SHARED / "wsc_MagicJack+_short_call.pcap", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema_version"] == SCHEMA_VERSION
    cap = data["capture"]
    for key in ("file", "format", "link_types", "packets", "first_time", "last_time", "skipped"):
        assert key in cap
    assert cap["packets"] == 1381 and cap["format"] == "pcap" and cap["link_types"] == ["ether"]
    assert cap["skipped"]["ICMP"] == 10
    (call,) = data["calls"]
    for key in ("call_id", "from", "to", "method", "final_status", "start", "answer", "end", "pdd_ms",
                "duration_s", "messages", "retransmissions", "ladder"):
        assert key in call, key
    assert call["final_status"] == 200 and call["method"] == "INVITE" and call["messages"] == 11
    assert call["auth_challenges"] == 1 and call["ended_by"] == "callee"
    # 183 Session Progress came 6.989 s after the first INVITE (frame 46 -> frame 54)
    assert call["pdd_ms"] == pytest.approx(6989.191, abs=0.01)
    step = call["ladder"][0]
    assert {"frame", "time", "src", "dst", "transport", "method", "status"} <= set(step)
    assert step["frame"] == 46 and step["method"] == "INVITE" and step["transport"] == "UDP"
    assert data["metrics"]["calls"] == 1 and data["metrics"]["answered"] == 1
    assert isinstance(data["findings"], list)


@needs_shared
def test_gzip_capture_reads_the_same(tmp_path):
    src = SHARED / "pkts_sipp.pcap"
    gz = tmp_path / "sipp.pcap.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    plain = json.loads(run("analyze", src, "--json").stdout)
    zipped = json.loads(run("analyze", gz, "--json").stdout)
    assert zipped["capture"]["compressed"] is True
    assert [c["call_id"] for c in plain["calls"]] == [c["call_id"] for c in zipped["calls"]]


@needs_shared
def test_truncated_capture_is_read_to_last_whole_packet(tmp_path):
    data = (SHARED / "pkts_sipp.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) - 100])
    out = run("analyze", cut, "--json")
    assert out.returncode == 0
    report = json.loads(out.stdout)
    assert report["capture"]["packets"] == 29  # 30 in the file, the last one cut
    assert "ends inside frame 30" in report["capture"]["truncated"]
    assert any(f["code"] == "capture.truncated" for f in report["findings"])


@needs_shared
def test_filter_by_status_and_number():
    path = SHARED / "sipnab_sipp-branch-scenario.pcapng"
    everything = json.loads(run("analyze", path, "--json").stdout)
    failed = json.loads(run("analyze", path, "--json", "--filter", "403").stdout)
    assert 0 < len(failed["calls"]) < len(everything["calls"])
    assert all(c["final_status"] == 403 for c in failed["calls"])
    assert failed["metrics"]["calls"] == len(failed["calls"])
    some = json.loads(run("analyze", path, "--json", "--filter", "17-4461@").stdout)["calls"]
    assert "17-4461@127.0.1.1" in [c["call_id"] for c in some]
    # 17, 117, 217, ... 1317: each Call-ID carries a REGISTER and an INVITE session, kept apart
    assert all("17-4461@" in c["call_id"] for c in some) and len({c["call_id"] for c in some}) == 14
    assert sorted({c["kind"] for c in some}) == ["call", "register"]


@needs_shared
def test_terminal_output_and_fail_on():
    out = run("analyze", SHARED / "wsc_SIP_DTMF2.cap")
    assert out.returncode == 0, out.stderr
    assert "603" in out.stdout and "Calls" in out.stdout and "Metrics" in out.stdout
    assert "\x1b[" not in out.stdout  # no colour codes when not a terminal
    failing = run("analyze", SHARED / "wsc_SIP_DTMF2.cap", "--fail-on", "warning")
    assert failing.returncode == 1


@needs_shared
def test_malformed_message_becomes_finding_not_crash():
    out = run("analyze", SHARED / "zeek_sip-junk-before-request.pcap", "--json")
    assert out.returncode == 0
    data = json.loads(out.stdout)
    codes = {f["code"] for f in data["findings"]} | {f["code"] for c in data["calls"] for f in c["findings"]}
    assert "sip.nonconformant" in codes  # REGISTER without Call-ID/From/To/CSeq/Via
    frames = [f["frames"] for c in data["calls"] for f in c["findings"] if f["code"] == "sip.nonconformant"]
    assert frames == [[2]]


def test_media_thresholds_are_configurable():
    """example.pcap's impaired call: 2 % loss, ~14 ms jitter, MOS 4.24 on three streams."""
    def findings(*opts):
        out = run("analyze", FIXTURES / "example.pcap", "--json", *opts)
        assert out.returncode == 0, out.stderr
        return sorted((f["code"], f["severity"]) for c in json.loads(out.stdout)["calls"] for f in c["findings"]
                      if f["code"].startswith("media.") and f["code"] not in ("media.one_way", "media.none"))

    default = findings()
    assert ("media.loss", "warning") in default and not any(c in ("media.jitter", "media.mos") for c, _ in default)
    strict = findings("--loss", "0.5", "--jitter", "10", "--mos", "4.3")
    assert strict.count(("media.jitter", "warning")) == default.count(("media.loss", "warning"))
    assert ("media.mos", "warning") in strict
    assert not any(c == "media.loss" for c, _ in findings("--loss", "3"))
    bad = run("analyze", FIXTURES / "example.pcap", "--mos", "9")
    assert bad.returncode == 2 and "--mos" in bad.stderr
