"""The streaming analyser: packets -> SIP calls (and media) -> Report.

`Analyzer` is sans-I/O: `feed(packet)` for each decoded packet, `finish()` for the Report. The
drivers (siptool/drivers: capture files, live runs; agent/tap.py for placed calls) just move packets
into it. State kept is per call and per flow, never per packet.
"""

from __future__ import annotations

from typing import Callable

from .. import __version__
from ..capture import CaptureInfo, Packet
from ..report.model import Call, CaptureSummary, Finding, Report
from ..sip.dialogs import CallTracker, Hop, SipCall
from ..sip.message import SipMessage, SipParseError, looks_like_sip, parse
from . import findings as rules
from . import secure_media, transport_findings
from .calls import fill, new_call
from .context import Context
from .conversation import conversation
from .groups import group_findings
from .judge import judge_call, judge_stream, mark_streams
from .kinds import classify_streams
from .media_rules import sip_header_nat
from .metrics import compute_metrics
from .sizing import DEFAULT_PLAN, SizingPlan, compute_sizing, concurrency_limit
from .security import Exposure
from .streams import Streams
from .thresholds import DEFAULT, Thresholds

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
        self.streams = Streams()  # TCP, WebSocket, decrypted TLS, SCTP
        self._plain = None  # decrypted TLS records (capture/tls.Plaintext), merged in frame order
        self._plain_next = None
        self._plain_frame = float("inf")  # frame of the next decrypted record
        self._malformed = 0
        self._nat_reported: set[str] = set()  # calls with a private Contact/Via finding already
        self.exposure = Exposure()  # secrets in clear signalling (analysis/security.py)
        self.media = media  # optional media tracker with feed(packet) and finish(report)

    @property
    def tls_packets(self) -> int:
        return self.streams.tls_packets

    def decrypt(self, plaintext) -> None:
        """Take TLS plaintext (capture/tls.Plaintext: frame-ordered records) along with the packets."""
        self._plain = iter(plaintext)
        self._next_plain()

    def _next_plain(self) -> None:
        self._plain_next = next(self._plain, None)
        self._plain_frame = self._plain_next.frame if self._plain_next is not None else float("inf")

    def feed_stream(self, frame: int, time: float, key: tuple, data: bytes, transport: str = "TLS") -> None:
        """What a TLS or WebSocket connection carried, in the clear and in order (the agent's own, as
        its tap sees them): read with that transport (TLS, WS, WSS), as decrypted TLS is. `key` is
        (src, sport, dst, dport)."""
        self._deliver(self.streams.plaintext(frame, time, key, data, transport))

    def _decrypted(self, upto: float) -> None:
        """Hand over the decrypted records of frames up to `upto`, as if their packets said it."""
        while self._plain_next is not None and self._plain_frame <= upto:
            rec = self._plain_next
            self._deliver(self.streams.plaintext(rec.frame, rec.time, rec.key, rec.data))
            self._next_plain()

    def feed(self, pkt: Packet) -> None:
        if pkt.frame >= self._plain_frame:
            self._decrypted(pkt.frame)
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
            elif self.media is not None and (first == 0x10 or 20 <= first <= 63):  # ZRTP, DTLS (RFC 7983)
                self.media.media_path(pkt)
            return
        self._deliver(self.streams.segment(pkt) if pkt.transport == "tcp" else self.streams.sctp(pkt))

    def _deliver(self, messages: list[tuple]) -> None:
        for raw, where, frame, transport, stream in messages:
            self._message(raw, where, frame, transport, stream)

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
        self.exposure.message(msg, hop, call)
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
        if self._plain is not None:
            self._decrypted(float("inf"))
        self._deliver(self.streams.finish())
        summary = CaptureSummary(
            file=info.path, format=info.format, compressed=info.compressed, link_types=info.linktypes,
            packets=info.packets, bytes=info.size_bytes, first_time=info.first_time,
            last_time=info.last_time, truncated=info.truncated, skipped=dict(skipped or {}),
            sip_packets=self.sip_packets, tls_packets=self.tls_packets, tls_decrypted=len(self.streams.decrypted))
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
        if self.media is not None and self.media.content is not None:
            for call in report.calls:
                call.conversation = conversation(call)
        report.findings = list(source_findings or ()) + self.findings + self.streams.findings()
        report.findings += rules.capture_findings(summary, incomplete_fragments or [], self.streams.tcp_gaps)
        tls = transport_findings.tls_unread(self.streams, report, self._plain is not None)
        if tls is not None:
            report.findings.append(tls)
            secure_media.mark_unannounced(report)
        withheld = _withhold_times(report.calls, [j[0] for j in self._clock_jumps])
        if self._clock_jumps:
            report.findings.append(rules.clock_jumps(self._clock_jumps, withheld))
        ctx = Context(self.thresholds, info.last_time)
        for call, sent in self._large.values():
            call.findings.append(rules.udp_too_large(call, sent))
        for call in report.calls:
            call.findings += self.exposure.findings(call)
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


def _media_tracker(series: dict | None = None, srtp_keys: list | None = None, content=None):
    from .media import MediaTracker

    return MediaTracker(series, srtp_keys, content)
