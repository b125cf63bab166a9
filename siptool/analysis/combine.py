"""Reports of several capture points made one: a set of capture files, or HEP agents.

Each capture point (a timeline of capture files, or a HEP capture agent) is analysed by an Analyzer
of its own, so a Call-ID seen at two points is two calls: one per leg, each with its
`capture_point`, never one call with the other leg's messages mixed into its ladder. `merge()` puts
the points' Reports together: calls in start order, numbered again; metrics and finding groups
computed again over all of them.
"""

from __future__ import annotations

import bisect

from ..report.model import CaptureSummary, Finding, Report, SourceFile
from .groups import group_findings
from .metrics import compute_metrics
from .session import number_calls
from .sizing import resize


def stamp(report: Report, point: str, sources: list[SourceFile] = ()) -> Report:
    """Mark every call, stream and finding of one capture point's Report with the point and (for
    files) the file its first frame came from; `sources` in frame order."""
    starts = [s.first_frame for s in sources]

    def file_of(frame: int | None) -> str | None:
        if len(sources) == 1:
            return sources[0].file
        if not sources or frame is None:
            return None
        return sources[max(bisect.bisect_right(starts, frame) - 1, 0)].file

    for call in report.calls:
        call.capture_point = point
        call.source_file = file_of(call.ladder[0].frame if call.ladder else None)
        for stream in call.streams:
            stream.capture_point, stream.source_file = point, file_of(stream.first_frame)
        for f in call.findings:
            f.capture_point, f.source_file = point, call.source_file
    for stream in report.streams:
        stream.capture_point, stream.source_file = point, file_of(stream.first_frame)
    for f in report.findings:
        f.capture_point, f.source_file = point, file_of(f.frames[0] if f.frames else None)
    report.sources = list(sources)
    return report


def merge(reports: list[Report], name: str, grouping: str = "", findings: list[Finding] = ()) -> Report:
    """One Report of several capture points' (each stamped). `name` stands for the set in
    `capture.file` (a folder, or "3 files"); `findings`: about the set itself."""
    summary = _summary([r.capture for r in reports], name)
    out = Report(capture=summary, version=reports[0].version if reports else "", grouping=grouping)
    for r in reports:
        out.calls += r.calls
        out.streams += r.streams
        out.findings += r.findings
        out.sources += r.sources
    out.findings += findings
    out.calls.sort(key=lambda c: c.start)  # stable: a point's own order is kept for equal starts
    number_calls(out)
    for call in out.calls:
        for f in call.findings:
            f.call = call.number
    out.metrics = compute_metrics(out.calls)
    resize(out)  # over every call of the set: a call seen at two capture points holds a channel at each
    out.finding_groups = group_findings(out)
    return out


def _summary(parts: list[CaptureSummary], name: str) -> CaptureSummary:
    """The capture section of a set: sums, the earliest and latest times, every link type."""
    firsts = [p.first_time for p in parts if p.first_time is not None]
    lasts = [p.last_time for p in parts if p.last_time is not None]
    skipped: dict[str, int] = {}
    for p in parts:
        for why, n in p.skipped.items():
            skipped[why] = skipped.get(why, 0) + n
    formats = sorted({p.format for p in parts if p.format})
    out = CaptureSummary(
        file=name, format="+".join(formats), compressed=any(p.compressed for p in parts),
        link_types=sorted({t for p in parts for t in p.link_types}), packets=sum(p.packets for p in parts),
        bytes=sum(p.bytes for p in parts), first_time=min(firsts, default=None), last_time=max(lasts, default=None),
        truncated="; ".join(f"{p.file}: {p.truncated}" for p in parts if p.truncated) or None, skipped=skipped,
        sip_packets=sum(p.sip_packets for p in parts), tls_packets=sum(p.tls_packets for p in parts),
        tls_decrypted=sum(p.tls_decrypted for p in parts))
    if out.first_time is not None and out.last_time is not None:
        out.duration_s = round(out.last_time - out.first_time, 6)
    return out
