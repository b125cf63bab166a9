#!/usr/bin/env python3
"""A/B timing of `siptool analyze --json` between two trees on one capture, alternating A and B each
round so that a busy machine slows both alike; prints medians and the ratio B/A of wall and CPU time.

  python bench/ab.py --a /tmp/old --b /tmp/new --rounds 7 bench/out/trunk_1M.pcap
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def once(tree: Path, pcap: Path) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one `analyze --json` run with `tree` first on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "siptool", "analyze", str(pcap), "--json"], env=env, cwd="/",
                   stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="the old tree")
    ap.add_argument("--b", type=Path, required=True, help="the new tree")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("pcap", type=Path)
    args = ap.parse_args()
    runs: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
    once(args.a, args.pcap)  # warm the page cache
    for r in range(args.rounds):
        order = ("A", "B") if r % 2 == 0 else ("B", "A")
        for name in order:
            runs[name].append(once(args.a if name == "A" else args.b, args.pcap))
        print(f"round {r + 1}: A {runs['A'][-1][0]:.2f} s wall {runs['A'][-1][1]:.2f} s cpu, "
              f"B {runs['B'][-1][0]:.2f} s wall {runs['B'][-1][1]:.2f} s cpu", flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    print(f"median wall A {med['A'][0]:.3f} s, B {med['B'][0]:.3f} s: B/A {med['B'][0] / med['A'][0]:.3f}")
    print(f"median cpu  A {med['A'][1]:.3f} s, B {med['B'][1]:.3f} s: B/A {med['B'][1] / med['A'][1]:.3f}")


if __name__ == "__main__":
    main()
