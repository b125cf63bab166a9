"""`siptool diff --html`: one page for a ticket. Per call pair: how it was paired, the messages with
their hop delays, what was rewritten, each stream's loss and where it began, and the call's ladder
as each capture point saw it, side by side (the ladder SVG of report/ladder_svg.py)."""

from __future__ import annotations

from html import escape

from .diff_model import CallPair, CaptureDiff
from .diff_terminal import HOW, _final, _loss, _name
from .ladder_layout import Ladder
from .ladder_svg import svg

STYLE = ("body{font-family:sans-serif;margin:20px;color:#222} table{border-collapse:collapse;margin:8px 0 16px}"
         " td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left;vertical-align:top}"
         " th{background:#eef2f7} td.v{font-family:monospace;word-break:break-all;max-width:420px}"
         " .bad{color:#c62828} .warn{color:#a06a00} .good{color:#1a7f37} section{margin-bottom:48px}"
         " .sides{display:flex;gap:24px;align-items:flex-start} .side{flex:1 1 0;min-width:0;overflow-x:auto}")


def _table(head: list[str] | None, rows: list[list[str]], raw: bool = False) -> str:
    out = ["<table>" + ("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>" if head else "")]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c if raw else escape(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def _messages(pair: CallPair) -> str:
    rows = []
    for m in pair.messages:
        if m.hop_by_hop and m.frame_a is not None and m.frame_b is not None:
            delay = "each hop its own"
        elif m.delay_ms is None:
            delay = f"<span class='warn'>on {'a' if m.frame_b is None else 'b'} only</span>"
        else:
            delay = f"{m.direction} {abs(m.delay_ms):,.2f} ms"
        rows.append([escape(m.label + (" (retransmission)" if m.retransmission else "")), escape(m.sender or "-"),
                     str(m.frame_a or "-"), str(m.frame_b or "-"), delay])
    return _table(["message", "sent by", "frame on a", "frame on b", "hop delay (b - a)"], rows, raw=True)


def _rewrites(pair: CallPair) -> str:
    if not pair.rewrites:
        return "<p class='good'>No header or SDP rewritten.</p>" if pair.matched_by else ""
    rows = [[escape(r.field), escape(", ".join(r.messages)), f"<span class='v'>{escape(r.a)}</span>",
             f"<span class='v'>{escape(r.b)}</span>", f"<span class='warn'>{escape(r.note or 'rewritten')}</span>"]
            for r in pair.rewrites]
    return "<h3>Rewritten between a and b</h3>" + _table(["field", "in", "on a", "on b", "change"], rows, raw=True)


def _streams(pair: CallPair) -> str:
    if not pair.streams:
        return ""
    rows = []
    for s in pair.streams:
        ssrc = s.ssrc_a if s.ssrc_a is not None else s.ssrc_b
        rows.append([f"{s.direction or 'unknown direction'} {s.codec} SSRC {ssrc:08X}",
                     f"{s.src_a} -> {s.dst_a}" if s.src_a else "-", f"{s.packets_a:,} / {s.lost_a:,}",
                     f"{s.src_b} -> {s.dst_b}" if s.src_b else "-", f"{s.packets_b:,} / {s.lost_b:,}",
                     _loss(s).plain])
    return "<h3>Media</h3>" + _table(["stream", "on a", "a packets / lost", "on b", "b packets / lost",
                                      "where loss began"], rows)


def html(diff: CaptureDiff, ladders: list[tuple[Ladder | None, Ladder | None]]) -> str:
    """The page; `ladders` holds each call pair's ladder on a and on b (None where unseen)."""
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>siptool diff: {escape(diff.a.file)} / {escape(diff.b.file)}</title>",
             f"<style>{STYLE}</style></head><body>", "<h1>One call, two capture points</h1>",
             _table(["", "file", "packets", "SIP messages", "calls"],
                    [[side, s.file, f"{s.packets:,}", f"{s.sip_messages:,}", f"{s.calls:,}"]
                     for side, s in (("a", diff.a), ("b", diff.b))]),
             f"<p>{diff.matched:,} paired, {diff.only_a:,} on a only, {diff.only_b:,} on b only. Hop delay = time "
             "on b - time on a of the same message (a-&gt;b: it passed a first); the two captures must share "
             "one clock.</p>"]
    parts += [f"<p>{escape(n)}</p>" for n in diff.notes]
    for i, (pair, (lad_a, lad_b)) in enumerate(zip(diff.calls, ladders), 1):
        facts = [["paired by", HOW.get(pair.matched_by, "seen on one side only")], ["how", pair.match_note],
                 ["from / to", f"{pair.from_user or '-'} -> {pair.to_user or '-'}"],
                 ["Call-ID on a / b", f"{pair.call_id_a or '-'} / {pair.call_id_b or '-'}"],
                 ["final on a / b", f"{_final(pair.final_a, pair.reason_a) if pair.number_a is not None else '-'}"
                                    f" / {_final(pair.final_b, pair.reason_b) if pair.number_b is not None else '-'}"]]
        facts += [["note", n] for n in pair.notes]
        parts += [f"<section><h2>{escape(_name(pair))}</h2>", _table(None, facts), "<h3>Messages</h3>",
                  _messages(pair), _rewrites(pair), _streams(pair), "<div class='sides'>"]
        for side, lad in (("a", lad_a), ("b", lad_b)):
            body = svg(lad, f"p{i}{side}") if lad is not None else "<p>not seen here</p>"
            parts.append(f"<div class='side'><h3>as seen on {side}: {escape(getattr(diff, side).file)}</h3>{body}</div>")
        parts.append("</div></section>")
    parts.append("<p style='color:#888'>made by siptool</p></body></html>")
    return "\n".join(parts) + "\n"
