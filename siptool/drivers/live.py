"""The live driver: packets from a live source into the Analyzer until stopped, with observers.

A source is anything that yields `capture.Packet`s, and `None` now and then so the driver can look
at its clock (nothing arrived for a while, or many records went by). `InterfaceSource` is a network
interface (the AF_PACKET ring or libpcap), optionally written to a pcap as it is read; a HEP
listener (drivers/hep.py) plugs in the same way, with analysis.points.CapturePoints in the
Analyzer's place. Observers follow the run: each may define `message(msg, record, call)` and
`finding(finding)` (the Analyzer's hooks, as they happen), `stream(stream)` (each RTP stream as it
closes, rated: the media tracker's hook), `update(snapshot)` (a LiveSnapshot about twice a second)
and `finish(report)` (once, at the end). The live board (report/live.py) is one; the metrics
(analysis/events.LiveEvents into report/prometheus.py) another.

A packet the analysis raises on (a bug) is counted and left out, never the end of a run that may
be a long-lived collector: the report says so (`capture.unanalysed`).
"""

from __future__ import annotations

import signal
import time
from typing import Iterator, NamedTuple, Protocol

from ..analysis.findings import interface_warning, kernel_drops, unanalysed
from ..analysis.live import LiveCalls
from ..analysis.session import Analyzer
from ..capture import CaptureInfo, Decoder, Packet
from ..capture.interface import open_interface
from ..capture.reader import LINKTYPE_NAMES
from ..report.model import Finding, Report

REFRESH_S = 0.5
TICK_RECORDS = 1024  # a source yields None at least this often while records flow
MAX_FAILED = 20  # packets the analysis raised on, kept for the finding


class Counters(NamedTuple):
    """What a source can tell about itself while it runs."""

    packets: int  # records read
    kernel_drops: int | None  # None: the source cannot know
    writing: str  # the file being written, "" for none
    last_time: float | None  # capture time of the latest record


class Source(Protocol):
    """Where a live run's packets come from."""

    name: str  # the report's capture.file: "live:eth0"
    label: str  # what the live board says it captures on: "eth0 (udp port 5060)"

    def __iter__(self) -> Iterator[Packet | None]: ...

    def stop(self) -> None: ...  # ends the iteration; safe from a signal handler

    def close(self) -> None: ...

    def counters(self) -> Counters: ...

    def finish(self) -> tuple[CaptureInfo, dict[str, int], list[list[int]], list[Finding]]:
        """After close: what was read, packets skipped by reason, incomplete fragments, and findings
        about the capture itself."""


class InterfaceSource:
    """Packets from a network interface (capture/interface.py: the AF_PACKET ring, else libpcap), each
    record first written to a pcap (capture/writer.py: whole files, rings) when asked, then decoded."""

    def __init__(self, iface: str, bpf: str | None = None, buffer_mb: int = 32, write: str | None = None,
                 ring: int = 0, ring_size: str = "100MB", method: str = "auto") -> None:
        self.cap = open_interface(iface, bpf, buffer_mb, method)
        self.iface = iface
        self.name = f"live:{iface}"
        self.label = iface + (f" ({bpf})" if bpf else "")
        self.decoder = Decoder()
        self.writer = None
        if write:
            from ..capture.writer import PcapWriter
            try:
                self.writer = PcapWriter(write, self.cap.linktype, ring=ring, ring_size=ring_size)
            except BaseException:
                self.cap.close()
                raise

    def __iter__(self) -> Iterator[Packet | None]:
        decode, writer = self.decoder.decode, self.writer
        n = 0
        for rec in self.cap:
            if rec is not None:
                if writer is not None:
                    writer.write(rec.sec, rec.nsec, rec.data, rec.orig_len)
                pkt = decode(rec.frame, rec.time, rec.linktype, rec.data)
                if pkt is not None:
                    yield pkt
                n += 1
                if n % TICK_RECORDS:
                    continue
            if writer is not None:
                writer.tick()
            yield None

    def stop(self) -> None:
        self.cap.stop()

    def close(self) -> None:
        try:
            self.cap.close()
        finally:
            if self.writer is not None:
                self.writer.close()

    def counters(self) -> Counters:
        stats = self.cap.read_stats()
        return Counters(self.cap.frames, stats.drops, self.writer.current_file if self.writer is not None else "",
                        self.cap.last_time)

    def finish(self) -> tuple[CaptureInfo, dict[str, int], list[list[int]], list[Finding]]:
        cap = self.cap
        self.decoder.fragments.flush()
        linktype = LINKTYPE_NAMES.get(cap.linktype, str(cap.linktype))
        info = CaptureInfo(path=self.name, format="live", linktypes=[linktype], packets=cap.frames,
                           first_time=cap.first_time, last_time=cap.last_time, size_bytes=cap.bytes)
        found = [f for f in [kernel_drops(cap.stats.packets, cap.stats.drops, self.iface)] if f is not None]
        found += [interface_warning(w) for w in cap.warnings]
        return info, self.decoder.skipped, self.decoder.fragments.incomplete, found


