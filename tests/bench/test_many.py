"""bench/many.py runs end to end on tiny captures (its own check: every way gives the same report)."""

from __future__ import annotations

import importlib.util
import sys

from support import REPO


def test_many_bench_runs_and_prints_ratios(capsys):
    spec = importlib.util.spec_from_file_location("bench_many", REPO / "bench" / "many.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_many"] = mod
    spec.loader.exec_module(mod)
    mod.TINY_FILES = 5
    assert mod.main(["--files", "2", "--packets", "2k", "--rounds", "1", "--workers", "2", "--no-dask"]) == 0
    out = capsys.readouterr().out
    assert "2 local" in out and "x the speed of 1 worker" in out and "per file" in out
