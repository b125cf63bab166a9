"""`siptool ladder CAPTURE`: the call flow as a terminal ladder, SVG, HTML, PNG or Mermaid."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ..analysis.select import FILTER_HELP
from .common import (TLS_KEYLOG_HELP, check_output, console, content_option, epilog, fail, guarded, load_report,
                     writing)

EPILOG = epilog([
    ("every call, one ladder after another", "siptool ladder trunk.pcap"),
    ("call 4, as siptool analyze numbers it", "siptool ladder trunk.pcap --call 4"),
    ("one call by its whole Call-ID", "siptool ladder trunk.pcap --call 3f2a9c@10.0.0.1"),
    ("a page for a ticket: facts, ladder, streams, findings",
     "siptool ladder trunk.pcap --filter +4930123 --html ticket.html"),
    ("pictures", "siptool ladder trunk.pcap --call 4 --svg ladder.svg --png ladder.png"),
    ("with each side's speech under the ladder", "siptool ladder call.pcap --content --html call.html"),
    ("a Mermaid sequence diagram for wikis", "siptool ladder trunk.pcap --call 4 --mermaid > flow.mmd"),
],  "Exit codes: 0 drawn; 2 unreadable capture, no such call, no calls in it, or an output file that "
    "cannot be written (checked before the capture is read).")


def pick_calls(report, call: Optional[str], include_other: bool = True):
    """`--call N|CALL-ID` (find_call: a call number or a whole Call-ID), else every call left by
    --filter (INVITE sessions only unless include_other)."""
    from ..analysis.select import find_call

    if call is not None:
        return find_call(report, call)
    return report.calls if include_other else [c for c in report.calls if c.kind == "call"]


def ladder(
    capture: Path = typer.Argument(..., help="pcap, pcapng or gzip'd capture file."),
    call: Optional[str] = typer.Option(None, "--call", "-c", help="Call number (as analyze shows it) or whole "
                                       "Call-ID (default: every call)."),
    filters: Optional[List[str]] = typer.Option(None, "--filter", help=FILTER_HELP),
    svg_out: Optional[Path] = typer.Option(None, "--svg", help="Write the ladder(s) as an SVG picture."),
    html_out: Optional[Path] = typer.Option(None, "--html", help="Write an HTML page: facts, ladder, streams, findings."),
    png_out: Optional[Path] = typer.Option(None, "--png", help="Write the ladder as a PNG picture (first call)."),
    mermaid: bool = typer.Option(False, "--mermaid", help="Print a Mermaid sequence diagram instead."),
    all_methods: bool = typer.Option(False, "--all", help="Also REGISTER, OPTIONS... exchanges (default: calls only, "
                                     "unless --call picks one)."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours (also off when not a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    tls_keylog: Optional[str] = typer.Option(None, "--tls-keylog", metavar="FILE", help=TLS_KEYLOG_HELP),
    content: bool = content_option("in the pictures, each side's speech on the call's time line"),
) -> None:
    """Draw the SIP call flow: hosts as columns, messages as arrows, RTP streams as bands."""
    with guarded():
        from ..report import ladder as text
        from ..report.ladder_layout import build

        for path, option, suffix in ((svg_out, "--svg", None), (html_out, "--html", None), (png_out, "--png", ".png")):
            if path is not None:
                check_output(path, option, suffix)
        report = load_report(str(capture), filters, quiet=quiet or mermaid, tls_keylog=tls_keylog, content=content)
        chosen = pick_calls(report, call, include_other=all_methods or call is not None)
        if not chosen:
            fail(f"{capture}: no SIP calls " + ("left by --filter" if filters else "in this capture")
                 + ("" if all_methods else " (try --all for REGISTER/OPTIONS)"))
        ladders = [(c, build(c)) for c in chosen]
        written = []
        if svg_out is not None:
            from ..report.ladder_svg import svg

            if len(ladders) == 1:
                with writing(svg_out):
                    svg_out.write_text(svg(ladders[0][1]), encoding="utf-8")
                written.append(str(svg_out))
            else:  # one file per call: NAME-1.svg, NAME-2.svg...
                for i, (_, lad) in enumerate(ladders, 1):
                    path = svg_out.with_name(f"{svg_out.stem}-{i}{svg_out.suffix or '.svg'}")
                    with writing(path):
                        path.write_text(svg(lad), encoding="utf-8")
                    written.append(str(path))
        if html_out is not None:
            from ..report.ladder_svg import html

            with writing(html_out):
                html_out.write_text(html(ladders, str(capture)), encoding="utf-8")
            written.append(str(html_out))
        if png_out is not None:
            from ..report.ladder_png import png

            with writing(png_out):
                png(ladders[0][1], png_out)
            written.append(str(png_out))
        if mermaid:
            typer.echo("\n".join(text.mermaid(lad) for _, lad in ladders), nl=False)
            return
        if written:
            typer.echo("wrote " + ", ".join(written), err=True)
            return
        out = console(no_color)
        for i, (_, lad) in enumerate(ladders):
            if i:
                out.print()
            for line in text.terminal(lad, out.width):
                out.print(line, overflow="ignore", crop=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("ladder", epilog=EPILOG)(ladder)
