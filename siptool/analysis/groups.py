"""Repeated findings shown once: a capture of 1,148 calls refused with 403 gets one entry with the
count and the calls, not 1,148 paragraphs. Each call keeps its own findings in the report."""

from __future__ import annotations

from ..report.model import FindingGroup, Report


def group_findings(report: Report) -> list[FindingGroup]:
    """Groups by (code, severity), worst first, then in order of first appearance."""
    groups: dict[tuple[str, str], FindingGroup] = {}
    titles: dict[tuple[str, str], set[str]] = {}
    for f in report.all_findings():
        key = (f.code, f.severity)
        g = groups.get(key)
        if g is None:
            g = groups[key] = FindingGroup(code=f.code, severity=f.severity, title=f.title, count=0, first=f)
            titles[key] = set()
        g.count += 1
        titles[key].add(f.title)
        if f.call is not None and (not g.calls or g.calls[-1] != f.call):
            g.calls.append(f.call)
    for key, g in groups.items():
        g.calls = sorted(set(g.calls))
        if len(titles[key]) > 1:
            g.title = f"{g.first.title} (and {g.count - 1} more like it)"
    return sorted(groups.values(), key=lambda g: g.severity.rank)
