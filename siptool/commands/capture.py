"""`siptool capture -i IFACE`: live capture into the same streaming analysis as `analyze`.

The driver moves LiveRecords (capture/live.py) through the Decoder into the Analyzer, optionally into a
PcapWriter (capture/writer.py), and refreshes a rich view about twice a second. On Ctrl-C, SIGTERM or
--duration it stops, closes the pcap whole and prints the same report as `analyze`.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from ..rtp.packet import parse_rtp
from .common import console, epilog, fail_level, fail_on_findings, guarded, thresholds_from

EPILOG = epilog([
    ("watch live, the full report on Ctrl-C", "sudo siptool capture -i eth0"),
    ("signalling and media to a pcap too",
     'siptool capture -i eth0 -f "udp" -w trunk.pcap'),
    ("one minute, as JSON; exit 1 on an error-level finding",
     "siptool capture -i any --duration 60 --json --fail-on error > report.json"),
    ("keep the last 10 files of 100 MB", "siptool capture -i eth0 -w trunk.pcap --ring 10 --ring-size 100MB"),
],  "Needs root or CAP_NET_RAW: sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which python3))",
    "Exit codes: 0 captured; 1 --fail-on threshold reached; 2 no privilege, bad interface or bad arguments; "
    "3 internal error.")

REFRESH_S = 0.5
RECENT_FAILURES = 8


class _WatchedTracker:
    """Wraps the Analyzer's CallTracker to remember each Call as it is built, for the live view."""

    def __init__(self, tracker) -> None:
        self._tracker = tracker
        self.live: dict[str, object] = {}

    def add(self, msg, hop):
        call = self._tracker.add(msg, hop)
        self.live[id(call)] = call
        return call

    def calls(self, *args, **kwargs):
        return self._tracker.calls(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tracker, name)


class _RtpWatch:
    """Rough per-flow RTP figures for the live view only (packets, sequence gaps, RFC 3550 jitter at 8 kHz).

    The report's figures come from the Analyzer's media tracker at the end; these just give a feel.
    """

    __slots__ = ("packets", "lost", "seq", "jitter", "transit")

    def __init__(self) -> None:
        self.packets = 0
        self.lost = 0
        self.seq = -1
        self.jitter = 0.0
        self.transit: float | None = None

    def add(self, t: float, payload: bytes) -> None:
        h = parse_rtp(payload)  # the one RTP header parser
        if h is None:
            return
        seq, ts = h.sequence, h.timestamp
        self.packets += 1
        if self.seq >= 0:
            gap = (seq - self.seq) & 0xFFFF
            if 1 < gap < 3000:
                self.lost += gap - 1
        self.seq = seq
        transit = t * 8000 - ts  # RFC 3550 section 6.4.1
        if self.transit is not None:
            d = abs(transit - self.transit)
            if d < 8000 * 10:
                self.jitter += (d - self.jitter) / 16
        self.transit = transit


