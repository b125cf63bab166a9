#!/usr/bin/env python3
"""The cost of content analysis: CPU time (user + system) and wall time of `siptool analyze --json`
with and without content analysis, for one or more trees, every run alternating with the others so
that a busy machine slows all alike. Prints per tree and mode the median and spread (min-max) of
each, and the median ratio content / no content (budget: 1.3x, issue 16).

  python bench/content_cost.py --rounds 5 --tree old=/tmp/old --tree new=. bench/out/trunk_1M.pcap

Both modes are asked for explicitly (`--no-content`, `--content`), whatever a tree's default.
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

BUDGET = 1.3


def run(tree: Path, pcap: Path, extra: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one `analyze --json` run with `tree` first on PYTHONPATH."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "siptool", "analyze", str(pcap), "--json", *extra], env=env, cwd="/",
                   stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f} s ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", required=True, help="NAME=PATH of a tree (repeat)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("pcap", type=Path)
    args = ap.parse_args()
    trees = {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.tree)}
    pcap = args.pcap.resolve()
    plan = [(name, mode, [f"--{flag}"]) for name in trees for mode, flag in (("plain", "no-content"), ("content", "content"))]
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {(n, m): [] for n, m, _ in plan}
    run(next(iter(trees.values())), pcap, plan[0][2])  # warm the page cache
    for r in range(args.rounds):
        order = plan[r % len(plan):] + plan[:r % len(plan)]  # each configuration first in turn
        for name, mode, extra in order:
            runs[name, mode].append(run(trees[name], pcap, extra))
        print(f"round {r + 1}: " + ", ".join(f"{n} {m} {runs[n, m][-1][1]:.2f} s cpu" for n, m, _ in plan), flush=True)
    for (name, mode), values in runs.items():
        print(f"{name:>8} {mode:<8} cpu {spread([c for _, c in values])}  wall {spread([w for w, _ in values])}")
    for name in trees:
        plain, content = runs[name, "plain"], runs[name, "content"]
        cpu = statistics.median(c for _, c in content) / statistics.median(c for _, c in plain)
        wall = statistics.median(w for w, _ in content) / statistics.median(w for w, _ in plain)
        per_round = sorted(c[1] / p[1] for p, c in zip(plain, content))
        print(f"{name:>8} content/plain: cpu {cpu:.3f}x (per round {per_round[0]:.3f}-{per_round[-1]:.3f}), "
              f"wall {wall:.3f}x, budget <= {BUDGET}x: {'PASS' if cpu <= BUDGET else 'FAIL'} (cpu)")


if __name__ == "__main__":
    main()
