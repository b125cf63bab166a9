"""`siptool capture -i IFACE`: live capture into the same streaming analysis as `analyze`.

Parses the arguments, runs the live driver (drivers/live.py: the interface, optionally a pcap, the
Analyzer; or, with --hep-listen, HEP from capture agents, drivers/hep.py) with the live board
(report/live.py) on a terminal and, with --metrics, a Prometheus endpoint (report/prometheus.py,
fed by analysis/events.LiveEvents), and prints the same report as `analyze`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import typer

from ..capture.interface import METHODS
from .common import console, epilog, fail_level, fail_on_findings, guarded, note, thresholds_from

EPILOG = epilog([
    ("watch live, the full report on Ctrl-C", "sudo siptool capture -i eth0"),
    ("signalling and media to a pcap too",
     'siptool capture -i eth0 -f "udp" -w trunk.pcap'),
    ("one minute, as JSON; exit 1 on an error-level finding",
     "siptool capture -i any --duration 60 --json --fail-on error > report.json"),
    ("keep the last 10 files of 100 MB", "siptool capture -i eth0 -w trunk.pcap --ring 10 --ring-size 100MB"),
    ("send the SIP to a Homer collector as HEP, its password from a file",
     "siptool capture -i eth0 --hep udp:homer:9060 --hep-key-file hep.key"),
    ("be the collector: HEP from many agents, kept in a pcap too",
     "siptool capture --hep-listen 0.0.0.0:9060 -w hep.pcap"),
    ("Prometheus metrics at http://HOST:9465/metrics", "siptool capture -i eth0 --metrics 0.0.0.0:9465"),
],  "Needs root or CAP_NET_RAW: sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which python3))",
    "HEP (Homer's capture protocol, v3): --hep sends the SIP captured (over UDP, and the TCP flows that carry "
    "SIP) to a collector (Homer, heplify-server, sngrep -L, siptool) as capture agent --hep-id. --hep-listen "
    "receives HEP from many agents (UDP and TCP on HOST:PORT; udp:HOST:PORT or tcp:HOST:PORT for one) instead "
    "of capturing, and analyses each agent apart: the same Call-ID seen by two agents is two calls, one per "
    "leg, each with its capture_point. --write then keeps the packets rebuilt from HEP (raw IP). The HEP "
    "password comes from --hep-key-env or --hep-key-file, never the command line; with --hep-listen, messages "
    "without it are refused.",
    "--metrics serves /metrics for Prometheus while the capture runs: calls by final status, active calls, "
    "post-dial delay and MOS histograms, streams by loss, findings by code, packets and kernel drops (README: "
    "At scale).",
    "Exit codes: 0 captured; 1 --fail-on threshold reached; 2 no privilege, bad interface or bad arguments; "
    "3 internal error.")

DEFAULT_HEP_ID = 2002  # the capture agent ID sngrep sends by default


@dataclass(frozen=True)
class LiveOptions:
    """A live run's HEP (received instead of capturing, or sent as it captures) and metrics endpoint."""

    hep_listen: str | None = None
    hep_send: str | None = None
    hep_key: bytes | None = field(default=None, repr=False)  # both ways; never printed
    hep_id: int = DEFAULT_HEP_ID
    metrics: tuple[str, int] | None = None


def hep_listen_option():
    return typer.Option(None, "--hep-listen", metavar="ADDR:PORT", help="Receive HEP from capture agents here "
                        "instead of capturing (UDP and TCP; udp:ADDR:PORT or tcp:ADDR:PORT for one).")


def hep_key_env_option():
    return typer.Option(None, "--hep-key-env", metavar="VAR", help="Environment variable holding the HEP "
                        "password (sent with --hep, required of agents with --hep-listen).")


def hep_key_file_option():
    return typer.Option(None, "--hep-key-file", metavar="FILE", help="File whose first line is the HEP password.")


def metrics_option(when: str):
    return typer.Option(None, "--metrics", metavar="ADDR:PORT", help=f"Serve Prometheus metrics at "
                        f"http://ADDR:PORT/metrics {when}.")


