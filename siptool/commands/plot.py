"""`siptool plot CAPTURE --call ID -o FILE.png`: a call's jitter, arrival deltas and loss over time."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import check_output, fail, guarded, writing

EPILOG = """Examples:

  siptool plot trunk.pcap --call 3f2a9c -o call.png      # Call-ID or number substring

  siptool plot trunk.pcap --call +4930123 -o call.png --dpi 150

Without --call, the capture must hold exactly one call with media.
Exit codes: 0 written; 2 unreadable capture, no such call, the call has no RTP, or an output file
that cannot be written (checked before the capture is read).
"""


def plot(
    capture: Path = typer.Argument(..., help="pcap, pcapng or gzip'd capture file."),
    call: Optional[str] = typer.Option(None, "--call", "-c", help="Call-ID or number substring."),
    output: Path = typer.Option(Path("siptool-plot.png"), "--output", "-o", help="PNG file to write."),
    dpi: int = typer.Option(100, "--dpi", help="Resolution of the PNG."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Plot one call's media: RFC 3550 jitter, packet arrival deltas and lost packets per second,
    per stream, with SIP events and findings marked."""
    with guarded():
        import sys

        from ..analysis.session import analyze_file
        from ..report.plot import plot_call
        from .ladder import pick_calls

        check_output(output, "-o", ".png")
        series: dict = {}
        report = analyze_file(str(capture), progress=not quiet and sys.stderr.isatty(), series=series)
        if call is None:
            chosen = [c for c in report.calls if c.streams]
            if len(chosen) != 1:
                ids = ", ".join(c.call_id for c in chosen[:5])
                fail(f"{len(chosen)} calls with media in this capture; pick one with --call "
                     f"({ids or 'none'})")
        else:
            chosen = pick_calls(report, call)
            if not chosen:
                ids = ", ".join(c.call_id for c in report.calls[:5]) or "none"
                fail(f"no call matches {call!r} (Call-IDs: {ids})")
            if len(chosen) > 1:
                with_media = [c for c in chosen if c.streams]
                chosen = with_media[:1] or chosen[:1]
        target = chosen[0]
        if not target.streams:
            fail(f"call {target.call_id} has no RTP in this capture: nothing to plot")
        with writing(output):
            plot_call(target, series, output, dpi)
        n = len(target.streams)
        streams = f"{n} stream{'s' if n != 1 else ''}"
        typer.echo(f"wrote {output} (call {target.number}, Call-ID {target.call_id}, {streams})", err=True)


def register(app: typer.Typer) -> None:
    app.command("plot", epilog=EPILOG)(plot)
