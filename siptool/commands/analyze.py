"""`siptool analyze CAPTURE`: every call, stream, metric and finding in a capture."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import console, guarded, load_report

EPILOG = """Examples:

  siptool analyze trunk.pcap

  siptool analyze trunk.pcapng --json > report.json

  siptool analyze trunk.pcap.gz --filter 4xx          # only failed calls (status class)

  siptool analyze trunk.pcap --filter +4930123456     # calls from/to a number

  siptool analyze trunk.pcap --fail-on error          # exit 1 if any error-level finding (for CI)

Exit codes: 0 analysed; 1 --fail-on threshold reached; 2 unreadable input or bad arguments.
"""

FAIL_LEVELS = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def analyze(
    capture: Path = typer.Argument(..., help="pcap, pcapng or gzip'd capture file."),
    json_out: bool = typer.Option(False, "--json", help="Print the full report as JSON (docs/json-schema.md)."),
    filters: Optional[List[str]] = typer.Option(
        None, "--filter", "-f",
        help="Keep calls matching: a Call-ID or number substring, a status (486) or class (4xx), or a state "
             "(failed, cancelled, answered). Repeat to AND. Metrics are recomputed over the kept calls."),
    fail_on: Optional[str] = typer.Option(
        None, "--fail-on", help="Exit 1 when a finding of this severity or worse exists: critical, error, warning."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also off when not a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Reconstruct every SIP call and RTP stream in a capture, with metrics and findings."""
    with guarded():
        if fail_on is not None and fail_on not in FAIL_LEVELS:
            raise typer.BadParameter("use critical, error or warning", param_hint="--fail-on")
        report = load_report(str(capture), filters, quiet=quiet or json_out)
        if json_out:
            from ..report.jsonout import dumps

            typer.echo(dumps(report))
        else:
            from ..report.terminal import render

            render(report, console(no_color))
        if fail_on is not None:
            limit = FAIL_LEVELS[fail_on]
            if any(FAIL_LEVELS[f.severity] <= limit for f in report.all_findings()):
                raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("analyze", epilog=EPILOG)(analyze)
