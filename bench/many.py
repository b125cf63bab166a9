#!/usr/bin/env python3
"""Many independent captures: one worker, every local worker, a Dask LocalCluster; ratios only.

N captures are generated (bench/generate.py, different seeds: N probes' traffic), then analysed as a
set of independent captures (`siptool.drivers.many.analyze_files(..., "independent")`):

- `1 worker`: every capture in this process, one after another (the baseline);
- `N local`: a pool of processes, one per local core (`--workers`, default all);
- `dask`: a `LocalCluster` of as many single-threaded worker processes, through `--dask`'s code path;
- `per file`: N copies of a one-call fixture, one worker: what each file costs whatever its size
  (opening, an Analyzer and a report of its own, the merge), as a share of one generated capture.

Every way must give the same report (checked), so speed is never bought with other answers. Rounds
rotate the order; medians are printed as ratios to the baseline (this machine's absolute times mean
little when other jobs share it).

  python bench/many.py                      # 8 captures of ~40k packets, 3 rounds
  python bench/many.py --files 16 --packets 100k --rounds 5
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY_FILES = 200
sys.path.insert(0, str(REPO))

from siptool.drivers.many import analyze_files, local_workers  # noqa: E402
from siptool.report.jsonout import report_dict  # noqa: E402


def _generator():
    spec = importlib.util.spec_from_file_location("bench_generate", REPO / "bench" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = mod
    spec.loader.exec_module(mod)
    return mod


def make_captures(folder: Path, files: int, packets: int) -> list[str]:
    """`files` captures of about `packets` each (seeds 1..files: other calls, other media)."""
    gen = _generator()
    paths = []
    for i in range(files):
        out = folder / f"probe{i:03d}.pcap"
        gen.generate(out, concurrent=60, duration=20.0, packets=packets, seed=i + 1, quiet=True)
        paths.append(str(out))
    return paths


def tiny_copies(folder: Path, files: int) -> list[str]:
    """`files` copies of a one-call fixture (the per-file cost dominates)."""
    import shutil

    folder.mkdir()
    out = []
    for i in range(files):
        shutil.copy(REPO / "fixtures" / "pcaps" / "call_ok.pcap", folder / f"tiny{i:04d}.pcap")
        out.append(str(folder / f"tiny{i:04d}.pcap"))
    return out


def comparable(report) -> dict:
    d = report_dict(report)
    d["capture"].pop("file")
    return d


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--packets", type=lambda t: _generator().parse_size(t), default=40_000,
                    help="packets per capture (40k, 100k...)")
    ap.add_argument("--workers", type=int, default=None, help="local workers (default: every core)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-dask", action="store_true")
    a = ap.parse_args(argv)
    workers = a.workers or local_workers()
    with tempfile.TemporaryDirectory(prefix="siptool-many-") as tmp:
        print(f"generating {a.files} captures of ~{a.packets:,} packets ...", flush=True)
        paths = make_captures(Path(tmp), a.files, a.packets)
        tiny = tiny_copies(Path(tmp) / "tiny", TINY_FILES)
        cluster = None
        ways = {"1 worker": lambda: analyze_files(paths, "independent", workers=1),
                f"{workers} local": lambda: analyze_files(paths, "independent", workers=workers),
                "tiny files": lambda: analyze_files(tiny, "independent", workers=1)}
        if not a.no_dask:
            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
            ways["dask"] = lambda: analyze_files(paths, "independent", dask=cluster.scheduler_address)
        times: dict[str, list[float]] = {k: [] for k in ways}
        reference = None
        try:
            for r in range(a.rounds):
                order = list(ways)[r % len(ways):] + list(ways)[:r % len(ways)]
                for name in order:
                    start = time.perf_counter()
                    report = ways[name]()
                    times[name].append(time.perf_counter() - start)
                    if name != "tiny files":
                        got = comparable(report)
                        reference = reference or got
                        assert got == reference, f"{name} gave another report"
        finally:
            if cluster is not None:
                cluster.close()
    base = statistics.median(times["1 worker"])
    print(f"\n{a.files} independent captures, {a.rounds} rounds, {workers} local cores; medians as ratios "
          "(every way gave the same report)")
    for name, ts in times.items():
        if name != "tiny files":
            m = statistics.median(ts)
            print(f"  {name:<10} {base / m:5.2f}x the speed of 1 worker ({m / base:.2f} of its time)")
    per_file = statistics.median(times["tiny files"]) / TINY_FILES
    print(f"  per file   a file costs {per_file / (base / a.files) * 100:.1f} % of one {a.packets:,}-packet "
          f"capture's analysis whatever its size ({TINY_FILES} one-call files, 1 worker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
