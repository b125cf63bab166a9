"""The Report as Parquet tables (pyarrow), for DuckDB, Spark or Trino over many reports.

A renderer: it reads the Report and computes nothing. Three tables, one row each:
- `calls.parquet`: every call (the Call fields that are single values; times as UTC timestamps);
- `streams.parquet`: every RTP stream, with its call's `number` (null outside any call);
- `findings.parquet`: every finding, `evidence` as JSON text.
Each row has `source_file` and `capture_point` (null for one capture: then `capture_file` says which).
Column types come from the report model, so tables written from different reports (days, probes)
read as one dataset: `SELECT ... FROM 'tables/*/calls.parquet'`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing

from .model import Call, Finding, Report, Stream

TIMES = frozenset(("start", "end", "first_provisional", "ringing", "answer"))  # epoch seconds -> timestamps
TABLES = ("calls", "streams", "findings")


def _arrow_type(tp, name: str):
    import pyarrow as pa

    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _arrow_type(args[0], name) if len(args) == 1 else None
    if name in TIMES and tp is float:
        return pa.timestamp("us", tz="UTC")
    if tp == list[int]:
        return pa.list_(pa.int64())
    if tp == dict[str, typing.Any]:
        return pa.string()  # JSON text
    return {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}.get(tp)


def _columns(cls, skip: tuple[str, ...] = ()) -> list[tuple[str, object]]:
    """(field, arrow type) for the fields of `cls` that are one value (lists of records left out)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        arrow = _arrow_type(hints[f.name], f.name) if f.name not in skip else None
        if arrow is not None:
            out.append((f.name, arrow))
    return out


def _value(obj, name: str):
    value = getattr(obj, name)
    if name == "evidence":
        return json.dumps(value, default=str, ensure_ascii=False)
    if name in TIMES and value is not None:
        return int(round(value * 1e6))  # microseconds since the epoch, the column's unit
    return value


def _table(rows: list[tuple[dict, object]], cls, skip: tuple[str, ...] = ()):
    """rows: (leading columns, model object). Leading columns are strings or integers."""
    import pyarrow as pa

    columns = _columns(cls, skip)
    lead = {"capture_file": pa.string(), "call": pa.int64()}
    fields = [pa.field(k, lead[k]) for k in lead] + [pa.field(n, t) for n, t in columns]
    data = {k: [r[0][k] for r in rows] for k in lead}
    for name, _ in columns:
        data[name] = [_value(obj, name) for _, obj in rows]
    return pa.table(data, schema=pa.schema(fields))


def tables(report: Report) -> dict[str, object]:
    """The three pyarrow Tables of a Report."""
    capture = report.capture.file
    calls = [({"capture_file": capture, "call": c.number}, c) for c in report.calls]
    streams = [({"capture_file": capture, "call": c.number}, s) for c in report.calls for s in c.streams]
    streams += [({"capture_file": capture, "call": None}, s) for s in report.streams]
    findings = [({"capture_file": capture, "call": f.call}, f) for f in report.all_findings()]
    return {"calls": _table(calls, Call, skip=("number",)), "streams": _table(streams, Stream),
            "findings": _table(findings, Finding, skip=("call",))}


def write_tables(report: Report, folder: str) -> list[str]:
    """Write calls.parquet, streams.parquet and findings.parquet into `folder` (made if missing).
    Returns the paths."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        from ..errors import SiptoolError

        raise SiptoolError("--parquet needs pyarrow: pip install 'siptool[parquet]'") from None
    os.makedirs(folder, exist_ok=True)
    out = []
    for name, table in tables(report).items():
        path = os.path.join(folder, f"{name}.parquet")
        pq.write_table(table, path)
        out.append(path)
    return out
