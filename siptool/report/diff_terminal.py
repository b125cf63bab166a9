"""`siptool diff` in the terminal: the two capture points, then each call pair: its messages with
their hop delays, what was rewritten, and each stream's loss and where it began. Fitted to the
width (report/fit.py); everything shown is in the CaptureDiff."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .diff_model import CallPair, CaptureDiff, DiffSide, MessagePair, StreamPair
from .fit import Column, fit_table
from .clock import stamp

HOW = {"call-id": "Call-ID", "users+time+sdp": "users, time and SDP", "users+time": "users and time"}


def _side_line(name: str, s: DiffSide) -> Text:
    extra = ", ".join(x for x in (f"truncated: {s.truncated}" if s.truncated else "",
                                  f"{s.malformed:,} malformed SIP" if s.malformed else "") if x)
    return Text.assemble((f"{name}: ", "bold"), s.file, (f"  {s.packets:,} packets, {s.sip_messages:,} SIP, "
                         f"{s.calls:,} call{'s' if s.calls != 1 else ''}, from {stamp(s.first_time)}", "dim"),
                         (f" ({extra})" if extra else "", "yellow"))


def _name(pair: CallPair) -> str:
    a = f"a call {pair.number_a}" if pair.number_a is not None else "a: none"
    b = f"b call {pair.number_b}" if pair.number_b is not None else "b: none"
    return f"{a} = {b}" if pair.matched_by else f"{a}, {b}"


def _final(code: int | None, reason: str) -> str:
    return f"{code} {reason}".strip() if code is not None else "no final response"


def _delay(m: MessagePair) -> Text:
    if m.hop_by_hop and m.frame_a is not None and m.frame_b is not None:
        return Text("each hop its own", style="dim")
    if m.delay_ms is None:
        return Text(f"on {'a' if m.frame_b is None else 'b'} only", style="yellow")
    return Text(f"{m.direction} {abs(m.delay_ms):,.2f} ms")


def messages_table(pair: CallPair, width: int):
    columns = [Column("message", fold=12, priority=9), Column("from", priority=3, label="sent by"),
               Column("a #", "right", priority=7, label="frame on a"), Column("b #", "right", priority=7,
                                                                          label="frame on b"),
               Column("hop delay (b - a)", "right", priority=8, label="hop delay")]
    rows = [[m.label + (" (retransmission)" if m.retransmission else ""), m.sender or "-",
             str(m.frame_a) if m.frame_a is not None else "-", str(m.frame_b) if m.frame_b is not None else "-",
             _delay(m)] for m in pair.messages]
    return fit_table(columns, rows, width, host=0)


def rewrites_view(pair: CallPair) -> list:
    """Each change: the field, the messages showing it and how it changed, then its value on a and on
    b in a hanging column (values are long: Record-Routes, masked Contacts; they wrap, never cut)."""
    out: list = []
    for r in pair.rewrites:
        out.append(Text.assemble((r.field, "bold"), f" in {', '.join(r.messages)}: ",
                                 (r.note or "rewritten", "yellow")))
        values = Table.grid(padding=(0, 1))
        values.add_column(style="dim", no_wrap=True)
        values.add_column(overflow="fold")
        values.add_row("    a:", r.a)
        values.add_row("    b:", r.b)
        out.append(values)
    return out


def _loss(s: StreamPair) -> Text:
    if not s.paired_by:
        return Text(f"seen on {'a' if s.ssrc_b is None else 'b'} only", style="yellow")
    up, down = s.upstream, "b" if s.upstream == "a" else "a"
    parts = []
    if s.lost_before:
        parts.append((f"{s.lost_before:,} lost before {up} (seq {_seq(s.lost_before_seq, s.lost_before)})", "red"))
    if s.lost_between:
        parts.append((f"{s.lost_between:,} lost between {up} and {down} (seq "
                      f"{_seq(s.lost_between_seq, s.lost_between)})", "red"))
    if s.missed_upstream:
        parts.append((f"{s.missed_upstream:,} seen at {down} only (missed by {up}'s capture)", "yellow"))
    if not parts:
        return Text(f"no loss at either point ({up} first)", style="green")
    out = Text()
    for i, (words, style) in enumerate(parts):
        out.append(("; " if i else "") + words, style=style)
    return out


def _seq(shown: list[int], count: int) -> str:
    return ", ".join(map(str, shown)) + (", ..." if count > len(shown) else "")


def streams_table(pair: CallPair, width: int):
    columns = [Column("stream", fold=14, priority=9), Column("a pkts/lost", "right", priority=8),
               Column("b pkts/lost", "right", priority=8), Column("where loss began", fold=20, priority=9)]
    rows = []
    for s in pair.streams:
        ssrc = f"{s.ssrc_a if s.ssrc_a is not None else s.ssrc_b:08X}"
        if s.ssrc_a is not None and s.ssrc_b is not None and s.ssrc_a != s.ssrc_b:
            ssrc = f"{s.ssrc_a:08X} -> {s.ssrc_b:08X}"
        rows.append([f"{s.direction or 'unknown direction'} {s.codec} SSRC {ssrc}",
                     f"{s.packets_a:,}/{s.lost_a:,}" if s.ssrc_a is not None else "-",
                     f"{s.packets_b:,}/{s.lost_b:,}" if s.ssrc_b is not None else "-", _loss(s)])
    return fit_table(columns, rows, width, host=0)


def render(diff: CaptureDiff, console: Console) -> None:
    width = console.width
    console.print(_side_line("a", diff.a))
    console.print(_side_line("b", diff.b))
    how = ", ".join(f"{n:,} by {HOW[k]}" for k, n in diff.paired_by.items())
    console.print(Text(f"{diff.matched:,} call{'s' if diff.matched != 1 else ''} paired" + (f" ({how})" if how else "")
                       + f", {diff.only_a:,} on a only, {diff.only_b:,} on b only", style="bold"))
    console.print(Text("hop delay = time on b - time on a of the same message: a->b passed a first; the "
                       "two captures must share one clock", style="dim"))
    for note in diff.notes:
        console.print(Text(note, style="dim"))
    for pair in diff.calls:
        console.print()
        console.print(Text.assemble((_name(pair), "bold"), f"  {pair.from_user or '-'} -> {pair.to_user or '-'}"))
        console.print(Text(("paired by " + HOW[pair.matched_by] + ": " if pair.matched_by else "") + pair.match_note,
                           style="dim"))
        finals = f"final: a {_final(pair.final_a, pair.reason_a)}" if pair.number_a is not None else ""
        if pair.number_b is not None:
            finals += ("; " if finals else "final: ") + f"b {_final(pair.final_b, pair.reason_b)}"
        differ = pair.matched_by and pair.final_a != pair.final_b
        console.print(Text(finals + ("  (they differ)" if differ else ""), style="red" if differ else ""))
        for note in pair.notes:
            console.print(Text(note, style="yellow"))
        if pair.messages:
            if pair.only_a or pair.only_b:
                console.print(Text(f"{pair.only_a:,} message(s) seen on a only, {pair.only_b:,} on b only",
                                   style="yellow"))
            console.print(messages_table(pair, width))
        if pair.rewrites:
            console.print(Text("Rewritten between a and b", style="italic"))
            for line in rewrites_view(pair):
                console.print(line)
        elif pair.matched_by and not pair.notes:
            console.print(Text("No header or SDP rewritten", style="green"))
        if pair.streams:
            console.print(Text("Media", style="italic"))
            console.print(streams_table(pair, width))
