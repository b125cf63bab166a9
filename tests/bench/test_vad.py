"""bench/vad.py: siptool's speech detector against webrtcvad on the speech fixtures' ground truth.
The comparison runs (webrtcvad on the same decoded audio), and siptool's edges are all within 20 ms."""

from __future__ import annotations

import re
import subprocess
import sys

from support import REPO


def test_vad_comparison_runs_and_siptool_meets_the_truth():
    out = subprocess.run([sys.executable, str(REPO / "bench" / "vad.py")], capture_output=True, text=True, check=True,
                         cwd=REPO, timeout=300).stdout
    rows = {m.group(1).strip(): m.groups()[1:] for m in
            re.finditer(r"^(siptool energy|webrtcvad mode \d)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)%\s+(\d+)$", out, re.M)}
    assert set(rows) == {"siptool energy"} | {f"webrtcvad mode {m}" for m in range(4)}, out
    edges, median, worst, within, unmatched = rows["siptool energy"]
    assert int(edges) >= 20 and within == "100" and unmatched == "0" and float(worst) <= 20
    assert all(int(r[0]) > 0 for r in rows.values())  # webrtcvad found speech too: the comparison is real
