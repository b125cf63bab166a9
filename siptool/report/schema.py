"""JSON Schema of the report, derived from the dataclasses in model.py (so it cannot drift).

`python -m siptool.report.schema > docs/report.schema.json` regenerates the committed copy.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any

from . import model
from .jsonout import RENAMED

_SCALARS = {int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
            bool: {"type": "boolean"}, type(None): {"type": "null"}}


def _type(tp, defs: dict) -> dict:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is Any:
        return {}
    if isinstance(tp, type) and issubclass(tp, enum.StrEnum):  # Severity: a string, one of its values
        return {"type": "string", "enum": [m.value for m in tp]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_type(a, defs) for a in args]}
    if origin is list:
        return {"type": "array", "items": _type(args[0], defs) if args else {}}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type(args[1], defs) if args else {}}
    if dataclasses.is_dataclass(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder against recursion
            defs[name] = _object(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON type for {tp!r}")


def _object(cls, defs: dict) -> dict:
    hints = typing.get_type_hints(cls)
    props, optional = {}, set()
    for f in dataclasses.fields(cls):
        if f.metadata.get("optional"):  # left out of the JSON when None (model.OPTIONAL)
            optional.add(RENAMED.get(f.name, f.name))
        if f.name == "schema_version":
            props[f.name] = {"const": model.SCHEMA_VERSION}
            continue
        props[RENAMED.get(f.name, f.name)] = _type(hints[f.name], defs)
    doc = (cls.__doc__ or "").strip().splitlines()
    return {"type": "object", "description": doc[0] if doc else cls.__name__, "properties": props,
            "required": sorted(set(props) - optional), "additionalProperties": False}


def report_schema() -> dict:
    defs: dict = {}
    root = _object(model.Report, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"siptool-report-{model.SCHEMA_VERSION}", "title": "siptool analyze --json report",
            **root, "$defs": defs}


if __name__ == "__main__":
    print(json.dumps(report_schema(), indent=1))
