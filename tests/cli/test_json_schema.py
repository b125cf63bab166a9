"""The JSON report validates against docs/report.schema.json, which matches the model it documents."""

from __future__ import annotations

import json

import jsonschema
import pytest
from support import FIXTURES, REPO

from siptool.drivers.files import analyze_file
from siptool.report.jsonout import report_dict
from siptool.report.schema import report_schema

SCHEMA_FILE = REPO / "docs" / "report.schema.json"


def test_committed_schema_is_current():
    # a model change must come with a regenerated schema (python -m siptool.report.schema)
    assert json.loads(SCHEMA_FILE.read_text()) == report_schema()


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.pcap")), ids=lambda p: p.name)
def test_reports_validate(path):
    jsonschema.validate(report_dict(analyze_file(path)), report_schema())


def test_schema_rejects_unknown_fields():
    data = report_dict(analyze_file(FIXTURES / "call_ok.pcap"))
    data["calls"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, report_schema())


@pytest.mark.parametrize("name", ["calls_mixed.pcap", "call_ok.pcap"])
def test_streamed_json_is_the_same_text(name):
    """`analyze --json` into a pipe writes the report a call at a time: the same text as one dumps."""
    import io

    from siptool.report.jsonout import dumps, write

    report = analyze_file(FIXTURES / name)
    assert len(report.calls) >= 1
    out = io.StringIO()
    write(report, out, indent=None)
    assert out.getvalue() == dumps(report, indent=None) + "\n"
    assert json.loads(out.getvalue())["calls"][0]["call_id"] == report.calls[0].call_id
