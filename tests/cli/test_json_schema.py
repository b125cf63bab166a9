"""The JSON report validates against docs/report.schema.json, which matches the model it documents."""

from __future__ import annotations

import json

import jsonschema
import pytest
from support import FIXTURES, REPO

from siptool.analysis.session import analyze_file
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