class LiveRun:
    """One live run: `run()` feeds the source's packets to the Analyzer until `stop()`, the source ends
    or `duration` seconds passed, and returns the Report; observers follow along."""

    def __init__(self, source: Source, analyzer: Analyzer, observers=(), duration: float | None = None,
                 refresh_s: float = REFRESH_S) -> None:
        self.source, self.analyzer, self.observers = source, analyzer, list(observers)
        self.duration, self.refresh_s = duration, refresh_s
        self.calls = LiveCalls()
        self.started = time.time()
        analyzer.on_message = _fan_out([self.calls.message] + _hooks(self.observers, "message"))
        analyzer.on_finding = _fan_out([self.calls.finding] + _hooks(self.observers, "finding"))
        streams = _hooks(self.observers, "stream")
        if streams and analyzer.media is not None:
            analyzer.media.on_stream = _fan_out(streams)
        self.failed: list[tuple[int, str]] = []  # (frame, error) of the first packets the analysis raised on
        self.failures = 0

    def stop(self, *_args) -> None:
        self.source.stop()

    def snapshot(self):
        """This moment of the run, as report.live.LiveSnapshot."""
        c = self.source.counters()
        return self.calls.snapshot(self.analyzer.media, c.last_time, self.source.label, time.time() - self.started,
                                   c.packets, self.analyzer.sip_packets, c.kernel_drops, c.writing)

    def run(self) -> Report:
        feed = self.analyzer.feed
        deadline = time.monotonic() + self.duration if self.duration else None
        updates = _hooks(self.observers, "update")
        next_refresh = time.monotonic() + self.refresh_s
        n = 0
        try:
            self._update(updates)
            for pkt in self.source:
                if pkt is not None:
                    try:
                        feed(pkt)
                    except Exception as exc:  # noqa: BLE001 - see the module's text
                        self._failed(pkt, exc)
                    n += 1
                    if n % TICK_RECORDS:
                        continue
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if now >= next_refresh:
                    next_refresh = now + self.refresh_s
                    self._update(updates)
        finally:
            self.source.close()
        info, skipped, fragments, found = self.source.finish()
        if self.failures:
            found = found + [unanalysed(self.failures, self.failed)]
        report = self.analyzer.finish(info, skipped, fragments, found)
        for finish in _hooks(self.observers, "finish"):
            finish(report)
        return report

    def _failed(self, pkt: Packet, exc: Exception) -> None:
        self.failures += 1
        if len(self.failed) < MAX_FAILED:
            self.failed.append((pkt.frame, f"{type(exc).__name__}: {exc}"))

    def _update(self, updates) -> None:
        if updates:
            snapshot = self.snapshot()
            for update in updates:
                update(snapshot)


def run_until_signalled(run: LiveRun) -> Report:
    """`run.run()` with Ctrl-C and SIGTERM ending the capture cleanly (the pcap is closed whole, the
    report printed), the previous handlers put back after."""
    old = {s: signal.signal(s, run.stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _hooks(observers, name: str) -> list:
    return [getattr(o, name) for o in observers if callable(getattr(o, name, None))]


def _fan_out(hooks: list):
    if len(hooks) == 1:
        return hooks[0]

    def every(*args) -> None:
        for hook in hooks:
            hook(*args)
    return every

