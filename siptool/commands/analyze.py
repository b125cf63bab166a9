"""`siptool analyze CAPTURE`: every call, stream, metric and finding in a capture."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from ..analysis.select import FILTER_HELP
from ..status import ExitStatus
from .capture import hep_key_env_option, hep_key_file_option, hep_listen_option, live_options, live_report, \
    metrics_option
from .common import (SRTP_KEYS_HELP, TLS_KEYLOG_HELP, console, content_option, content_options, decryption_keys,
                     epilog, fail_level, fail_on_findings, filtered, guarded, load_report, thresholds_from, writing)

EPILOG = epilog([
    ("", "siptool analyze trunk.pcap"),
    ("the whole report as JSON (docs/json-schema.md)", "siptool analyze trunk.pcapng --json > report.json"),
    ("only failed calls (a status class)", "siptool analyze trunk.pcap.gz --filter 4xx"),
    ("calls from or to a number", "siptool analyze trunk.pcap --filter +4930123456"),
    ("exit 1 if any error-level finding (for CI)", "siptool analyze trunk.pcap --fail-on error"),
    ("a capture piped in", "tcpdump -i eth0 -w - udp | siptool analyze -"),
    ("live, as siptool capture", 'sudo siptool analyze -i eth0 -f "udp" --duration 30'),
    ("HEP from capture agents (Homer's protocol) for an hour, as siptool capture",
     "siptool analyze --hep-listen 0.0.0.0:9060 --duration 3600 --json"),
    ("tshark decodes instead (cross-check)", "siptool analyze trunk.pcap --engine tshark"),
    ("stricter media limits", "siptool analyze trunk.pcap --loss 0.5 --jitter 20 --mos 4.0"),
    ("what was said when: greeting, turn gaps, talk-over", "siptool analyze agent.pcap --content"),
    ("a folder of captures: rotated files as one, the rest in parallel", "siptool analyze /var/capture/"),
    ("files of one rotation, however named", "siptool analyze --rotated a.pcap b.pcap c.pcap"),
    ("on a Dask cluster (files on shared storage)", "siptool analyze /archive/ --dask tcp://sched:8786"),
    ("calls, streams, findings as Parquet tables", "siptool analyze /archive/ --parquet tables/"),
    ("size the trunk for 0.5 % blocking and 30 % growth",
     "siptool analyze day.pcap --gos 0.005 --headroom 30"),
    ("SIP over TLS, with the session keys", "siptool analyze tls.pcap --tls-keylog keys.log"),
],  "Filter states: answered (got a 2xx), up (answered, still up at the end of the capture), completed "
    "(answered and ended by BYE), unanswered, failed (3xx-6xx), cancelled, ringing (no final response).",
    "Exit codes: 0 analysed; 1 --fail-on threshold reached; 2 unreadable input or bad arguments; "
    "3 internal error.")


def analyze(
    captures: Optional[List[str]] = typer.Argument(
        None, metavar="CAPTURE...", help="pcap, pcapng or gzip'd capture files or folders of them; - reads a pipe."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON (docs/json-schema.md); "
                                  "indented on a terminal, compact into a pipe or file."),
    filters: Optional[List[str]] = typer.Option(
        None, "--filter", help=FILTER_HELP + " Metrics are recomputed over the kept calls; numbers stay."),
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", help="Exit 1 when a finding of this severity or worse exists: critical, error, warning."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours or bold (also off when not a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    interface: Optional[str] = typer.Option(
        None, "--interface", "-i", help="Capture live from this interface instead of a file (as siptool capture)."),
    bpf: Optional[str] = typer.Option(None, "--bpf", "-f", help="With -i: capture filter, tcpdump syntax "
                                      "(as tshark -f and siptool capture -f)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="With -i: stop after this many seconds."),
    loss: float = typer.Option(1.0, "--loss", metavar="PCT", help="Media finding from this packet loss %, "
                               "an error from 5 % (or from PCT if higher)."),
    jitter: float = typer.Option(30.0, "--jitter", metavar="MS", help="Media finding from this maximum "
                                 "interarrival jitter (RFC 3550, tshark's Max Jitter)."),
    mos: float = typer.Option(3.6, "--mos", metavar="MOS", help="Media finding below this estimated MOS, "
                              "an error below 3.1 (or below MOS if lower)."),
    content: bool = content_option("speech activity, levels, who spoke when (greeting latency, turn gaps, "
                                   "talk-over) and their findings (docs/content.md)"),
    response_ms: float = typer.Option(800.0, "--response-ms", metavar="MS", help="With --content: a finding when "
                                      "the callee takes longer than this to respond (voice agents aim at 800 ms)."),
    gos: float = typer.Option(0.01, "--gos", metavar="P", help="Grade of service the sizing's Erlang-B channel "
                              "count is for: the blocking probability, 0.01 = 1 %."),
    headroom: float = typer.Option(20.0, "--headroom", metavar="PCT", help="Traffic growth the sizing allows "
                                   "for: channels for the busy hour's offered traffic plus PCT %."),
    engine: str = typer.Option(
        "native", "--engine", help="Packet decoder: native (siptool's own, fast) or tshark (tshark through "
                                   "pyshark, to cross-check the native one; slower). See docs/engines.md."),
    rotated: bool = typer.Option(False, "--rotated", help="Many files: all are one rotated capture, read as "
                                 "one timeline in the order of their first packets."),
    independent: bool = typer.Option(False, "--independent", help="Many files: each is a capture of its own "
                                     "(default: files named alike but for numbers are one rotated capture)."),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N", help="Many files: analyse "
                                          "independent captures in N processes (default: every core)."),
    dask: Optional[str] = typer.Option(None, "--dask", metavar="SCHEDULER", help="Many files: analyse on "
                                       "this Dask cluster (tcp://host:8786); workers read the same paths."),
    parquet: Optional[str] = typer.Option(None, "--parquet", metavar="DIR", help="Also write calls, streams "
                                          "and findings as Parquet tables into DIR (README: At scale)."),
    tls_keylog: Optional[str] = typer.Option(None, "--tls-keylog", metavar="FILE", help=TLS_KEYLOG_HELP),
    srtp_keys: Optional[str] = typer.Option(None, "--srtp-keys", metavar="FILE", help=SRTP_KEYS_HELP),
    hep_listen: Optional[str] = hep_listen_option(),
    hep_key_env: Optional[str] = hep_key_env_option(),
    hep_key_file: Optional[Path] = hep_key_file_option(),
    write: Optional[Path] = typer.Option(None, "--write", "-w", help="With -i or --hep-listen: also write the "
                                         "packets to this pcap."),
    metrics: Optional[str] = metrics_option("while -i or --hep-listen runs"),
) -> None:
    """Reconstruct every SIP call and RTP stream in captures, with metrics and findings."""
    with guarded():
        many = bool(captures) and (len(captures) > 1 or os.path.isdir(captures[0]) or rotated or independent
                                   or dask is not None)
        capture = captures[0] if captures and not many else None
        if many and (interface is not None or engine != "native" or "-" in captures):
            raise typer.BadParameter("many captures are read by the native engine from files, not -i, - or "
                                     "--engine tshark", param_hint="CAPTURE...")
        if rotated and independent:
            raise typer.BadParameter("choose one of --rotated and --independent", param_hint="--rotated")
        if workers is not None and workers < 1:
            raise typer.BadParameter("use 1 or more", param_hint="--workers")
        if parquet is not None:
            from .common import check_folder

            check_folder(parquet, "--parquet")
        if write is not None:
            from .common import check_output

            check_output(write, "--write")
        live = live_options(interface, hep_listen, None, hep_key_env, hep_key_file, None, metrics)
        if many and hep_listen is not None:
            raise typer.BadParameter("give capture files or --hep-listen, not both", param_hint="--hep-listen")
        if many:
            interface = None
        elif (capture is None) == (interface is None and hep_listen is None):
            raise typer.BadParameter("give a capture file (or - for a pipe), -i INTERFACE or --hep-listen ADDR:PORT, "
                                     "one of them")
        if interface is None and hep_listen is None and (duration is not None or write is not None
                                                         or metrics is not None):
            raise typer.BadParameter("--duration, --write and --metrics are for live capture (-i, --hep-listen); "
                                     "to keep calls of a file use --filter", param_hint="--duration")
        if interface is None and bpf is not None:
            raise typer.BadParameter("-f/--bpf is for live capture with -i; to keep calls of a file use --filter",
                                     param_hint="-f/--bpf")
        if duration is not None and duration <= 0:
            raise typer.BadParameter("use a number of seconds above 0", param_hint="--duration")
        if engine not in ("native", "tshark"):
            raise typer.BadParameter("use native or tshark", param_hint="--engine")
        if engine == "tshark" and (capture == "-" or hep_listen is not None):
            raise typer.BadParameter("the tshark engine reads files, not a pipe or HEP", param_hint="--engine")
        if many and (tls_keylog is not None or srtp_keys is not None):
            raise typer.BadParameter("key files are read for one capture file at a time", param_hint="CAPTURE...")
        if srtp_keys is not None and (interface is not None or hep_listen is not None):
            raise typer.BadParameter("SRTP keys are for capture files, not live capture", param_hint="--srtp-keys")
        if tls_keylog is not None and (interface is not None or hep_listen is not None or capture == "-"):
            raise typer.BadParameter("decrypting TLS needs a capture file (tshark reads it a second time), "
                                     "not a pipe or a live interface", param_hint="--tls-keylog")
        limits = thresholds_from(loss, jitter, mos, response_ms)
        keys = decryption_keys(tls_keylog, srtp_keys)
        plan = sizing_plan(gos, headroom)
        level = fail_level(fail_on)
        if many:
            from ..analysis.sizing import resize
            from ..drivers.many import analyze_files

            mode = "rotated" if rotated else "independent" if independent else "auto"
            report = analyze_files(captures, mode, workers, limits, dask, content_options(content))
            resize(report, plan)
            report = filtered(report, filters)
        elif engine == "native" and interface is None and hep_listen is None:
            report = load_report(capture, filters, quiet=quiet or json_out, thresholds=limits, sizing=plan,
                                 tls_keylog=tls_keylog, srtp_keys=keys, content=content)
        elif engine == "tshark":
            from ..drivers.files import tshark_report

            report = filtered(tshark_report(capture, interface, bpf, duration, limits, plan, tls_keylog, keys,
                                            content_options(content)), filters)
        else:
            from ..analysis.sizing import resize

            report = live_report(interface, bpf, duration, not (quiet or json_out) and sys.stderr.isatty(), limits,
                                 str(write) if write else None, live=live, quiet=quiet)
            resize(report, plan)
            report = filtered(report, filters)
        if parquet is not None:
            from ..report.parquet import write_tables

            with writing(parquet):
                write_tables(report, parquet)
        if json_out:
            from ..report.jsonout import write

            # Indented for a person at a terminal; compact (and much faster) into a pipe or file.
            write(report, sys.stdout, indent=2 if sys.stdout.isatty() else None)
        else:
            from ..report.terminal import render

            render(report, console(no_color))
        fail_on_findings(report, level)


def sizing_plan(gos: float, headroom: float):
    """--gos and --headroom, range-checked, as the SizingPlan the sizing figures are for."""
    from ..analysis.sizing import SizingPlan

    if not 0 < gos < 1:
        raise typer.BadParameter("use a blocking probability above 0 and below 1 (0.01 = 1 %)", param_hint="--gos")
    if not 0 <= headroom <= 1000:
        raise typer.BadParameter("use a percentage from 0 to 1000", param_hint="--headroom")
    return SizingPlan(gos=gos, headroom_pct=headroom)


def register(app: typer.Typer) -> None:
    app.command("analyze", epilog=EPILOG)(analyze)


__all__ = ["analyze", "register", "fail_level", "ExitStatus"]