class LiveRun:
    """One live capture: records -> Decoder -> Analyzer (+ PcapWriter). `run()` returns the Report."""

    def __init__(self, iface: str, bpf: str | None = None, duration: float | None = None,
                 write: str | None = None, ring: int = 0, ring_size: str = "100MB", buffer_mb: int = 32,
                 watch: bool = False, thresholds=None) -> None:
        from ..analysis.session import Analyzer
        from ..analysis.thresholds import DEFAULT
        from ..capture import Decoder
        from ..capture.live import LiveCapture

        self.cap = LiveCapture(iface, bpf, buffer_mb=buffer_mb)
        self.iface, self.bpf, self.duration = iface, bpf, duration
        self.decoder = Decoder()
        self.analyzer = Analyzer(media=_media_tracker(), thresholds=thresholds or DEFAULT)
        self.watch = watch
        if watch:
            self.analyzer.tracker = self.tracker = _WatchedTracker(self.analyzer.tracker)
            self.rtp: dict[tuple, _RtpWatch] = {}
        self.writer = None
        if write:
            from ..capture.writer import PcapWriter
            try:
                self.writer = PcapWriter(write, self.cap.linktype, ring=ring, ring_size=ring_size)
            except BaseException:
                self.cap.close()
                raise
        self.started = time.time()

    def stop(self, *_args) -> None:
        self.cap.stop()

    def run(self, on_refresh=None):
        """Capture until stop() or the duration; call on_refresh(self) about twice a second."""
        decode, feed = self.decoder.decode, self.analyzer.feed
        writer = self.writer
        deadline = self.started + self.duration if self.duration else None
        next_refresh = time.monotonic() + REFRESH_S
        watch = self.rtp if self.watch else None
        n = 0
        try:
            for rec in self.cap:
                if rec is not None:
                    if writer is not None:
                        writer.write(rec.sec, rec.nsec, rec.data, rec.orig_len)
                    pkt = decode(rec.frame, rec.time, rec.linktype, rec.data)
                    if pkt is not None:
                        feed(pkt)
                        if watch is not None and pkt.transport == "udp" and pkt.payload \
                                and 0x80 <= pkt.payload[0] <= 0xBF:
                            key = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
                            w = watch.get(key)
                            if w is None:
                                w = watch[key] = _RtpWatch()
                            w.add(pkt.time, pkt.payload)
                    n += 1
                    if n & 0x3FF:
                        continue
                now = time.monotonic()
                if deadline is not None and time.time() >= deadline:
                    break
                if writer is not None:
                    writer.tick()
                if now >= next_refresh:
                    next_refresh = now + REFRESH_S
                    self.cap.read_stats()
                    if on_refresh is not None:
                        on_refresh(self)
        finally:
            self.cap.close()
            if writer is not None:
                writer.close()
        return self.report()

    def report(self):
        from ..capture import CaptureInfo
        from ..capture.reader import LINKTYPE_NAMES
        from ..report.model import Finding, Severity

        cap = self.cap
        self.decoder.fragments.flush()
        linktype = LINKTYPE_NAMES.get(cap.linktype, str(cap.linktype))
        info = CaptureInfo(path=f"live:{self.iface}", format="live", linktypes=[linktype], packets=cap.frames,
                           first_time=cap.first_time, last_time=cap.last_time, size_bytes=cap.bytes)
        report = self.analyzer.finish(info, self.decoder.skipped, self.decoder.fragments.incomplete)
        stats = cap.stats
        if stats.drops:
            pct = 100.0 * stats.drops / max(stats.packets, 1)
            report.findings.insert(0, Finding(
                code="capture.kernel_drops", severity=Severity.ERROR,
                title=f"the kernel dropped {stats.drops} of {stats.packets} packets ({pct:.2f}%)",
                explanation="siptool read the capture ring more slowly than packets arrived, so calls and "
                            "media figures are incomplete.",
                fix="narrow the capture with -f (e.g. SIP and the RTP port range only), give it a larger "
                    "--buffer, or capture with tcpdump -w and run siptool analyze on the file",
                evidence={"kernel_packets": stats.packets, "kernel_drops": stats.drops, "interface": self.iface}))
        for warning in cap.warnings:
            report.findings.append(Finding(code="capture.interface", severity=Severity.WARNING, title=warning,
                                           explanation=warning))
        return report

    # --- live view -----------------------------------------------------------------------

    def view(self):
        """A rich renderable: counters, active calls with media, recent failures, findings so far."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        cap = self.cap
        elapsed = time.time() - self.started
        head = Text(f"capturing on {self.iface}" + (f" ({self.bpf})" if self.bpf else "")
                    + f"  {elapsed:6.1f} s  {cap.frames} packets  {self.analyzer.sip_packets} SIP  "
                    f"kernel drops {cap.stats.drops}", style="bold")
        if self.writer is not None:
            head.append(f"  -> {self.writer._name}", style="dim")
        calls = list(self.tracker.live.values())
        media = self.analyzer._calls  # noqa: SLF001 - the report's Call of each record (its SDP and findings)
        active = [c for c in calls if c.kind == "call" and c.end is None and not _failed(c)]
        table = Table(title=f"active calls ({len(active)})", expand=False)
        for col in ("Call-ID", "from", "to", "state", "age", "RTP pkts", "loss", "jitter"):
            table.add_column(col)
        by_end: dict[tuple, list] = {}
        for (src, sport, dst, dport), w in list(self.rtp.items()):
            by_end.setdefault((dst, dport), []).append(w)
            by_end.setdefault((src, sport), []).append(w)
        for call in sorted(active, key=lambda c: c.start)[-15:]:
            pkts, lost, jitter = self._media_of(media[id(call)], by_end)
            state = "answered" if call.answer else "ringing" if call.ringing else "trying"
            table.add_row(call.call_id[:20], call.from_user, call.to_user, state,
                          f"{max(0.0, (cap.last_time or call.start) - call.start):.0f} s", str(pkts),
                          f"{100.0 * lost / max(pkts + lost, 1):.1f}%", f"{jitter:.1f} ms")
        failed = [c for c in calls if _failed(c)]
        fails = Table(title=f"recent failures ({len(failed)})", expand=False)
        for col in ("time", "Call-ID", "from", "to", "status"):
            fails.add_column(col)
        for call in sorted(failed, key=lambda c: c.start)[-RECENT_FAILURES:]:
            code, reason = _last_final(call)
            fails.add_row(time.strftime("%H:%M:%S", time.gmtime(call.start)), call.call_id[:20], call.from_user,
                          call.to_user, f"{code} {reason}")
        found = list(self.analyzer.findings) + [f for c in calls for f in media[id(c)].findings]
        lines = Text()
        for f in found[-8:]:
            lines.append(f"{f.severity:8} {f.code}: {f.title}\n")
        return Group(head, table, fails, Text(f"findings so far: {len(found)}", style="bold"), lines)

    def _media_of(self, call, by_end: dict) -> tuple[int, int, float]:
        """RTP packets, lost, max jitter (ms) of flows to or from the endpoints in the call's SDP."""
        flows = {id(w): w for s in call.sdp for w in by_end.get((s.address, s.port), ())}
        pkts = sum(w.packets for w in flows.values())
        lost = sum(w.lost for w in flows.values())
        jitter = max((w.jitter / 8 for w in flows.values()), default=0.0)  # timestamp units at 8 kHz -> ms
        return pkts, lost, jitter


