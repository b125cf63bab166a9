"""`siptool capture -i IFACE`: live capture into the same streaming analysis as `analyze`.

Parses the arguments, runs the live driver (drivers/live.py: the interface, optionally a pcap, the
Analyzer) with the live board (report/live.py) on a terminal, and prints the same report as `analyze`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ..capture.interface import METHODS
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


def live_report(interface: str, bpf: Optional[str], duration: Optional[float], show: bool, thresholds=None,
                write: Optional[str] = None, ring: int = 0, ring_size: str = "100MB", buffer_mb: int = 32,
                method: str = "auto"):
    """Capture on an interface (drivers/live.py) until Ctrl-C, SIGTERM or the duration; the live board
    on stderr when `show`. Returns the Report."""
    from ..analysis.session import Analyzer, _media_tracker
    from ..analysis.thresholds import DEFAULT
    from ..drivers.live import InterfaceSource, LiveRun, run_until_signalled

    source = InterfaceSource(interface, bpf, buffer_mb, write, ring, ring_size, method)
    observers = []
    if show:
        from ..report.live import LiveBoard

        observers.append(LiveBoard(console(stderr=True)))
    analyzer = Analyzer(media=_media_tracker(), thresholds=thresholds or DEFAULT)
    return run_until_signalled(LiveRun(source, analyzer, observers, duration))


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
    method: str = typer.Option("auto", "--method", help="How to capture: af_packet (Linux's ring), libpcap, "
                               "or auto (the ring where there is one, else libpcap)."),
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
        if method not in METHODS:
            raise typer.BadParameter(f"use {', '.join(METHODS)}", param_hint="--method")
        show = not quiet and sys.stderr.isatty()
        if write is not None:
            from .common import check_output

            check_output(write, "--write")
        report = live_report(interface, bpf, duration, show, limits, str(write) if write else None, ring, ring_size,
                             buffer_mb, method)
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
