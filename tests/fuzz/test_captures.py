"""A bounded run of the capture mutation fuzzer (bench/fuzz.py) in every test run: no mutated
capture gives an internal error, a hang or unbounded memory. `python bench/fuzz.py --cases 2500`
runs many more (`--content` too)."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys

import pytest
from support import REPO


def _fuzz():
    spec = importlib.util.spec_from_file_location("bench_fuzz", REPO / "bench" / "fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_fuzz"] = mod
    spec.loader.exec_module(mod)
    return mod


fuzz = _fuzz()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_mutated_captures_end_in_a_report_or_a_one_line_error(tmp_path, seed):
    summary = fuzz.fuzz(60, seed, tmp_path, shared=None, timeout=20.0, memory_mb=200.0)
    assert summary.cases == 60 and not summary.bad, [f"{o.kind} {o.mutation} {o.detail}" for o in summary.bad]
    assert summary.outcomes.get("json", 0) > 30  # most mutations still give a report to judge


def test_mutated_captures_with_content_analysis(tmp_path):
    """As `analyze --content`: every audio stream of a mutated capture decoded (PyAV for Opus, G.722
    and the rest), its speech found; still a report or one line."""
    summary = fuzz.fuzz(60, 14, tmp_path, shared=None, timeout=20.0, memory_mb=200.0, content=True)
    assert summary.cases == 60 and not summary.bad, [f"{o.kind} {o.mutation} {o.detail}" for o in summary.bad]
    assert summary.outcomes.get("json", 0) > 30


def test_every_mutation_kind_is_exercised(tmp_path):
    rng = random.Random(5)
    base = (REPO / "fixtures" / "pcaps" / "example.pcap").read_bytes()
    kinds = {fuzz.mutate(rng, base)[0] for _ in range(400)}
    assert kinds >= {"record", "cut", "ip", "udp", "tcp", "sip", "sdp", "rtp", "rtcp", "pcapng", "bytes"}


def test_through_the_command_line(tmp_path):
    """The same outcomes as the CLI reports them: exit 0 with JSON, or exit 2 with one line."""
    rng = random.Random(3)
    base = (REPO / "fixtures" / "pcaps" / "media_impaired.pcap").read_bytes()
    codes = set()
    for i in range(8):
        kind, data = fuzz.mutate(rng, base)
        path = tmp_path / f"{i}.pcap"
        path.write_bytes(data)
        r = subprocess.run([sys.executable, "-m", "siptool", "analyze", str(path), "--json"], capture_output=True,
                           text=True, timeout=60)
        codes.add(r.returncode)
        assert r.returncode in (0, 2), (kind, r.stderr)
        assert r.returncode == 0 or r.stderr.count("\n") == 1
        assert "Traceback" not in r.stderr
    assert 0 in codes
