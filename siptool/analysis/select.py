"""Choosing calls: `--filter` expressions and `--call` lookups shared by the subcommands.

A call keeps its number (Call.number) whatever is filtered out, so `analyze`, `ladder` and `plot`
name the same call the same way."""

from __future__ import annotations

import re

from ..errors import SiptoolError
from ..report.model import Call, Report
from .groups import group_findings
from .metrics import compute_metrics
from .sizing import resize

# Filter words, what they keep (documented in `siptool analyze --help` and docs/json-schema.md)
STATES = {
    "answered": lambda c: c.kind == "call" and c.answer is not None,  # got a 2xx, over or still up
    "up": lambda c: c.state == "answered",  # answered and still up when the capture ended
    "completed": lambda c: c.state == "completed",  # answered and ended by BYE (also: non-INVITE 2xx)
    "unanswered": lambda c: c.kind == "call" and c.answer is None,
    "failed": lambda c: c.state == "failed",  # a 3xx-6xx final response
    "cancelled": lambda c: c.state == "cancelled",
    "ringing": lambda c: c.state == "in-progress",  # no final response in the capture
    "in-progress": lambda c: c.state == "in-progress",
    "no-response": lambda c: c.state == "no-response",
}
FILTER_HELP = ("Keep calls matching: a status (486) or class (4xx); a state: " + ", ".join(STATES)
               + "; or a text found in the Call-ID, From or To (a number: +4930123). Repeat to AND.")


def matches(call: Call, expr: str) -> bool:
    """'486' exact status, '4xx' status class, a state word, else a substring of Call-ID/from/to."""
    expr = expr.strip()
    if re.fullmatch(r"[1-6][0-9][0-9]", expr):
        return call.final_status == int(expr)
    if re.fullmatch(r"[1-6]xx", expr, re.I):
        return call.final_status is not None and call.final_status // 100 == int(expr[0])
    test = STATES.get(expr.lower())
    if test is not None:
        return test(call)
    low = expr.lower()
    return any(low in (v or "").lower() for v in (call.call_id, call.from_uri, call.to_uri))


def filter_report(report: Report, exprs: list[str]) -> Report:
    """Keep calls matching every expression; metrics, sizing and finding groups are recomputed over
    the calls kept (capture-wide findings stay). Numbers are kept."""
    if not exprs:
        return report
    report.calls = [c for c in report.calls if all(matches(c, e) for e in exprs)]
    report.metrics = compute_metrics(report.calls)
    resize(report)
    report.finding_groups = group_findings(report)
    return report


def no_match(exprs: list[str], total: int) -> str:
    shown = " ".join(f"--filter {e!r}" for e in exprs)
    return f"no call matches {shown} ({total} call{'s' if total != 1 else ''} in the capture)"


def find_call(report: Report, key: str) -> list[Call]:
    """`--call KEY`: a call number (as every output shows it) or a whole Call-ID. A Call-ID shared by a
    REGISTER and an INVITE session gives both. Raises SiptoolError, with suggestions, when none."""
    key = key.strip()
    if key.lstrip("#").isdigit():
        n = int(key.lstrip("#"))
        found = [c for c in report.calls if c.number == n]
        if found:
            return found
        last = max((c.number for c in report.calls), default=0)
        raise SiptoolError(f"no call number {n} in this capture (calls are numbered 1 to {last})"
                           if last else "no calls in this capture")
    found = [c for c in report.calls if c.call_id == key]
    if found:
        return found
    near = [c for c in report.calls if key.lower() in c.call_id.lower()][:5]
    hint = "; did you mean " + ", ".join(f"call {c.number} ({c.call_id})" for c in near) + "?" if near else \
        " (give a call number as analyze shows it, or a whole Call-ID; --filter TEXT matches numbers)"
    raise SiptoolError(f"no call has Call-ID {key!r}{hint}")
