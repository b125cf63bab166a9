"""The streaming analyser: packets -> SIP calls (and media) -> Report.

`Analyzer` is sans-I/O: `feed(packet)` for each decoded packet, `finish()` for the Report. The
drivers (siptool/drivers: capture files, live runs; agent/tap.py for placed calls) just move packets
into it. State kept is per call and per flow, never per packet.
"""

from __future__ import annotations

from typing import Callable

from .. import __version__
from ..capture import CaptureInfo, Packet
from ..capture.reassembly import TcpStream
from ..report.model import Call, CaptureSummary, Finding, Report
from ..sip.dialogs import CallTracker, Hop, SipCall
from ..sip.framing import SipFramer
from ..sip.message import SipMessage, SipParseError, looks_like_sip, parse
from . import findings as rules
from .calls import fill, new_call
from .context import Context
from .groups import group_findings
from .judge import judge_call, judge_stream, mark_streams
from .kinds import classify_streams
from .media_rules import sip_header_nat
from .metrics import compute_metrics
from .sizing import DEFAULT_PLAN, SizingPlan, compute_sizing, concurrency_limit
from .thresholds import DEFAULT, Thresholds

TCP_PROBE_BYTES = 8192  # bytes of a TCP flow looked at before deciding it is not SIP
TLS_CONTENT_TYPES = (0x14, 0x15, 0x16, 0x17)


class _TcpFlow:
    __slots__ = ("stream", "framer", "seen", "time")

    def __init__(self) -> None:
        self.stream = TcpStream()
        self.framer = SipFramer()
        self.seen = 0
        self.time = 0.0  # of its latest segment


class _FlowEnd:
    """Where a message flushed at the end of a capture came from (no packet carried its end)."""

    __slots__ = ("src", "sport", "dst", "dport", "time", "frames")

    def __init__(self, key: tuple, time: float = 0.0) -> None:
        self.src, self.sport, self.dst, self.dport = key
        self.time, self.frames = time, None


