"""The streaming analyser: packets -> SIP calls (and media) -> Report.

`Analyzer` is sans-I/O: `feed(packet)` for each decoded packet, `finish()` for the Report. The file
driver `analyze_file()` and the live driver both just move packets into it. State kept is per call
and per flow, never per packet.
"""

from __future__ import annotations

from typing import Callable

from .. import __version__
from ..capture import CaptureInfo, Packet, open_capture
from ..capture.batch import batches_supported, iter_batches
from ..report.model import Call, CaptureSummary, Finding, Report
from ..sip.dialogs import CallTracker, Hop
from ..sip.message import SipParseError, looks_like_sip, parse
from . import findings as rules
from . import secure_media, transport_findings
from .security import Exposure
from .context import Context
from .conversation import conversation
from .groups import group_findings
from .judge import judge_call, judge_stream
from .kinds import classify_streams
from .media_rules import sip_header_nat
from .metrics import compute_metrics
from .sizing import DEFAULT_PLAN, SizingPlan, compute_sizing, concurrency_limit
from .streams import Streams
from .thresholds import DEFAULT, Thresholds

class Analyzer:
    """Feed packets in capture order; `finish()` returns the Report."""

    def __init__(self, media=None, thresholds: Thresholds = DEFAULT, sizing: SizingPlan = DEFAULT_PLAN,
                 on_message: Callable | None = None) -> None:
        self.thresholds = thresholds
        self.sizing = sizing
        self.on_message = on_message  # (msg, hop, call) after each SIP message is tracked: `diff` reads headers
        self.tracker = CallTracker()
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

    def feed_tls(self, frame: int, time: float, key: tuple, data: bytes) -> None:
        """SIP a TLS connection carried, in the clear and in order (the agent's own TLS, as its tap
        sees it): read as decrypted TLS, so its transport is TLS. `key` is (src, sport, dst, dport)."""
        self._deliver(self.streams.plaintext(frame, time, key, data))

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
            self.findings.append(rules.malformed(frame, str(exc), pkt, raw))
            return
        hop = Hop(frame, pkt.time, pkt.src, pkt.sport, pkt.dst, pkt.dport, transport)
        self._clock(frame, pkt.time)
        call = self.tracker.add(msg, hop)
        self.exposure.message(msg, hop, call)
        if self.on_message is not None:
            self.on_message(msg, hop, call)
        if msg.problems:
            call.findings.append(rules.message_problems(frame, msg, call.call_id))
        if not stream and msg.is_request and len(raw) > rules.UDP_LIMIT:
            sent = self._large.setdefault(id(call), (call, []))[1]
            if len(sent) < 20:
                sent.append((frame, len(raw), pkt.frames))
        if call.call_id not in self._nat_reported:
            nat = sip_header_nat(msg, hop, call)
            if nat is not None:
                self._nat_reported.add(call.call_id)
                call.findings.append(nat)
        if self.media is not None:
            if msg.body:
                self.media.sip(msg, hop, call)
            if msg.method == "BYE":
                self.media.ended(call, hop.time)

    def _clock(self, frame: int, time: float) -> None:
        """Note where the capture's clock jumps between SIP messages (back, or forward by a week)."""
        last = self._last_sip
        self._last_sip = (frame, time)
        if last is not None:
            moved = time - last[1]
            if (moved < -rules.CLOCK_BACK_S or moved > rules.CLOCK_LEAP_S) and len(self._clock_jumps) < 1000:
                self._clock_jumps.append((frame, last[0], moved))

    def finish(self, info: CaptureInfo, skipped: dict[str, int] | None = None,
               incomplete_fragments: list[list[int]] | None = None) -> Report:
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
        report.calls = sorted(self.tracker.calls(info.last_time), key=lambda c: c.start)
        number_calls(report)
        if self.media is not None:
            self.media.finish(report)
        classify_streams(report)
        if self.media is not None and self.media.content is not None:
            for call in report.calls:
                call.conversation = conversation(call)
        report.findings = list(self.findings) + self.streams.findings()
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
        for stream in report.streams:
            report.findings += judge_stream(stream, ctx)
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


