"""docs/findings.md lists every finding code the source can emit (so the catalogue cannot drift)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_finding_code_is_documented():
    source = "\n".join(p.read_text() for p in (REPO / "siptool").rglob("*.py"))
    codes = set(re.findall(r'code=f?"([a-z_]+\.[a-z_0-9.{}]+)"', source))
    assert len(codes) > 30  # the pattern still finds them
    codes = {re.sub(r"\{code\}$", "<code>", c) for c in codes}
    documented = set(re.findall(r"^\| `([^`]+)` \|", (REPO / "docs" / "findings.md").read_text(), re.M))
    assert codes - documented == set(), "add these to docs/findings.md"
    assert documented - codes == set(), "docs/findings.md lists codes the source no longer emits"
