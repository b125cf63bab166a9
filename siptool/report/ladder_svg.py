"""The ladder as a self-contained SVG picture, and an HTML page around it for tickets."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape

from .ladder_layout import Ladder
from .model import Call

COLORS = {"request": "#1f5fa8", "provisional": "#a06a00", "success": "#1a7f37", "failure": "#c62828"}
COL_W, ROW_H, TOP, LEFT, BAND_H = 220, 30, 70, 170, 26
FONT = "font-family='DejaVu Sans Mono, Menlo, Consolas, monospace'"


def svg(ladder: Ladder) -> str:
    n = max(len(ladder.hosts), 2)
    xs = [LEFT + COL_W // 2 + i * COL_W for i in range(n)]
    width = LEFT + n * COL_W + 20
    height = TOP + ROW_H * (len(ladder.rows) + 1) + BAND_H * len(ladder.bands) + 30
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}' {FONT} font-size='12'>",
           "<defs>" + "".join(
               f"<marker id='a-{k}' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='8' markerHeight='8' "
               f"orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='{c}'/></marker>"
               for k, c in list(COLORS.items()) + [("retrans", "#999999"), ("media", "#7b1fa2"),
                                                     ("bad", "#c62828")]) + "</defs>",
           f"<rect width='{width}' height='{height}' fill='white'/>",
           f"<text x='10' y='20' font-size='14' font-weight='bold'>{escape(ladder.title)}</text>",
           f"<text x='10' y='38' fill='#555'>{escape(ladder.subtitle)}</text>"]
    bottom = height - 15
    for x, host in zip(xs, ladder.hosts):
        out.append(f"<rect x='{x - COL_W // 2 + 8}' y='{TOP - 22}' width='{COL_W - 16}' height='20' rx='3' "
                   f"fill='#eef2f7' stroke='#8aa'/>")
        out.append(f"<text x='{x}' y='{TOP - 8}' text-anchor='middle' font-weight='bold'>{escape(host)}</text>")
        out.append(f"<line x1='{x}' y1='{TOP}' x2='{x}' y2='{bottom}' stroke='#bbb' stroke-dasharray='4 3'/>")
    y = TOP + ROW_H
    for row in ladder.rows:
        clock = datetime.fromtimestamp(row.time, timezone.utc).strftime("%H:%M:%S.%f")[:12]
        delta = f"+{row.delta * 1000:.1f} ms" if row.delta < 1 else f"+{row.delta:.3f} s"
        out.append(f"<text x='10' y='{y + 4}' fill='#555'>{clock}</text>")
        out.append(f"<text x='{LEFT - 10}' y='{y + 4}' fill='#888' text-anchor='end'>{delta}</text>")
        kind = "retrans" if row.retransmission else row.kind
        color = "#999999" if row.retransmission else COLORS[row.kind]
        dash = " stroke-dasharray='6 4'" if row.retransmission else ""
        label = row.label + (" (retrans)" if row.retransmission else "")
        x1, x2 = xs[row.src], xs[row.dst]
        title = f"<title>frame {row.frame}: {escape(label)} {escape(row.note)}</title>"
        if x1 == x2:
            out.append(f"<g class='msg'>{title}<path d='M{x1},{y - 6} h40 v12 h-40' fill='none' stroke='{color}'"
                       f"{dash} marker-end='url(#a-{kind})'/><text x='{x1 + 46}' y='{y + 4}' fill='{color}'>"
                       f"{escape(label)}</text></g>")
        else:
            mid = (x1 + x2) / 2
            out.append(f"<g class='msg'>{title}<line x1='{x1}' y1='{y}' x2='{x2}' y2='{y}' stroke='{color}' "
                       f"stroke-width='1.6'{dash} marker-end='url(#a-{kind})'/>"
                       f"<text x='{mid}' y='{y - 5}' text-anchor='middle' fill='{color}'>{escape(label)}</text>")
            if row.note:
                out.append(f"<text x='{mid}' y='{y + 12}' text-anchor='middle' fill='#777' font-size='10'>"
                           f"{escape(row.note)}</text>")
            out.append("</g>")
        y += ROW_H
    y += 6
    for band in ladder.bands:
        x1, x2 = xs[band.src], xs[band.dst]
        color = "#c62828" if band.bad else "#7b1fa2"
        marker = "bad" if band.bad else "media"
        out.append(f"<g class='rtp'><title>{escape(band.label)}</title><line x1='{x1}' y1='{y}' x2='{x2}' y2='{y}' "
                   f"stroke='{color}' stroke-width='5' stroke-opacity='0.35' marker-end='url(#a-{marker})'/>"
                   f"<text x='{(x1 + x2) / 2}' y='{y - 6}' text-anchor='middle' fill='{color}' font-size='11'>"
                   f"{escape(band.label)}</text></g>")
        y += BAND_H
    out.append("</svg>")
    return "\n".join(out) + "\n"


def html(ladders: list[tuple[Call, Ladder]], source: str) -> str:
    """One page: for each call its facts, the SVG ladder, its streams and findings."""
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>siptool ladder: {escape(source)}</title>",
             "<style>body{font-family:sans-serif;margin:20px;color:#222} table{border-collapse:collapse;"
             "margin:8px 0 16px} td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
             " th{background:#eef2f7} .sev-error,.sev-critical{color:#c62828} .sev-warning{color:#a06a00}"
             " section{margin-bottom:40px} .svg{overflow-x:auto}</style></head><body>",
             f"<h1>SIP ladder: {escape(source)}</h1>"]
    for call, ladder in ladders:
        facts = [("Call-ID", call.call_id), ("from", call.from_uri), ("to", call.to_uri),
                 ("final status", f"{call.final_status or '-'} {call.final_reason}"),
                 ("post-dial delay", f"{call.pdd_ms:.0f} ms" if call.pdd_ms is not None else "-"),
                 ("duration", f"{call.duration_s:.1f} s" if call.duration_s is not None else "-"),
                 ("ended", call.end_reason or "-")]
        parts.append(f"<section><h2>{escape(ladder.title)}</h2><table>")
        parts += [f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts]
        parts.append("</table>")
        parts.append(f"<div class='svg'>{svg(ladder)}</div>")
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