def analyze_file(path, progress: bool = False, on_progress: Callable[[int, int], None] | None = None,
                 series: dict | None = None, thresholds: Thresholds = DEFAULT,
                 sizing: SizingPlan = DEFAULT_PLAN, on_message: Callable | None = None, tls_keylog: str | None = None,
                 srtp_keys: list | None = None, content=None) -> Report:
    """Read a capture file and return its Report. Raises SiptoolError for unreadable input.

    series: a dict to fill with each stream's per-packet StreamMetrics, keyed (src, dst, ssrc);
    sizing: the grade of service and headroom the sizing figures are for; on_message: see Analyzer;
    tls_keylog: an NSS key log, the TLS it opens is analysed like clear SIP (capture/tls.py);
    srtp_keys: SRTP keys the capture does not show (rtp/srtp_keys.KeyEntry), by sender;
    content: analysis.content.ContentOptions to decode audio streams and find who spoke when."""
    analyzer = Analyzer(media=_media_tracker(series, srtp_keys, content), thresholds=thresholds, sizing=sizing,
                        on_message=on_message)
    with open_capture(path) as source, plaintext(path, tls_keylog) as plain:
        if plain is not None:
            analyzer.decrypt(plain)
        tick = _progress(source, progress, on_progress)
        feed_source(analyzer, source, tick)
        if tick:
            tick(done=True)
        return analyzer.finish(source.info, source.decoder.skipped, source.decoder.fragments.incomplete)


def plaintext(path, tls_keylog: str | None):
    """The decrypted TLS of a capture file (a context manager), or a null one without a key log."""
    import contextlib

    if tls_keylog is None:
        return contextlib.nullcontext()
    from ..capture.tls import Plaintext

    return Plaintext(path, tls_keylog)


def feed_source(analyzer: Analyzer, source, tick=None, first_frame: int = 1) -> None:
    """Feed every packet of an open capture file to the Analyzer. `first_frame`: the number its
    first packet gets (a file after others in one timeline continues their count)."""
    if analyzer.media is not None and batches_supported(source.capture):
        _feed_batches(source, analyzer, tick, first_frame - 1)
        return
    feed, decode = analyzer.feed, source.decoder.decode
    shift = first_frame - 1
    for i, rec in enumerate(source.capture):
        pkt = decode(rec.frame + shift, rec.time, rec.linktype, rec.data)
        if pkt is not None:
            feed(pkt)
        if not i & 0x3FFF and tick:
            tick()
    source.decoder.fragments.flush()


def _feed_batches(source, analyzer: Analyzer, tick, shift: int = 0) -> None:
    """Fast path: RTP in bulk per batch, everything else per packet in capture order.

    Within a batch the per-packet records go first; RTP flows are classified by the frame of their
    first packet against SDP announcements stamped with frame numbers, so the outcome is the same
    as feeding every packet in order. `shift` is added to every frame number.
    """
    decode = source.decoder.decode
    feed = analyzer.feed
    media = analyzer.media
    batches = iter_batches(source.capture)
    if media.content is not None:  # G.711 content summarised in the reader's thread (analysis/content.py)
        from .content import summarised

        batches = summarised(batches)
    for batch in _prefetched(batches):
        if shift:
            batch.rtp.frame += shift
        for frame, time, data in batch.slow:
            pkt = decode(frame + shift, time, batch.linktype, data)
            if pkt is not None:
                feed(pkt)
        media.feed_batch(batch.rtp, batch.buf, getattr(batch, "g711", None))
        # Flat RSS: this batch's pages are done with (reader.Capture.release). Released here, by the
        # consumer, not by the reader thread, which runs a batch ahead.
        source.capture.release(batch.end)
        if tick:
            tick(position=batch.end)
    source.decoder.fragments.flush()


_DONE = object()


def _prefetched(batches):
    """The batches, the next one read and classified by a thread while this one is analysed: numpy
    releases the GIL for most of that work, so a second core takes it. The reader starts on a batch
    only once the previous one is taken, so at most two are in memory."""
    import queue
    import threading

    ready: queue.Queue = queue.Queue()
    turn = threading.Semaphore(1)  # the reader may read one batch
    stop = threading.Event()

    def read() -> None:
        it = iter(batches)
        try:
            while True:
                while not turn.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                batch = next(it, _DONE)
                ready.put(batch)
                if batch is _DONE:
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(exc)

    reader = threading.Thread(target=read, name="siptool-read", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            turn.release()  # read the next one while this one is analysed
            yield item
    finally:
        stop.set()
        reader.join()


def _media_tracker(series: dict | None = None, srtp_keys: list | None = None, content=None):
    from .media import MediaTracker

    return MediaTracker(series, srtp_keys, content)


def _progress(source, show: bool, on_progress):
    """A callable that updates a progress display from the reader's position, or None."""
    if not (show or on_progress):
        return None
    total = source.info.size_bytes or 1
    tell = source.capture.tell
    if not show:
        def tick(done: bool = False, position: int | None = None) -> None:
            on_progress(total if done else position or tell(), total)
        return tick
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("reading"), BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True)
    task = bar.add_task("read", total=total)
    bar.start()

    def tick(done: bool = False, position: int | None = None) -> None:
        bar.update(task, completed=total if done else position or tell())
        if done:
            bar.stop()
    return tick
