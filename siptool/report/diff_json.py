"""`siptool diff --json`: the CaptureDiff as JSON, schema `siptool.diff/1` (docs/json-schema.md).
Within a major version fields are only ever added. `python -m siptool.report.diff_json` prints its
JSON Schema (the committed copy is docs/diff.schema.json)."""

from __future__ import annotations

import json

from . import diff_model
from .jsonout import _clean
from .schema import _object


def diff_dict(diff: diff_model.CaptureDiff) -> dict:
    d = _clean(diff)
    ordered = {"schema": d.pop("schema"), "tool": d.pop("tool"), "version": d.pop("version")}
    ordered.update(d)
    return ordered


def dumps(diff: diff_model.CaptureDiff, indent: int | None = 2) -> str:
    return json.dumps(diff_dict(diff), indent=indent, ensure_ascii=False)


def diff_schema() -> dict:
    """JSON Schema of diff_dict's output, derived from the dataclasses (so it cannot drift)."""
    defs: dict = {}
    root = _object(diff_model.CaptureDiff, defs)
    root["properties"]["schema"] = {"const": diff_model.DIFF_SCHEMA}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": diff_model.DIFF_SCHEMA,
            "title": "siptool diff --json", **root, "$defs": defs}


if __name__ == "__main__":
    print(json.dumps(diff_schema(), indent=1))