def live_options(interface: str | None, hep_listen: str | None, hep_send: str | None, key_env: str | None,
                 key_file: Path | None, hep_id: int | None, metrics: str | None) -> LiveOptions:
    """The HEP and metrics options of `capture` and `analyze`, checked before anything starts."""
    from ..capture.hep import HepError, parse_address
    from .call import read_password

    if hep_listen is not None and interface is not None:
        raise typer.BadParameter("capture from an interface (-i) or receive HEP (--hep-listen), not both",
                                 param_hint="--hep-listen")
    if hep_send is not None and hep_listen is not None:
        raise typer.BadParameter("--hep sends what an interface captures; --hep-listen receives HEP",
                                 param_hint="--hep")
    for option, address, listen in (("--hep-listen", hep_listen, True), ("--hep", hep_send, False)):
        if address is not None:
            try:
                parse_address(address, listen=listen)
            except HepError as exc:
                raise typer.BadParameter(str(exc), param_hint=option) from None
    if hep_id is not None and hep_send is None:
        raise typer.BadParameter("the agent ID is sent with --hep", param_hint="--hep-id")
    if hep_id is not None or metrics is not None:  # (siptool.agent's import costs analyze ~0.15 s: only then)
        from ..agent import inputs
    if hep_id is not None:
        inputs.number("--hep-id", hep_id, 0, 0xFFFFFFFF)
    key = read_password(key_env, key_file, ("--hep-key-env", "--hep-key-file"))
    if key is not None and hep_send is None and hep_listen is None:
        raise typer.BadParameter("the HEP password is for --hep or --hep-listen", param_hint="--hep-key-env")
    served = inputs.host_port("--metrics", metrics, allow_zero=True) if metrics is not None else None
    return LiveOptions(hep_listen, hep_send, key.encode() if key is not None else None,
                       DEFAULT_HEP_ID if hep_id is None else hep_id, served)


def live_report(interface: Optional[str], bpf: Optional[str], duration: Optional[float], show: bool, thresholds=None,
                write: Optional[str] = None, ring: int = 0, ring_size: str = "100MB", buffer_mb: int = 32,
                method: str = "auto", live: LiveOptions = LiveOptions(), quiet: bool = False):
    """Capture on an interface, or receive HEP (drivers/live.py, drivers/hep.py), until Ctrl-C, SIGTERM
    or the duration; the live board on stderr when `show`, metrics served as `live` says. Returns the
    Report."""
    from ..analysis.session import Analyzer, _media_tracker
    from ..analysis.thresholds import DEFAULT
    from ..drivers.live import InterfaceSource, LiveRun, run_until_signalled

    limits = thresholds or DEFAULT
    if live.hep_listen is not None:
        from ..analysis.points import CapturePoints
        from ..drivers.hep import HepSource

        source = HepSource(live.hep_listen, live.hep_key, write, ring, ring_size)
        analyzer = CapturePoints(limits)
    else:
        source = InterfaceSource(interface, bpf, buffer_mb, write, ring, ring_size, method)
        analyzer = Analyzer(media=_media_tracker(), thresholds=limits)
        if live.hep_send is not None:
            from ..capture.hep_send import HepSender
            from ..drivers.hep import HepForward

            try:
                source = HepForward(source, HepSender(live.hep_send, live.hep_id, None, live.hep_key))
            except BaseException:
                source.close()
                raise
    observers, server = [], None
    if show:
        from ..report.live import LiveBoard

        observers.append(LiveBoard(console(stderr=True)))
    try:
        if live.metrics is not None:
            from ..analysis.events import LiveEvents
            from ..report.prometheus import Exporter

            exporter = Exporter()
            server = exporter.serve(*live.metrics)
            observers.append(LiveEvents(exporter.apply))
            if not quiet:
                note(f"Prometheus metrics at http://{_url_host(live.metrics[0])}:{server.server_port}/metrics")
        if live.hep_listen is not None and not quiet:
            note(f"receiving {source.label}")
    except BaseException:
        source.close()
        raise
    try:
        return run_until_signalled(LiveRun(source, analyzer, observers, duration))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def capture(
    interface: Optional[str] = typer.Option(None, "--interface", "-i", help="Interface to capture on (or 'any')."),
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
    hep: Optional[str] = typer.Option(None, "--hep", metavar="udp|tcp:HOST:PORT", help="Also send the SIP "
                                      "captured to this HEP collector (Homer, heplify-server, sngrep -L)."),
    hep_listen: Optional[str] = hep_listen_option(),
    hep_key_env: Optional[str] = hep_key_env_option(),
    hep_key_file: Optional[Path] = hep_key_file_option(),
    hep_id: Optional[int] = typer.Option(None, "--hep-id", metavar="N", help="Capture agent ID sent with --hep "
                                         f"(default {DEFAULT_HEP_ID})."),
    metrics: Optional[str] = metrics_option("while capturing"),
) -> None:
    """Capture live: watch calls, failures and media as they happen; the full report at the end."""
    with guarded():

        level = fail_level(fail_on)
        limits = thresholds_from(loss, jitter, mos)
        live = live_options(interface, hep_listen, hep, hep_key_env, hep_key_file, hep_id, metrics)
        if interface is None and hep_listen is None:
            raise typer.BadParameter("give an interface to capture on (-i eth0, -i any), or --hep-listen "
                                     "ADDR:PORT", param_hint="--interface")
        if hep_listen is not None and (bpf is not None or method != "auto" or buffer_mb != 32):
            raise typer.BadParameter("-f, --method and --buffer are for capturing from an interface",
                                     param_hint="--hep-listen")
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
                             buffer_mb, method, live, quiet)
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
