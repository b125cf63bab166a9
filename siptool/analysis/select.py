"""Choosing calls: `--filter` expressions and `--call` lookups shared by the subcommands."""

from __future__ import annotations

import re

from ..report.model import Call, Report
from .metrics import compute_metrics

STATES = {"answered", "completed", "failed", "cancelled", "in-progress", "no-response"}


def matches(call: Call, expr: str) -> bool:
    """'486' exact status, '4xx' status class, a state name, else a substring of Call-ID/from/to."""
    expr = expr.strip()
    if re.fullmatch(r"\d{3}", expr):
        return call.final_status == int(expr)
    if re.fullmatch(r"[1-6]xx", expr, re.I):
        return call.final_status is not None and call.final_status // 100 == int(expr[0])
    if expr.lower() in STATES:
        return call.state == expr.lower()
    low = expr.lower()
    return any(low in (v or "").lower() for v in (call.call_id, call.from_uri, call.to_uri))


def filter_report(report: Report, exprs: list[str]) -> Report:
    """Keep calls matching every expression; metrics are recomputed over the calls kept."""
    if not exprs:
        return report
    report.calls = [c for c in report.calls if all(matches(c, e) for e in exprs)]
    report.metrics = compute_metrics(report.calls)
    return report


def find_call(report: Report, key: str) -> list[Call]:
    """By 1-based index in the call list, exact Call-ID, or Call-ID prefix/substring."""
    if key.isdigit() and 1 <= int(key) <= len(report.calls) and not any(c.call_id == key for c in report.calls):
        return [report.calls[int(key) - 1]]
    exact = [c for c in report.calls if c.call_id == key]
    if exact:
        return exact
    return [c for c in report.calls if c.call_id.startswith(key)] or \
        [c for c in report.calls if key in c.call_id]
