"""The README shows what siptool really prints: its analyze and ladder examples are run, and every
line shown (elisions aside) must appear in the real output, in order; its exit-code table is the enum."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from siptool.status import ExitStatus

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = [b for b in re.findall(r"```text\n(.*?)```", README, re.S)
          if re.match(r"\$ (COLUMNS=\d+ )?siptool (analyze|ladder|diff) fixtures/", b)]


def _command(first: str) -> tuple[list[str], int]:
    """'$ COLUMNS=80 siptool ladder X --call 4' or '$ siptool analyze X   # on a 100-column terminal'."""
    width = re.search(r"COLUMNS=(\d+)|# on an? (\d+)-column", first)
    cols = int(next(g for g in width.groups() if g)) if width else 80
    words = first.split("#")[0].split()[1:]
    words = [w for w in words if not w.startswith("COLUMNS=")]
    return words[1:], cols


def test_the_readme_has_examples_to_check():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split("\n")[0][2:40])
def test_readme_example_is_the_real_output(block):
    first, *shown = block.rstrip("\n").split("\n")
    args, cols = _command(first)
    env = dict(os.environ, COLUMNS=str(cols), NO_COLOR="1")
    out = subprocess.run([sys.executable, "-m", "siptool", *args], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120).stdout
    real = [ln.rstrip() for ln in out.splitlines()]
    at = 0
    for line in shown:
        if line == "..." or line.endswith(" ..."):
            continue
        try:
            at = real.index(line.rstrip(), at) + 1
        except ValueError:
            pytest.fail(f"README line not in the real output (or out of order): {line!r}")


def test_exit_code_table_is_the_enum():
    table = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `(\d+)` \| `(\w+)` \|", table, re.M))
    assert rows == {str(int(s)): s.name for s in ExitStatus}
    for listed in re.findall(r"[Ee]xit codes?:? (.*?)(?:\n\n|$)", README, re.S):
        for code in re.findall(r"`(\d+)`", listed):
            assert int(code) in {int(s) for s in ExitStatus}, f"README names exit code {code}, not in ExitStatus"
