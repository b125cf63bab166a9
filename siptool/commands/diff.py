"""`siptool diff A B`: the same calls seen at two capture points (inside and outside an SBC, both
sides of a B2BUA, before and after a change), compared."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .common import check_output, console, epilog, guarded, writing

EPILOG = epilog([
    ("inside and outside an SBC", "siptool diff inside.pcap outside.pcap"),
    ("one call, numbered as analyze numbers it on the first capture", "siptool diff a.pcap b.pcap --call 3"),
    ("a page with both ladders side by side", "siptool diff a.pcap b.pcap --html diff.html"),
    ("as JSON (schema siptool.diff/1, docs/json-schema.md)", "siptool diff a.pcap b.pcap --json"),
],  "Calls are paired by Call-ID; where it was rewritten (a B2BUA, topology hiding), by the From and To "
    "numbers, the INVITE's time (within --max-skew) and the SDP offer. Messages are paired by method or "
    "status, CSeq and order; hop delay = time on B - time on A, so both captures need one clock (one "
    "host, or NTP). Loss missing at both points began before the first point the stream passes; loss "
    "missing only at the second began between the two.",
    "Exit codes: 0 compared; 2 an unreadable capture, no such call on A, bad arguments, or an output file "
    "that cannot be written (checked before the captures are read).")


def diff(
    a: Path = typer.Argument(..., help="The capture nearer the caller (pcap, pcapng or gzip'd)."),
    b: Path = typer.Argument(..., help="The same traffic captured at the other point."),
    call: Optional[str] = typer.Option(None, "--call", "-c", help="Only the pair of this call of A (its number "
                                       "as analyze shows it, or its whole Call-ID)."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON (siptool.diff/1)."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write an HTML page with both ladders side by "
                                            "side."),
    max_skew: float = typer.Option(10.0, "--max-skew", metavar="S", help="Pairing without a common Call-ID: the "
                                   "INVITE on B at most this many seconds before or after A's."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also off when not a terminal)."),
) -> None:
    """Compare two captures of the same calls: pairing, hop delays, rewrites and where loss began."""
    with guarded():
        from ..analysis.diff import compare
        from ..analysis.select import find_call
        from ..drivers.files import diff_side

        if not 0 < max_skew <= 3600:
            raise typer.BadParameter("use seconds above 0, at most 3600", param_hint="--max-skew")
        if html_out is not None:
            check_output(html_out, "--html")
        side_a, side_b = diff_side(str(a)), diff_side(str(b))
        result = compare(side_a, side_b, max_skew)
        if call is not None:
            numbers = {c.number for c in find_call(side_a.report, call)}
            result.calls = [p for p in result.calls if p.number_a in numbers]
        if html_out is not None:
            from ..report.diff_html import html
            from ..report.ladder_layout import build

            def ladder(report, number):
                found = [c for c in report.calls if c.number == number]
                return build(found[0]) if found else None

            ladders = [(ladder(side_a.report, p.number_a), ladder(side_b.report, p.number_b)) for p in result.calls]
            with writing(html_out):
                html_out.write_text(html(result, ladders), encoding="utf-8")
            typer.echo(f"wrote {html_out}", err=True)
        if json_out:
            from ..report.diff_json import dumps

            sys.stdout.write(dumps(result, indent=2 if sys.stdout.isatty() else None) + "\n")
        elif html_out is None:
            from ..report.diff_terminal import render

            render(result, console(no_color))


def register(app: typer.Typer) -> None:
    app.command("diff", epilog=EPILOG)(diff)
