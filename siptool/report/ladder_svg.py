"""The ladder as a self-contained SVG picture (from ladder_picture's geometry), and an HTML page
around it for tickets. Arrowheads are markers sized in pixels (markerUnits="userSpaceOnUse"), so a
thick RTP band gets the same head as a message."""

from __future__ import annotations

from html import escape

from .ladder_layout import Ladder
from .ladder_picture import HEAD, MARKERS, Box, Group, Picture, Stroke, Text, picture
from .model import Call

FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"
ANCHOR = {"start": "", "middle": " text-anchor='middle'", "end": " text-anchor='end'"}


def svg(ladder: Ladder, ident: str = "a") -> str:
    """The picture; `ident` prefixes its marker ids, unique per picture when a page holds several."""
    return render(picture(ladder), ident)


def render(pic: Picture, ident: str = "a") -> str:
    w, h = pic.width, pic.height
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' viewBox='0 0 {w} {h}' "
           f"{FONT} font-size='12'>",
           "<defs>" + "".join(
               f"<marker id='{ident}-{k}' viewBox='0 0 10 10' refX='10' refY='5' markerUnits='userSpaceOnUse' "
               f"markerWidth='{HEAD}' markerHeight='{HEAD * 0.8:g}' orient='auto-start-reverse'>"
               f"<path d='M0,0 L10,5 L0,10 z' fill='{c}'/></marker>" for k, c in MARKERS.items()) + "</defs>",
           "<style>.label,.note{paint-order:stroke;stroke:white;stroke-width:3px;stroke-linejoin:round}</style>",
           f"<rect width='{w}' height='{h}' fill='white'/>"]
    out += [_item(item, ident) for item in pic.items]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _item(item, ident: str) -> str:
    if isinstance(item, Group):
        return (f"<g class='{item.kind}'><title>{escape(item.title)}</title>"
                + "".join(_item(x, ident) for x in item.items) + "</g>")
    if isinstance(item, Text):
        size = f" font-size='{item.size}'" if item.size != 12 else ""
        bold = " font-weight='bold'" if item.bold else ""
        role = f" class='{item.role}'" if item.role else ""
        return (f"<text x='{item.x:.1f}' y='{item.y:.1f}' fill='{item.fill}'{size}{ANCHOR[item.anchor]}{bold}"
                f"{role}>{escape(item.text)}</text>")
    if isinstance(item, Box):
        return (f"<rect x='{item.x:.1f}' y='{item.y:.1f}' width='{item.w:.1f}' height='{item.h:.1f}' rx='3' "
                f"fill='{item.fill}' stroke='{item.stroke}'/>")
    assert isinstance(item, Stroke)
    attrs = f" stroke='{item.color}' stroke-width='{item.width:g}'"
    if item.dash:
        attrs += " stroke-dasharray='" + " ".join(f"{d:g}" for d in item.dash) + "'"
    if item.opacity != 1:
        attrs += f" stroke-opacity='{item.opacity:g}'"
    if item.marker:
        attrs += f" marker-end='url(#{ident}-{item.marker})'"
    if len(item.points) == 2:
        (x1, y1), (x2, y2) = item.points
        return f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}'{attrs}/>"
    d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in item.points)
    return f"<path d='{d}' fill='none'{attrs}/>"


def html(ladders: list[tuple[Call, Ladder]], source: str) -> str:
    """One page: for each call its facts, the SVG ladder, its streams and findings."""
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>siptool ladder: {escape(source)}</title>",
             "<style>body{font-family:sans-serif;margin:20px;color:#222} table{border-collapse:collapse;"
             "margin:8px 0 16px} td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
             " th{background:#eef2f7} .sev-error,.sev-critical{color:#c62828} .sev-warning{color:#a06a00}"
             " section{margin-bottom:40px} .svg{overflow-x:auto}</style></head><body>",
             f"<h1>SIP ladder: {escape(source)}</h1>"]
    for i, (call, ladder) in enumerate(ladders, 1):
        facts = [("call", str(call.number) if call.number else "-"), ("Call-ID", call.call_id),
                 ("from", call.from_uri), ("to", call.to_uri),
                 ("final status", f"{call.final_status or '-'} {call.final_reason}"),
                 ("post-dial delay", f"{call.pdd_ms:.0f} ms" if call.pdd_ms is not None else "-"),
                 ("duration", f"{call.duration_s:.1f} s" if call.duration_s is not None else "-"),
                 ("ended", call.end_reason or "-")]
        parts.append(f"<section><h2>{escape(ladder.title)}</h2><table>")
        parts += [f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts]
        parts.append("</table>")
        parts.append(f"<div class='svg'>{svg(ladder, f'c{i}')}</div>")
        if call.streams:
            parts.append("<h3>Media streams</h3><table><tr><th>src -&gt; dst</th><th>SSRC</th><th>codec</th>"
                         "<th>packets</th><th>lost</th><th>max delta ms</th><th>jitter mean/max ms</th>"
                         "<th>MOS</th></tr>")
            for s in call.streams:
                parts.append(f"<tr><td>{escape(s.src)} -&gt; {escape(s.dst)}</td><td>0x{s.ssrc:08X}</td>"
                             f"<td>{escape(s.codec)}</td><td>{s.packets}</td><td>{s.lost} ({s.loss_pct:.1f} %)</td>"
                             f"<td>{s.max_delta_ms:.1f}</td><td>{s.mean_jitter_ms:.2f} / {s.max_jitter_ms:.2f}</td>"
                             f"<td>{'-' if s.mos is None else f'{s.mos:.2f}'}</td></tr>")
            parts.append("</table>")
        if call.findings:
            parts.append("<h3>Findings</h3><ul>")
            for f in call.findings:
                frames = f" (frames {', '.join(map(str, f.frames[:6]))})" if f.frames else ""
                parts.append(f"<li class='sev-{escape(f.severity)}'><b>{escape(f.severity.upper())}</b> "
                             f"{escape(f.title)}: {escape(f.explanation)} <i>Fix: {escape(f.fix)}</i>"
                             f"{escape(frames)}</li>")
            parts.append("</ul>")
        parts.append("</section>")
    parts.append("<p style='color:#888'>made by siptool</p></body></html>")
    return "\n".join(parts) + "\n"
