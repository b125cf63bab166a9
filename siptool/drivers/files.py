"""The file driver: a capture file (pcap, pcapng, gzip, a pipe) read into the Analyzer, with the
next batch read ahead by a thread; and the same file decoded by tshark instead (--engine tshark)."""

from __future__ import annotations

from typing import Callable

from ..analysis.session import Analyzer, _media_tracker
from ..analysis.sizing import DEFAULT_PLAN, SizingPlan
from ..analysis.thresholds import DEFAULT, Thresholds
from ..capture import open_capture
from ..capture.batch import batches_supported, iter_batches
from ..report.model import Report


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
        from ..analysis.content import summarised

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


def tshark_report(capture=None, interface: str | None = None, bpf: str | None = None,
                  duration: float | None = None, thresholds: Thresholds | None = None,
                  sizing: SizingPlan | None = None, tls_keylog: str | None = None,
                  srtp_keys: list | None = None) -> Report:
    """The Report of a capture file (or live interface) decoded by tshark (--engine tshark)."""
    from ..capture.tshark_engine import TsharkSource

    analyzer = Analyzer(media=_media_tracker(srtp_keys=srtp_keys), thresholds=thresholds or DEFAULT,
                        sizing=sizing or DEFAULT_PLAN)
    with TsharkSource(capture, interface, bpf, duration) as source, plaintext(capture, tls_keylog) as plain:
        if plain is not None:
            analyzer.decrypt(plain)
        for pkt in source:
            analyzer.feed(pkt)
    return analyzer.finish(source.info, source.skipped, source.incomplete)


def diff_side(path: str):
    """One capture read for `siptool diff` (analysis/diff.py compares two): its Report, each call's
    message facts in ladder order (from the Analyzer's on_message hook) and its streams' per-packet
    series. Raises SiptoolError for unreadable input."""
    from ..analysis.diff import Side
    from ..analysis.diff_facts import message_facts

    facts: dict = {}
    series: dict = {}

    def on_message(msg, record, call) -> None:
        facts.setdefault(id(call), []).append(message_facts(msg))

    report = analyze_file(path, series=series, on_message=on_message)
    return Side(path, report, facts, series)
