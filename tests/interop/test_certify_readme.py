"""The README's "Certifying a trunk" is what siptool prints: its suite and commands run in the lab they
describe (tests/interop/certify_lab.py), and every line shown (elisions aside) must match a line of
the real output, in order, with its numbers, ports and Call-IDs free to differ."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from interop.certify_lab import CertifyLab
from support import REPO

pytestmark = pytest.mark.interop
SECTION = (REPO / "README.md").read_text().split("## Certifying a trunk", 1)[1].split("\n## ", 1)[0]
SUITE = re.search(r"```toml\n(# certify\.toml\n.*?)```", SECTION, re.S).group(1)
BLOCKS = {b.split("\n", 1)[0]: b for b in re.findall(r"```text\n(\$ siptool (?:check|call) .*?)```", SECTION, re.S)}
README_DNS = "127.0.0.53"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = CertifyLab(tmp_path_factory.mktemp("certify"))
    try:
        lab.wait()
        yield lab
    finally:
        lab.stop()


def shape(line: str) -> re.Pattern:
    """The line with every number (and hex run holding a digit) free, and runs of spaces elastic."""
    words = []
    for word in line.split():
        parts = re.split(r"([0-9a-f]*\d[0-9a-f.]*)", word)
        words.append("".join(r"[0-9a-f.]+" if i % 2 else re.escape(p) for i, p in enumerate(parts)))
    return re.compile(r"\s+".join(words))


def matches(block: str, out: str) -> None:
    real = [ln.strip() for ln in out.splitlines()]
    at = 0
    for line in block.rstrip("\n").split("\n")[1:]:
        if line.strip() == "...":
            continue
        pattern = shape(line)
        found = next((i for i in range(at, len(real)) if pattern.fullmatch(real[i])), None)
        assert found is not None, f"README line not in the real output (or out of order): {line!r}\n{out}"
        at = found + 1


def run(lab: CertifyLab, first: str, cwd) -> subprocess.CompletedProcess:
    cols = re.search(r"# on an? (\d+)-column", first)
    args = first.split("#")[0].split()[2:]
    args = [a.replace(README_DNS, lab.dns.address) for a in args]
    return subprocess.run([sys.executable, "-m", "siptool", *args], capture_output=True, text=True, cwd=cwd,
                          env=dict(os.environ, NO_COLOR="1", COLUMNS=cols.group(1) if cols else "80"), timeout=300)


def test_the_readme_shows_three_runs():
    assert sorted(BLOCKS) == ["$ siptool call sip:100@degraded.trunk.test --dns-server 127.0.0.53 --target-timeout 1 -d 1"
                              " --jitter 300 --mos 2",
                              "$ siptool call sip:echo@sbc1.trunk.test --dns-server 127.0.0.53 --ramp 2:1:6 --hold 2"
                              " --jitter 300 --mos 2   # on a 100-column terminal",
                              "$ siptool check certify.toml   # on a 100-column terminal"]


@pytest.mark.parametrize("first", sorted(BLOCKS))
def test_readme_certification_output_is_real(lab, first, tmp_path):
    (tmp_path / "certify.toml").write_text(SUITE.replace(f'"{README_DNS}"', f'"{lab.dns.address}"'))
    done = run(lab, first, tmp_path)
    matches(BLOCKS[first], done.stdout)
    assert done.returncode == (1 if "--ramp" in first else 0), done.stdout + done.stderr
