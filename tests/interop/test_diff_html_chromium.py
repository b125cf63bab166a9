"""`siptool diff --html` as a browser shows it: headless Chromium renders the page of each two-point
fixture; both ladders of every pair are there, with no text on text, under an arrowhead or off the
picture, and no console errors (the checks of test_pictures_chromium.py)."""

from __future__ import annotations

import pytest
from interop.test_pictures_chromium import browser, check, shots  # noqa: F401 - fixtures
from support import FIXTURES
from typer.testing import CliRunner

from siptool.cli import get_app
from siptool.drivers.files import analyze_file

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("case", ["diff_proxy", "diff_topoh", "diff_relay"])
def test_diff_page(browser, shots, tmp_path, case):  # noqa: F811 - pytest fixtures
    a, b = FIXTURES / f"{case}_a.pcap", FIXTURES / f"{case}_b.pcap"
    page = tmp_path / f"{case}.html"
    result = CliRunner().invoke(get_app(), ["diff", str(a), str(b), "--html", str(page)])
    assert result.exit_code == 0, result.output
    calls = [c for path in (a, b) for c in analyze_file(path).calls if c.kind == "call"]
    check(browser, page, shots, len(calls), sum(len(c.ladder) + len(c.streams) for c in calls))