def _failed(call) -> bool:
    code, _ = _last_final(call)
    return code is not None and code >= 300 and call.answer is None


def _last_final(call) -> tuple[int | None, str]:
    for step in reversed(call.hops):
        if step.status is not None and step.status >= 200 and step.method == "INVITE" and step.status != 401 \
                and step.status != 407:
            return step.status, step.label.partition(" ")[2]
    return None, ""


def _media_tracker():
    try:
        from ..analysis.media import MediaTracker
    except ImportError:
        return None
    return MediaTracker()


def run_live(iface: str, bpf: Optional[str], duration: Optional[float], write: Optional[str], ring: int,
             ring_size: str, buffer_mb: int, show: bool, thresholds=None):
    """Capture with signals wired to a clean stop; the live view when `show`. Returns the Report."""
    run = LiveRun(iface, bpf, duration, write, ring, ring_size, buffer_mb, watch=show, thresholds=thresholds)
    old = {s: signal.signal(s, run.stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if show:
            from rich.live import Live

            with Live(run.view(), console=console(stderr=True), refresh_per_second=4, transient=True) as live:
                return run.run(lambda r: live.update(r.view()))
        return run.run()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def capture(
    interface: str = typer.Option(..., "--interface", "-i", help="Interface to capture on (or 'any')."),
    bpf: Optional[str] = typer.Option(None, "--filter", "-f", help="Capture filter, tcpdump syntax."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Stop after this many seconds."),
    write: Optional[Path] = typer.Option(None, "--write", "-w", help="Also write the packets to this pcap."),
    ring: int = typer.Option(0, "--ring", help="Keep only the last N files of --write (numbered)."),
    ring_size: str = typer.Option("100MB", "--ring-size", help="Cut --ring files at a size (100MB) or span (60s)."),
    buffer_mb: int = typer.Option(32, "--buffer", help="Kernel capture ring in MB."),
    json_out: bool = typer.Option(False, "--json", help="Print the final report as JSON."),
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", help="Exit 1 when a finding of this severity or worse exists: critical, error, warning."),
    loss: float = typer.Option(1.0, "--loss", metavar="PCT", help="Media finding from this packet loss %."),
    jitter: float = typer.Option(30.0, "--jitter", metavar="MS", help="Media finding from this maximum jitter."),
    mos: float = typer.Option(3.6, "--mos", metavar="MOS", help="Media finding below this estimated MOS."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours or bold."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No live view."),
) -> None:
    """Capture live: watch calls, failures and media as they happen; the full report at the end."""
    with guarded():

        level = fail_level(fail_on)
        limits = thresholds_from(loss, jitter, mos)
        if duration is not None and duration <= 0:
            raise typer.BadParameter("use a number of seconds above 0", param_hint="--duration")
        if buffer_mb < 1:
            raise typer.BadParameter("use 1 MB or more", param_hint="--buffer")
        if ring < 0:
            raise typer.BadParameter("must be 0 or more", param_hint="--ring")
        if ring and not write:
            raise typer.BadParameter("--ring needs --write FILE", param_hint="--ring")
        show = not quiet and sys.stderr.isatty()
        if write is not None:
            from .common import check_output

            check_output(write, "--write")
        report = run_live(interface, bpf, duration, str(write) if write else None, ring, ring_size, buffer_mb,
                          show, limits)
        print_report(report, json_out, no_color)
        fail_on_findings(report, level)


def print_report(report, json_out: bool, no_color: bool) -> None:
    if json_out:
        from ..report.jsonout import dumps

        typer.echo(dumps(report))
    else:
        from ..report.terminal import render

        render(report, console(no_color))


def register(app: typer.Typer) -> None:
    app.command("capture", epilog=EPILOG)(capture)
