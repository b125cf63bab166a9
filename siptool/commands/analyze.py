"""`siptool analyze CAPTURE`: every call, stream, metric and finding in a capture."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..status import ExitStatus
from .common import console, guarded, load_report

EPILOG = """Examples:

  siptool analyze trunk.pcap

  siptool analyze trunk.pcapng --json > report.json

  siptool analyze trunk.pcap.gz --filter 4xx          # only failed calls (status class)

  siptool analyze trunk.pcap --filter +4930123456     # calls from/to a number

  siptool analyze trunk.pcap --fail-on error          # exit 1 if any error-level finding (for CI)

  sudo siptool analyze -i eth0 --bpf "udp" --duration 30   # live, as siptool capture

  siptool analyze trunk.pcap --engine tshark   # tshark decodes (cross-check)

  siptool analyze trunk.pcap --loss 0.5 --jitter 20 --mos 4.0 --fail-on warning   # stricter media

Exit codes: 0 analysed; 1 --fail-on threshold reached; 2 unreadable input or bad arguments.
"""

FAIL_LEVELS = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def analyze(
    capture: Optional[Path] = typer.Argument(None, help="pcap, pcapng or gzip'd capture file."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON (docs/json-schema.md); "
                                  "indented on a terminal, compact into a pipe or file."),
    filters: Optional[List[str]] = typer.Option(
        None, "--filter", "-f",
        help="Keep calls matching: a Call-ID or number substring, a status (486) or class (4xx), or a state "
             "(failed, cancelled, answered). Repeat to AND. Metrics are recomputed over the kept calls."),
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", help="Exit 1 when a finding of this severity or worse exists: critical, error, warning."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also off when not a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    interface: Optional[str] = typer.Option(
        None, "--interface", "-i", help="Capture live from this interface instead of a file (as siptool capture)."),
    bpf: Optional[str] = typer.Option(None, "--bpf", help="With -i: capture filter, tcpdump syntax."),
    duration: Optional[float] = typer.Option(None, "--duration", help="With -i: stop after this many seconds."),
    loss: float = typer.Option(1.0, "--loss", metavar="PCT", help="Media finding from this packet loss %, "
                               "an error from 5 % (or from PCT if higher)."),
    jitter: float = typer.Option(30.0, "--jitter", metavar="MS", help="Media finding from this interarrival jitter."),
    mos: float = typer.Option(3.6, "--mos", metavar="MOS", help="Media finding below this estimated MOS, "
                              "an error below 3.1 (or below MOS if lower)."),
    engine: str = typer.Option(
        "native", "--engine", help="Packet decoder: native (siptool's own, fast) or tshark (tshark through "
                                   "pyshark, to cross-check the native one; slower). See docs/engines.md."),
) -> None:
    """Reconstruct every SIP call and RTP stream in a capture, with metrics and findings."""
    with guarded():
        if fail_on is not None and fail_on not in FAIL_LEVELS:
            raise typer.BadParameter("use critical, error or warning", param_hint="--fail-on")
        if (capture is None) == (interface is None):
            raise typer.BadParameter("give a capture file or -i INTERFACE (not both)")
        if engine not in ("native", "tshark"):
            raise typer.BadParameter("use native or tshark", param_hint="--engine")
        set_media_thresholds(loss, jitter, mos)
        if engine == "native" and interface is None:
            report = load_report(str(capture), filters, quiet=quiet or json_out)  # filters applied there
        else:
            from ..analysis.select import filter_report

            if engine == "tshark":
                report = tshark_report(capture, interface, bpf, duration)
            else:
                from .capture import run_live

                report = run_live(interface, bpf, duration, None, 0, "100MB", 32,
                                  show=not (quiet or json_out) and sys.stderr.isatty())
            report = filter_report(report, filters or [])
        if json_out:
            from ..report.jsonout import write

            # Indented for a person at a terminal; compact (and much faster) into a pipe or file.
            write(report, sys.stdout, indent=2 if sys.stdout.isatty() else None)
        else:
            from ..report.terminal import render

            render(report, console(no_color))
        if fail_on is not None:
            limit = FAIL_LEVELS[fail_on]
            if any(FAIL_LEVELS[f.severity] <= limit for f in report.all_findings()):
                raise typer.Exit(ExitStatus.FAILED)


def set_media_thresholds(loss: float, jitter: float, mos: float) -> None:
    """--loss / --jitter / --mos: what the media findings judge streams by (docs/findings.md)."""
    from ..analysis.media_rules import set_thresholds

    for name, value, low, high in (("--loss", loss, 0, 100), ("--jitter", jitter, 0, 10000), ("--mos", mos, 1, 5)):
        if not low <= value <= high:
            raise typer.BadParameter(f"use a value from {low} to {high}", param_hint=name)
    set_thresholds(loss_pct=loss, loss_pct_error=max(5.0, loss), jitter_ms=jitter, mos=mos,
                   mos_error=min(3.1, mos))


def tshark_report(capture=None, interface: Optional[str] = None, bpf: Optional[str] = None,
                  duration: Optional[float] = None):
    """The Report of a capture file (or live interface) decoded by tshark (--engine tshark)."""
    from ..analysis.media import MediaTracker
    from ..analysis.session import Analyzer
    from ..capture.tshark_engine import TsharkSource

    analyzer = Analyzer(media=MediaTracker())
    with TsharkSource(capture, interface, bpf, duration) as source:
        for pkt in source:
            analyzer.feed(pkt)
    return analyzer.finish(source.info, source.skipped, source.incomplete)


def register(app: typer.Typer) -> None:
    app.command("analyze", epilog=EPILOG)(analyze)
