"""The versioned JSON form of a Report (schema in docs/json-schema.md).

Field names are stable within a major schema_version; new fields may be added in minor versions.
"""

from __future__ import annotations

import dataclasses
import json
import math

from .model import Call, Report

RENAMED = {"from_uri": "from", "to_uri": "to"}


_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}
_PLAIN = (str, int, bool, type(None))


_OMIT: dict[type, frozenset[str]] = {}  # classes with fields left out when None (model.OPTIONAL)


def _names(cls) -> tuple[tuple[str, str], ...]:
    names = _FIELDS.get(cls)
    if names is None:
        fields = dataclasses.fields(cls)
        omit = frozenset(f.name for f in fields if f.metadata.get("optional"))
        if omit:
            _OMIT[cls] = omit
        names = _FIELDS[cls] = tuple((f.name, RENAMED.get(f.name, f.name)) for f in fields)
    return names


def _object(value, names, omit) -> dict:
    return {key: _clean(v) for name, key in names if (v := getattr(value, name)) is not None or name not in omit}


_EXACT_PLAIN = frozenset((str, int, bool, type(None)))


def _clean(value):
    cls = type(value)
    if cls in _EXACT_PLAIN:  # the common cases first, by exact type
        return value
    if cls is float:
        return round(value, 6) if math.isfinite(value) else None
    names = _FIELDS.get(cls)
    if names is not None:
        omit = _OMIT.get(cls)
        if omit is not None:
            return _object(value, names, omit)
        return {key: _clean(getattr(value, name)) for name, key in names}
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if dataclasses.is_dataclass(value):
        names = _names(type(value))
        return _object(value, names, _OMIT.get(type(value), frozenset()))
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def call_dict(call: Call) -> dict:
    return _clean(call)


def report_dict(report: Report) -> dict:
    d = _clean(report)
    ordered = {"schema_version": d.pop("schema_version"), "tool": d.pop("tool"), "version": d.pop("version")}
    ordered.update(d)
    return ordered


_COMPACT = {"ensure_ascii": False, "separators": (",", ":")}


def dumps(report: Report, indent: int | None = 2) -> str:
    """indent=None gives compact JSON through the C encoder (several times faster on big reports)."""
    if indent is None:
        return json.dumps(report_dict(report), **_COMPACT)
    return json.dumps(report_dict(report), indent=indent, ensure_ascii=False)


def write(report: Report, out, indent: int | None = 2) -> None:
    """`dumps(report, indent)` and a newline, to the text stream `out`. Compact output is written a
    call at a time, so the JSON of the whole report is never in memory at once."""
    if indent is not None or not report.calls:
        out.write(dumps(report, indent) + "\n")
        return
    marker = "\x00calls\x00"
    d = report_dict(dataclasses.replace(report, calls=[]))
    d["calls"] = marker
    head, tail = json.dumps(d, **_COMPACT).split(json.dumps(marker), 1)
    out.write(head + "[")
    for i, call in enumerate(report.calls):
        out.write(("," if i else "") + json.dumps(_clean(call), **_COMPACT))
    out.write("]" + tail + "\n")
