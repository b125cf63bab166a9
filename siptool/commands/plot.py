"""`siptool plot CAPTURE --call ID -o FILE.png`: a call's jitter, arrival deltas and loss over time."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..analysis.select import FILTER_HELP
from .common import call_with_media, check_output, content_option, content_options, epilog, fail, guarded, writing

EPILOG = epilog([
    ("call 4, as siptool analyze numbers it", "siptool plot trunk.pcap --call 4 -o call.png"),
    ("the one call with media left by a filter", "siptool plot trunk.pcap --filter +4930123 -o call.png --dpi 150"),
    ("with who spoke when under jitter and loss", "siptool plot agent.pcap --call 1 --content -o call.png"),
    ("concurrency and failures over time (sizing)", "siptool plot day.pcap --sizing -o sizing.png"),
],  "Without --call, the capture (or what --filter keeps) must hold exactly one call with media. "
    "--sizing plots the whole capture (or the calls --filter keeps) instead: channels held, answered calls, "
    "the Erlang-B channel counts, attempts and 503/486/480 over time.",
    "Exit codes: 0 written; 2 unreadable capture, no such call, the call has no RTP, or an output file "
    "that cannot be written (checked before the capture is read).")


def plot(
    capture: Path = typer.Argument(..., help="pcap, pcapng or gzip'd capture file."),
    call: Optional[str] = typer.Option(None, "--call", "-c", help="Call number (as analyze shows it) or whole Call-ID."),
    filters: Optional[List[str]] = typer.Option(None, "--filter", help=FILTER_HELP),
    output: Path = typer.Option(Path("siptool-plot.png"), "--output", "-o", help="PNG file to write."),
    dpi: int = typer.Option(100, "--dpi", help="Resolution of the PNG."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    content: bool = content_option("a panel of each stream's speech under jitter and loss"),
    sizing: bool = typer.Option(False, "--sizing", help="Plot the capture's concurrency and failures over time "
                                "instead of one call (analyze's sizing)."),
) -> None:
    """Plot one call's media over time, or with --sizing the capture's concurrency and failures."""
    with guarded():
        import sys

        from ..analysis.select import filter_report, no_match
        from ..drivers.files import analyze_file
        from ..report.plot import plot_call

        check_output(output, "-o", ".png")
        if sizing:
            if call is not None:
                raise typer.BadParameter("--sizing plots every call; pick calls with --filter", param_hint="--call")
            plot_sizing_of(capture, filters, output, dpi, quiet)
            return
        series: dict = {}
        report = analyze_file(str(capture), progress=not quiet and sys.stderr.isatty(), series=series,
                              content=content_options(content))
        total = len(report.calls)
        report = filter_report(report, filters or [])
        if call is None and filters and not report.calls:
            fail(no_match(filters, total))
        target = call_with_media(report, call)
        if not target.streams:
            fail(f"call {target.call_id} has no RTP in this capture: nothing to plot")
        with writing(output):
            plot_call(target, series, output, dpi)
        n = len(target.streams)
        streams = f"{n} stream{'s' if n != 1 else ''}"
        typer.echo(f"wrote {output} (call {target.number}, Call-ID {target.call_id}, {streams})", err=True)


def plot_sizing_of(capture: Path, filters: Optional[List[str]], output: Path, dpi: int, quiet: bool) -> None:
    """--sizing: the report's sizing series as a PNG."""
    import sys

    from ..analysis.select import filter_report, no_match
    from ..drivers.files import analyze_file
    from ..report.sizing_plot import plot_sizing

    report = analyze_file(str(capture), progress=not quiet and sys.stderr.isatty())
    total = len(report.calls)
    report = filter_report(report, filters or [])
    if filters and not report.calls:
        fail(no_match(filters, total))
    if report.sizing is None:
        fail(f"{capture}: no INVITE sessions " + ("left by --filter" if filters else "in this capture")
             + ": nothing to size")
    with writing(output):
        plot_sizing(report.sizing, output, f"{capture}: {report.sizing.attempts:,} INVITE sessions", dpi)
    typer.echo(f"wrote {output} (sizing of {report.sizing.attempts:,} INVITE sessions)", err=True)


def register(app: typer.Typer) -> None:
    app.command("plot", epilog=EPILOG)(plot)
