"""Live capture points: HEP agents, each analysed by an Analyzer of its own (sans-I/O).

A HEP collector hears many capture agents at once (SBCs, proxies, probes). The same call crossing
two of them is seen twice, once per leg, under one Call-ID or two: one Analyzer per agent keeps
each leg whole and apart (Call.capture_point names the agent).

`CapturePoints` has the Analyzer's face, so a live run (drivers/live.LiveRun) drives it as it
drives one Analyzer: `feed(packet)` with packets that name their point (capture.hep.HepPacket),
the hooks `on_message` and `on_finding` (given to every point's Analyzer), `media` (the points'
media trackers as one, for the live board's figures and the `on_stream` hook), `sip_packets`, and
`finish()`, which merges the points' Reports (combine.merge) with what the source found about the
run (`hep_findings`: messages refused or unreadable, datagrams dropped).
"""

from __future__ import annotations

from ..capture import CaptureInfo, Packet
from ..report.model import Finding, Report, Severity
from . import combine
from .session import Analyzer, _media_tracker
from .thresholds import DEFAULT, Thresholds

MAX_POINTS = 256  # agents analysed apart; packets of any further agent share one Analyzer
OTHER = "(other agents)"
NO_AGENT = "(no agent ID)"


class PointsMedia:
    """The capture points' media trackers read as one (analysis/media.MediaTracker's live side)."""

    def __init__(self) -> None:
        self.trackers: list = []
        self._on_stream = None

    def add(self, tracker) -> None:
        tracker.on_stream = self._on_stream
        self.trackers.append(tracker)

    @property
    def on_stream(self):
        return self._on_stream

    @on_stream.setter
    def on_stream(self, hook) -> None:
        self._on_stream = hook
        for tracker in self.trackers:
            tracker.on_stream = hook

    def live_figures(self, calls: list, seconds: float) -> dict:
        out: dict = {}
        for tracker in self.trackers:
            out.update(tracker.live_figures(calls, seconds))
        return out


class CapturePoints:
    """One Analyzer per capture point, made when the point first sends."""

    def __init__(self, thresholds: Thresholds = DEFAULT, max_points: int = MAX_POINTS) -> None:
        self.thresholds = thresholds
        self.max_points = max_points
        self.analyzers: dict[str, Analyzer] = {}
        self._info: dict[str, CaptureInfo] = {}
        self.media = PointsMedia()
        self._on_message = self._on_finding = None

    @property
    def on_message(self):
        return self._on_message

    @on_message.setter
    def on_message(self, hook) -> None:
        self._on_message = hook
        for analyzer in self.analyzers.values():
            analyzer.on_message = hook

    @property
    def on_finding(self):
        return self._on_finding

    @on_finding.setter
    def on_finding(self, hook) -> None:
        self._on_finding = hook
        for analyzer in self.analyzers.values():
            analyzer.on_finding = hook

    @property
    def sip_packets(self) -> int:
        return sum(a.sip_packets for a in self.analyzers.values())

    def feed(self, pkt: Packet) -> None:
        """A packet from a capture point: its `point` (capture.hep.HepPacket) says which."""
        point = getattr(pkt, "point", "") or NO_AGENT
        analyzer = self.analyzers.get(point)
        if analyzer is None:
            point, analyzer = self._new_point(point)
        info = self._info[point]
        info.packets += 1
        info.size_bytes += len(pkt.payload)
        if info.first_time is None:
            info.first_time = pkt.time
        info.last_time = pkt.time if info.last_time is None else max(info.last_time, pkt.time)
        analyzer.feed(pkt)

    def _new_point(self, point: str) -> tuple[str, Analyzer]:
        """The Analyzer of a point not seen before (OTHER's once there are max_points)."""
        if len(self.analyzers) >= self.max_points:
            point = OTHER
            if point in self.analyzers:
                return point, self.analyzers[point]
        media = _media_tracker()
        self.media.add(media)
        analyzer = self.analyzers[point] = Analyzer(media=media, thresholds=self.thresholds,
                                                    on_message=self._on_message, on_finding=self._on_finding)
        self._info[point] = CaptureInfo(path=point, format="hep")
        return point, analyzer

    def finish(self, info: CaptureInfo, skipped: dict[str, int] | None = None,
               incomplete_fragments: list[list[int]] | None = None,
               source_findings: list[Finding] | None = None) -> Report:
        """The merged Report, named by `info.path` (the listener); `skipped` and `source_findings` are
        the source's (HEP messages not analysed, refused, unreadable, dropped)."""
        if not self.analyzers:  # nothing arrived: the source's own report
            return Analyzer(thresholds=self.thresholds).finish(info, skipped, incomplete_fragments, source_findings)
        reports = [combine.stamp(analyzer.finish(self._info[point]), point)
                   for point, analyzer in self.analyzers.items()]
        merged = combine.merge(reports, info.path, f"{len(reports)} HEP capture agent(s), each analysed apart",
                               findings=list(source_findings or ()))
        merged.capture.format = info.format or "hep"
        for why, n in (skipped or {}).items():
            merged.capture.skipped[why] = merged.capture.skipped.get(why, 0) + n
        return merged


def received(receiver, name: str = "hep", drops: int = 0) -> tuple[CaptureInfo, dict[str, int], list, list[Finding]]:
    """What a HEP receiver (capture.hep.HepReceiver) says of a run, as a live source's `finish()` gives
    it: the messages received, those not analysed by reason, and the findings about them."""
    info = CaptureInfo(path=name, format="hep", packets=receiver.messages, first_time=receiver.first_time,
                       last_time=receiver.last_time)
    return info, dict(receiver.skipped), [], hep_findings(receiver, drops)


def hep_findings(receiver, drops: int = 0) -> list[Finding]:
    """HEP messages that could not be read, were refused for their auth key, or were dropped by the
    kernel before siptool read them (`drops`: the UDP socket's own count)."""
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
    if drops:
        total = receiver.messages + drops
        out.append(Finding(
            code="hep.dropped", severity=Severity.ERROR,
            title=f"the kernel dropped {drops} of {total} HEP datagrams ({100.0 * drops / total:.2f}%)",
            explanation="The UDP receive buffer of the HEP listener was full when they arrived (the agents sent "
                        "faster than siptool read them), so calls and messages are missing from this report.",
            fix="Raise the receive buffer limit (sysctl net.core.rmem_max; siptool asks for 4 MB), send HEP over "
                "TCP (tcp:HOST:PORT), or spread the agents over several collectors.",
            evidence={"received": receiver.messages, "kernel_drops": drops}))
    return out


def hep_unsent(sent: int, failed: int, collector: str) -> Finding | None:
    """HEP messages a capture could not send to its collector (capture --hep): the collector's view
    of the calls has holes, siptool's own report has not."""
    if not failed:
        return None
    return Finding(
        code="hep.unsent", severity=Severity.WARNING,
        title=f"{failed} of {sent + failed} HEP messages could not be sent to {collector}",
        explanation="The collector was unreachable or refused the connection for a while (siptool retries a TCP "
                    "connection at most once a second), so it is missing those SIP messages. This report, made "
                    "from the capture itself, is whole.",
        fix="Check that the collector listens on that address and transport, and that no firewall is in the way.",
        evidence={"sent": sent, "failed": failed, "collector": collector})
