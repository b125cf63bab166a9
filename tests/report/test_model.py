"""The report model's enums: a Finding's severity is a Severity whatever it was built with, ranks worst
first, and reaches JSON and --fail-on as its plain value."""

from __future__ import annotations

import json

import pytest

from siptool.report.jsonout import dumps
from siptool.report.model import CaptureSummary, Finding, Report, Severity


def test_severity_from_text_and_rank():
    f = Finding(code="x", severity="warning", title="t", explanation="e")
    assert f.severity is Severity.WARNING and f.severity == "warning"
    assert [s.rank for s in (Severity.CRITICAL, Severity.ERROR, Severity.WARNING, Severity.INFO)] == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        Finding(code="x", severity="warnign", title="t", explanation="e")


def test_severity_in_json_is_its_value():
    report = Report(capture=CaptureSummary(file="f", format="pcap"))
    report.findings = [Finding(code="a", severity=Severity.INFO, title="t", explanation="e"),
                       Finding(code="b", severity=Severity.CRITICAL, title="t", explanation="e")]
    for indent in (None, 2):
        data = json.loads(dumps(report, indent=indent))
        assert [f["severity"] for f in data["findings"]] == ["info", "critical"]
    assert [f.code for f in report.all_findings()] == ["b", "a"]  # worst first


def test_fail_on_levels_follow_the_enum():
    from siptool.commands.common import fail_level

    assert [fail_level(s.value) for s in Severity] == [0, 1, 2, 3]