class Analyzer:
    """Feed packets in capture order; `finish()` returns the Report.

    Two hooks let observers follow along without reading the state back: after each SIP message
    `on_message(msg, record, call)` (the parsed message, SIP's record of its call with this message
    last in its hops, and its Call in the Report: a live board, metrics, `diff` reading headers), and
    for each finding made while reading (a malformed message, a NAT address...) `on_finding(finding)`."""

    def __init__(self, media=None, thresholds: Thresholds = DEFAULT, sizing: SizingPlan = DEFAULT_PLAN,
                 on_message: Callable[[SipMessage, SipCall, Call], None] | None = None,
                 on_finding: Callable[[Finding], None] | None = None) -> None:
        self.thresholds = thresholds
        self.sizing = sizing
        self.on_message = on_message
        self.on_finding = on_finding
        self.tracker = CallTracker()
        self._calls: dict[int, Call] = {}  # id(SipCall record) -> its Call in the Report
        self._last_sip: tuple[int, float] | None = None  # frame and time of the latest SIP message
        self._clock_jumps: list[tuple[int, int, float]] = []  # (frame, previous frame, seconds moved)
        self._large: dict[int, tuple[Call, list]] = {}  # id(call) -> requests over UDP_LIMIT sent on UDP
        self.findings: list[Finding] = []
        self.sip_packets = 0
        self.tls_packets = 0
        self._tls_flows: dict[tuple, list[int]] = {}
        self._tcp: dict[tuple, _TcpFlow] = {}
        self._tcp_gaps = 0  # holes in TCP streams already closed
        self._not_sip: set[tuple] = set()
        self._malformed = 0
        self._nat_reported: set[str] = set()  # calls with a private Contact/Via finding already
        self.media = media  # optional media tracker with feed(packet) and finish(report)

    def feed(self, pkt: Packet) -> None:
        if pkt.transport == "udp":
            payload = pkt.payload
            if not payload:
                return
            first = payload[0]
            if 0x80 <= first <= 0xBF:  # RTP/RTCP version 2
                if self.media is not None:
                    self.media.feed(pkt)
                return
            if looks_like_sip(payload):
                self._message(payload, pkt, pkt.frame, "UDP", stream=False)
            return
        self._tcp_segment(pkt)

    def _tcp_segment(self, pkt: Packet) -> None:
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        if key in self._not_sip:
            return
        flow = self._tcp.get(key)
        syn = bool(pkt.tcp_flags & 0x02)
        if flow is None:
            if not pkt.payload and not syn:
                return
            flow = self._tcp[key] = _TcpFlow()
        if pkt.tcp_flags & 0x05 and not pkt.payload:  # FIN or RST: the flow is over
            self._close_flow(key, pkt)
            return
        flow.time = pkt.time
        payload = pkt.payload
        if payload and not flow.framer.is_sip and payload[0] in TLS_CONTENT_TYPES and payload[1:2] == b"\x03":
            self.tls_packets += 1
            self._tls_flows.setdefault(key, []).append(pkt.frame)
            return
        for data, frame in flow.stream.feed(pkt.tcp_seq, payload, pkt.frame, syn):
            flow.seen += len(data)
            for raw, last_frame in flow.framer.feed(data, frame):
                self._message(raw, pkt, last_frame, "TCP", stream=True)
        if not flow.framer.is_sip and flow.seen > TCP_PROBE_BYTES:
            self._not_sip.add(key)
            del self._tcp[key]

    def _close_flow(self, key: tuple, pkt: Packet | None) -> None:
        """A TCP direction ended (FIN, RST, end of capture): a message cut short is still analysed,
        and what could not be framed becomes a finding."""
        flow = self._tcp.pop(key, None)
        if flow is None:
            return
        self._tcp_gaps += flow.stream.gaps
        for raw, frame in flow.framer.flush():
            self._message(raw, pkt or _FlowEnd(key, flow.time), frame, "TCP", stream=True)
        if flow.framer.damaged:
            self._found(rules.framing_damage(key, flow.framer.damage, flow.framer.damaged))

    def _message(self, raw: bytes, pkt: Packet, frame: int, transport: str, stream: bool) -> None:
        self.sip_packets += 1
        try:
            msg = parse(raw, stream=stream)
        except SipParseError as exc:
            self._malformed += 1
            self._found(rules.malformed(frame, str(exc), pkt, raw))
            return
        hop = Hop(frame, pkt.time, pkt.src, pkt.sport, pkt.dst, pkt.dport, transport)
        self._clock(frame, pkt.time)
        record = self.tracker.add(msg, hop)
        call = self._calls.get(id(record))
        if call is None:
            call = self._calls[id(record)] = new_call(record)
        if msg.problems:
            self._found(rules.message_problems(frame, msg, call.call_id), call)
        if not stream and msg.is_request and len(raw) > rules.UDP_LIMIT:
            sent = self._large.setdefault(id(call), (call, []))[1]
            if len(sent) < 20:
                sent.append((frame, len(raw), pkt.frames))
        if call.call_id not in self._nat_reported:
            nat = sip_header_nat(msg, hop, call)
            if nat is not None:
                self._nat_reported.add(call.call_id)
                self._found(nat, call)
        if self.media is not None:
            if msg.body:
                self.media.sip(msg, record, call)
            if msg.method == "BYE":
                self.media.ended(call, hop.time)
        if self.on_message is not None:
            self.on_message(msg, record, call)

    def _found(self, finding: Finding, call: Call | None = None) -> None:
        """A finding made while reading: the call's own, or capture-wide."""
        (self.findings if call is None else call.findings).append(finding)
        if self.on_finding is not None:
            self.on_finding(finding)

    def _clock(self, frame: int, time: float) -> None:
        """Note where the capture's clock jumps between SIP messages (back, or forward by a week)."""
        last = self._last_sip
        self._last_sip = (frame, time)
        if last is not None:
            moved = time - last[1]
            if (moved < -rules.CLOCK_BACK_S or moved > rules.CLOCK_LEAP_S) and len(self._clock_jumps) < 1000:
                self._clock_jumps.append((frame, last[0], moved))

    def finish(self, info: CaptureInfo, skipped: dict[str, int] | None = None,
               incomplete_fragments: list[list[int]] | None = None,
               source_findings: list[Finding] | None = None) -> Report:
        """The Report. `source_findings`: what the driver's source found about the capture itself
        (a live run's kernel drops, an interface that was down), listed first."""
        for key in list(self._tcp):
            self._close_flow(key, None)
        summary = CaptureSummary(
            file=info.path, format=info.format, compressed=info.compressed, link_types=info.linktypes,
            packets=info.packets, bytes=info.size_bytes, first_time=info.first_time,
            last_time=info.last_time, truncated=info.truncated, skipped=dict(skipped or {}),
            sip_packets=self.sip_packets, tls_packets=self.tls_packets)
        if info.first_time is not None and info.last_time is not None:
            summary.duration_s = round(info.last_time - info.first_time, 6)
        report = Report(capture=summary, version=__version__)
        calls = self._calls
        report.calls = sorted((fill(calls[id(r)], r, info.last_time) for r in self.tracker.calls(info.last_time)),
                              key=lambda c: c.start)
        number_calls(report)
        if self.media is not None:
            self.media.finish(report)
        classify_streams(report)
        report.findings = list(source_findings or ()) + self.findings
        report.findings += rules.capture_findings(summary, self._tls_flows, incomplete_fragments or [],
                                                  self._tcp_gaps)
        withheld = _withhold_times(report.calls, [j[0] for j in self._clock_jumps])
        if self._clock_jumps:
            report.findings.append(rules.clock_jumps(self._clock_jumps, withheld))
        ctx = Context(self.thresholds, info.last_time)
        for call, sent in self._large.values():
            call.findings.append(rules.udp_too_large(call, sent))
        for call in report.calls:
            call.findings += judge_call(call, ctx)
            mark_streams(call.streams, self.thresholds)
        for stream in report.streams:
            report.findings += judge_stream(stream, ctx)
        mark_streams(report.streams, self.thresholds)
        if self.media is not None and not self.media.rtcp_packets:
            rules.media_not_captured(report)
        for call in report.calls:
            for f in call.findings:
                f.call = call.number
        report.metrics = compute_metrics(report.calls)
        report.sizing = compute_sizing(report.calls, info.first_time, info.last_time, self.sizing)
        report.findings += concurrency_limit(report.sizing, self.thresholds)
        report.finding_groups = group_findings(report)
        return report


def _withhold_times(calls: list[Call], jumps: list[int]) -> list[int]:
    """Calls whose signalling spans a clock jump lose their PDD, answer time and duration: the
    difference of two times across a jump is not a delay. Returns their numbers."""
    if not jumps:
        return []
    import bisect

    out = []
    for call in calls:
        if not call.ladder:
            continue
        first, last = call.ladder[0].frame, call.ladder[-1].frame
        i = bisect.bisect_right(jumps, first)
        if i < len(jumps) and jumps[i] <= last:
            call.pdd_ms = call.answer_ms = call.duration_s = None
            out.append(call.number)
    return out


def number_calls(report: Report) -> None:
    """One number per call, kept by every filter and shown by every output: INVITE sessions 1..N in
    start order, then the other exchanges (REGISTER, OPTIONS, SUBSCRIBE...) N+1.. in start order."""
    calls = [c for c in report.calls if c.kind == "call"] + [c for c in report.calls if c.kind != "call"]
    for n, call in enumerate(calls, 1):
        call.number = n


def _media_tracker(series: dict | None = None):
    from .media import MediaTracker

    return MediaTracker(series)
