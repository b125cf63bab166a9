"""Live capture points: HEP agents, each analysed by an Analyzer of its own (sans-I/O).

A HEP collector hears many capture agents at once (SBCs, proxies, probes). The same call crossing
two of them is seen twice, once per leg, under one Call-ID or two: one Analyzer per agent keeps
each leg whole and apart (Call.capture_point names the agent). `feed(point, packet)` as messages
arrive (capture.hep.HepReceiver gives both); `finish()` merges the points' Reports
(combine.merge) with what the receiver refused or could not read as findings.
"""

from __future__ import annotations

from ..capture import CaptureInfo, Packet
from ..report.model import Finding, Report, Severity
from . import combine
from .session import Analyzer, _media_tracker
from .thresholds import DEFAULT, Thresholds

MAX_POINTS = 256  # agents analysed apart; packets of any further agent share one Analyzer
OTHER = "(other agents)"


class CapturePoints:
    """One Analyzer per capture point, made when the point first sends."""

    def __init__(self, thresholds: Thresholds = DEFAULT, max_points: int = MAX_POINTS) -> None:
        self.thresholds = thresholds
        self.max_points = max_points
        self.analyzers: dict[str, Analyzer] = {}
        self._info: dict[str, CaptureInfo] = {}

    def feed(self, point: str, pkt: Packet) -> None:
        point = point or "(no agent ID)"
        analyzer = self.analyzers.get(point)
        if analyzer is None:
            if len(self.analyzers) >= self.max_points:
                point = OTHER
                analyzer = self.analyzers.get(point)
            if analyzer is None:
                analyzer = self.analyzers[point] = Analyzer(media=_media_tracker(), thresholds=self.thresholds)
                self._info[point] = CaptureInfo(path=point, format="hep")
        info = self._info[point]
        info.packets += 1
        info.size_bytes += len(pkt.payload)
        if info.first_time is None:
            info.first_time = pkt.time
        info.last_time = pkt.time if info.last_time is None else max(info.last_time, pkt.time)
        analyzer.feed(pkt)

    def finish(self, name: str, receiver=None) -> Report:
        """The merged Report; `receiver` (a HepReceiver) adds its refused and unreadable messages."""
        reports = []
        for point, analyzer in self.analyzers.items():
            report = analyzer.finish(self._info[point])
            reports.append(combine.stamp(report, point))
        extra = hep_findings(receiver) if receiver is not None else []
        merged = combine.merge(reports, name, f"{len(reports)} HEP capture agent(s), each analysed apart",
                               findings=extra)
        if receiver is not None:
            merged.capture.format = "hep"
            for why, n in receiver.skipped.items():
                merged.capture.skipped[why] = merged.capture.skipped.get(why, 0) + n
        return merged


def hep_findings(receiver) -> list[Finding]:
    """HEP messages that could not be read, or were refused for their auth key."""
    out = []
    bad = [r for r in receiver.rejects if r[1] != "wrong or missing auth key"]
    if receiver.malformed:
        number, reason, sender = bad[0] if bad else (0, "", "")
        out.append(Finding(
            code="hep.malformed", severity=Severity.WARNING,
            title=f"{receiver.malformed} HEP message(s) could not be read (first: #{number}, {reason})",
            explanation=f"Of {receiver.messages} HEP messages received, {receiver.malformed} are not valid HEP v3 "
                        f"(HEP3 specification rev. 37): the first, #{number} from {sender or 'a TCP stream'}: "
                        f"{reason}. They were left out; everything else was analysed.",
            fix="Check the sending agent's HEP version (siptool reads HEP v3) and that nothing else sends to "
                "this port.",
            frames=[r[0] for r in bad], evidence={"messages": receiver.messages, "malformed": receiver.malformed,
                                                  "senders": sorted({r[2] for r in bad if r[2]})}))
    if receiver.refused:
        refused = [r for r in receiver.rejects if r[1] == "wrong or missing auth key"]
        out.append(Finding(
            code="hep.auth_refused", severity=Severity.ERROR,
            title=f"{receiver.refused} HEP message(s) refused: wrong or missing auth key",
            explanation=f"{receiver.refused} of {receiver.messages} HEP messages did not carry the auth key this "
                        "collector was given, so they were dropped unread: calls from those agents are missing.",
            fix="Give the agents the same HEP password (capture_password in heplify, hep_capture_password..., "
                "eep.send.pass in sngrep) or check who else sends HEP here.",
            frames=[r[0] for r in refused], evidence={"senders": sorted({r[2] for r in refused if r[2]})}))
    return out
