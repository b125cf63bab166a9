"""Rich terminal rendering of a Report: capture summary, calls, media, metrics, findings."""

from __future__ import annotations

from collections import Counter

from rich.console import Console, Group
from rich.markup import escape
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .clock import clock, stamp
from .fit import Column, fit_table
from .model import Call, CallState, Finding, Report, Severity
from .sizing_view import sizing_view

SEVERITY_STYLE = {Severity.CRITICAL: "bold white on red", Severity.ERROR: "bold red", Severity.WARNING: "yellow",
                  Severity.INFO: "cyan"}
STATE_STYLE = {CallState.COMPLETED: "green", CallState.ANSWERED: "green", CallState.FAILED: "red",
               CallState.CANCELLED: "yellow", CallState.IN_PROGRESS: "blue", CallState.NO_RESPONSE: "red"}


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f} s" if v >= 10000 else f"{v:.0f} ms"


def _status(call: Call) -> Text:
    if call.final_status is None:
        return Text(call.state or "-", style=STATE_STYLE.get(call.state, "dim"))
    if call.state == "answered":
        return Text(f"{call.final_status} (still up)", style="green")
    style = "green" if call.final_status < 300 else "yellow" if call.final_status in (486, 487, 600) else "red"
    return Text(f"{call.final_status} {call.final_reason}".strip(), style=style)


def _end_stamp(first: float | None, last: float | None) -> str:
    """The end of a span: its time of day, with the date too when the date differs from the start's."""
    if first is None or last is None:
        return "-"
    same = stamp(first)[:10] == stamp(last)[:10]
    return clock(last) if same else stamp(last)


def capture_panel(report: Report) -> Panel:
    c = report.capture
    lines = [
        f"[bold]{c.file}[/]  {c.format}{' (gzip)' if c.compressed else ''}, link {', '.join(c.link_types) or '-'}",
        f"{c.packets:,} packets, {c.bytes:,} bytes, {c.duration_s or 0:.3f} s",
        f"{stamp(c.first_time)} to {_end_stamp(c.first_time, c.last_time)}",
        f"SIP messages {c.sip_packets:,}" + (f", TLS packets {c.tls_packets:,}" if c.tls_packets else ""),
    ]
    if c.skipped:
        lines.append("skipped: " + ", ".join(f"{n:,} {why}" for why, n in sorted(c.skipped.items(), key=lambda x: -x[1])))
    if c.truncated:
        lines.append(f"[yellow]truncated: {c.truncated}[/]")
    lines += sources_lines(report)
    return Panel("\n".join(lines), title="capture", title_align="left", expand=False)


def point_numbers(report: Report) -> dict[str, int]:
    """Capture points numbered 1.. in the order the report lists them (files, else calls)."""
    names = [s.capture_point for s in report.sources] or [c.capture_point for c in report.calls]
    return {p: n for n, p in enumerate(dict.fromkeys(p for p in names if p is not None), 1)}


def sources_lines(report: Report, most: int = 8) -> list[str]:
    """A set of captures: how its files were grouped, and each capture point's files; HEP agents
    (capture points without files) by name when there are several."""
    numbers = point_numbers(report)
    points: dict[str, list[str]] = {}
    for src in report.sources:
        points.setdefault(src.capture_point, []).append(src.file)
    if not points and len(numbers) > 1:
        points = {point: [] for point in numbers}
    if not points:
        return []
    lines = [f"[dim]{escape(report.grouping)}[/]"]
    for point, files in list(points.items())[:most]:
        lines.append(escape(f"  [{numbers[point]}] {point}"
                            + (f": {len(files)} files, {files[0]} to {files[-1]}" if len(files) > 1 else "")))
    if len(points) > most:
        lines.append(f"  and {len(points) - most} more capture points")
    return lines


def calls_table(report: Report, width: int = 120) -> Table:
    calls = [c for c in report.calls if c.kind == "call"]
    with_media = any(c.streams for c in calls)
    columns = [Column("#", "right", priority=9), Column("start", priority=3), Column("from", fold=8, priority=8),
               Column("to", fold=8, priority=8), Column("status", fold=14, priority=9),
               Column("PDD", "right", priority=6), Column("dur.", "right", priority=4, label="duration"),
               Column("msgs", "right", priority=2)]
    if with_media:
        columns.append(Column("media", fold=12, priority=7))
    columns.append(Column("!", "right", priority=5, label="findings"))
    points = point_numbers(report)
    if len(points) > 1:  # a set of captures or HEP agents: which capture point saw the call
        columns.insert(1, Column("at", "right", priority=7, label="capture point"))
    rows = []
    for call in calls:
        worst = _worst(call.findings)
        row = ([str(call.number)] + ([f"[{points.get(call.capture_point, '-')}]"] if len(points) > 1 else [])
               + [clock(call.start)[:8], call.from_user or call.from_uri or "-",
               call.to_user or call.to_uri or "-", _status(call), _ms(call.pdd_ms),
               f"{call.duration_s:.1f} s" if call.duration_s is not None else "-",
               f"{call.messages}" + (f" ({call.retransmissions}r)" if call.retransmissions else "")])
        if with_media:
            row.append(_media_cell(call))
        row.append(Text(str(len(call.findings)), style=SEVERITY_STYLE.get(worst, "dim")) if call.findings else "-")
        rows.append(row)
    return fit_table(columns, rows, width, host=5 if len(points) > 1 else 4, title="Calls (INVITE sessions; times UTC)",
                     title_justify="left")


def _media_cell(call: Call) -> Text:
    if not call.streams:
        return Text("none", style="red" if call.answer is not None else "dim")
    codecs = sorted({s.codec for s in call.streams})
    scores = [s.mos for s in call.streams if s.mos is not None]
    text = f"{'/'.join(codecs)} x{len(call.streams)}"
    if scores:
        worst = min(scores)
        style = "red" if worst < 3.6 else "yellow" if worst < 4.0 else "green"
        return Text.assemble(text + " ", (f"{worst:.2f}", style))
    return Text(text)


def other_table(report: Report, width: int = 120) -> Table | None:
    groups: dict[str, list[Call]] = {}
    for call in report.calls:
        if call.kind != "call":
            groups.setdefault(call.method or call.kind.upper(), []).append(call)
    if not groups:
        return None
    columns = [Column("method", priority=9), Column("numbers", fold=12, priority=6),
               Column("dialogs", "right", priority=7), Column("messages", "right", priority=5),
               Column("final responses", fold=12, priority=8), Column("from", fold=10, priority=4)]
    rows = []
    for method, calls in sorted(groups.items()):
        codes: dict[str, int] = {}
        for c in calls:
            key = str(c.final_status) if c.final_status else "none"
            codes[key] = codes.get(key, 0) + 1
        users = sorted({c.from_user for c in calls if c.from_user})
        rows.append([method, _calls_text([c.number for c in calls], {}, 4).split(" ", 1)[1],
                     f"{len(calls):,}", f"{sum(c.messages for c in calls):,}",
                     ", ".join(f"{k} x{v:,}" for k, v in sorted(codes.items())),
                     ", ".join(users[:3]) + (" ..." if len(users) > 3 else "")])
    return fit_table(columns, rows, width, host=4, title="Other SIP traffic", title_justify="left")


def streams_table(report: Report, width: int = 120) -> Table | None:
    rows_in = [(c.number, s) for c in report.calls for s in c.streams]
    rows_in += [(None, s) for s in report.streams]
    if not rows_in:
        return None
    columns = [Column("call", "right", priority=9), Column("src -> dst", fold=18, priority=9),
               Column("SSRC", priority=1), Column("codec", priority=7), Column("pkts", "right", priority=8),
               Column("lost", "right", priority=8), Column("max Δ\nms", "right", priority=4, label="max Δ ms"),
               Column("jitter ms\nmean/max", "right", priority=6, label="jitter ms"),
               Column("MOS", "right", priority=8), Column("notes", fold=12, priority=2)]
    rows = []
    for i, s in rows_in:
        lost_style = "red" if s.loss_pct >= 3 else "yellow" if s.loss_pct >= 1 else ""
        mos_style = "red" if s.mos and s.mos < 3.6 else "yellow" if s.mos and s.mos < 4.0 else "green"
        notes = [] if s.from_sdp else ["no SDP"]
        if s.srtp is not None:
            notes.append(srtp_note(s.srtp))
        if s.media != "audio":
            notes.append(s.media)
        if s.duplicates:
            notes.append(f"{s.duplicates} dup")
        if s.out_of_order:
            notes.append(f"{s.out_of_order} late")
        if s.dtmf:
            notes.append(f"DTMF {s.dtmf}")
        if s.rtcp_rtt_ms is not None:
            notes.append(f"RTT {s.rtcp_rtt_ms:.0f} ms")
        if s.mos_model is not None:  # G.722, Opus: the wideband E-model with estimated codec values
            notes.append("MOS: wideband estimate")
        if s.rtcp_xr is not None:  # what the receiver itself reported (RTCP XR VoIP Metrics)
            x = s.rtcp_xr
            said = [f"loss {x.loss_pct:.1f}%", f"discard {x.discard_pct:.1f}%"]
            said += [f"RTT {x.round_trip_ms} ms"] if x.round_trip_ms else []
            said += [f"MOS-LQ {x.mos_lq:.1f}"] if x.mos_lq else []
            notes.append("XR " + " ".join(said))
        rows.append([str(i) if i else "-", f"{s.src} -> {s.dst}", f"{s.ssrc:08X}", s.codec, f"{s.packets:,}",
                     Text(f"{s.lost} {s.loss_pct:.1f}%", style=lost_style), f"{s.max_delta_ms:.1f}",
                     f"{s.mean_jitter_ms:.2f}/{s.max_jitter_ms:.2f}",
                     Text(f"{s.mos:.2f}", style=mos_style) if s.mos is not None else "-",
                     Text(", ".join(notes), style="dim")])
    if not any(r[-1].plain for r in rows):
        columns, rows = columns[:-1], [r[:-1] for r in rows]
    return fit_table(columns, rows, width, host=1, title="Media streams (RTP)", title_justify="left")


def _s(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.2f}"


def _gaps(g) -> str:
    return "-" if g is None else f"{g.p50_ms:.0f}/{g.p95_ms:.0f}/{g.max_ms:.0f} ({g.count})"


def _level(call: Call, side: str) -> str:
    levels = [s.content.level_dbov for s in call.streams
              if s.content is not None and s.content.side == side and s.content.level_dbov is not None]
    return f"{min(levels):.1f}" if levels else "-"


CONTENT_HINT = ("Content analysis is off: --content decodes the audio (who spoke when, greeting latency, "
                "turn gaps, talk-over, silence, levels).")


def content_off(report: Report) -> bool:
    """Audio streams whose content was not analysed (analyze without --content): the hint says how."""
    return any(s.media == "audio" and s.content is None for c in report.calls for s in c.streams)


def conversation_table(report: Report, width: int = 120) -> Table | None:
    """Content analysis, per answered call: when each side first sent and spoke after the answer,
    the response gaps of each side, the overlaps and the speech levels (analysis/conversation.py)."""
    calls = [c for c in report.calls if c.conversation is not None]
    if not calls:
        return None
    columns = [Column("call", "right", priority=9),
               Column("callee first\nspeech s", "right", priority=8, label="callee first speech s"),
               Column("first RTP s\ncaller/callee", "right", priority=3, label="first RTP s caller/callee"),
               Column("callee responds\np50/p95/max ms", "right", priority=8, label="callee responds ms"),
               Column("caller responds\np50/p95/max ms", "right", priority=4, label="caller responds ms"),
               Column("overlap\ns", "right", priority=6, label="overlap s"),
               Column("level dBov\ncaller/callee", "right", priority=7, label="level dBov caller/callee"),
               Column("notes", fold=12, priority=2)]
    rows = []
    for call in calls:
        v = call.conversation
        notes = [f"{s.content.side or s.src}: {'silent' if s.content.silent else 'not decoded, ' + s.content.error}"
                 for s in call.streams if s.content is not None and (s.content.silent or not s.content.decoded)]
        notes += [f"{s.content.side}: clipped {s.content.clipped_pct:.1f}%" for s in call.streams
                  if s.content is not None and s.content.clipped_pct >= 0.1]
        overlap = f"{v.overlap_s:.1f} ({len(v.overlaps)})" if v.overlaps else "-"
        rows.append([str(call.number), _s(v.callee_first_speech_ms),
                     f"{_s(v.caller_first_rtp_ms)}/{_s(v.callee_first_rtp_ms)}", _gaps(v.callee_responses),
                     _gaps(v.caller_responses), overlap, f"{_level(call, 'caller')}/{_level(call, 'callee')}",
                     Text(", ".join(notes), style="dim")])
    return fit_table(columns, rows, width, host=len(columns) - 1,  # notes: the column that folds
                     title="Conversation (content analysis; from the 200 OK)", title_justify="left")


KEYING = {"sdes": "SDES", "dtls-srtp": "DTLS-SRTP", "zrtp": "ZRTP", "unknown": "keys unknown"}


def srtp_note(srtp) -> str:
    """A stream's SRTP state in a few words: checked and what failed, or why it was not checked."""
    if srtp.keying == "unknown":
        return "SRTP? signalling unreadable"
    if srtp.checked:
        failed = [f"{srtp.auth_failures} auth fail"] if srtp.auth_failures else []
        failed += [f"{srtp.replayed} replayed"] if srtp.replayed else []
        return f"SRTP {srtp.suite} " + (", ".join(failed) if failed else "ok")
    if srtp.packets:
        return f"SRTP {srtp.auth_failures} of {srtp.packets} fail auth"
    return f"SRTP ({KEYING.get(srtp.keying, srtp.keying)}) not checked"


def metrics_table(report: Report) -> Table:
    m = report.metrics
    table = Table(title="Metrics", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def pct(v):
        return "-" if v is None else f"{v:.1f} %"

    rows = [
        ("calls (INVITE sessions)", f"{m.calls:,}"),
        ("answered / failed / cancelled / ringing", f"{m.answered:,} / {m.failed:,} / {m.cancelled:,} / {m.in_progress:,}"),
        ("answer-seizure ratio (ASR)", pct(m.answer_seizure_ratio)),
        ("session establishment ratio (SER, RFC 6076)", pct(m.session_establishment_ratio)),
        ("session establishment effectiveness (SEER)", pct(m.session_establishment_effectiveness_ratio)),
        ("ineffective session attempts (ISA)", pct(m.ineffective_session_attempts)),
        ("session success ratio (SSR: answered, not dropped)", pct(m.session_success_ratio)),
        ("session completion ratio (SCR: ended by BYE)", pct(m.session_completion_ratio)),
        ("dropped calls (no ACK / torn down)", f"{m.dropped:,}"),
    ]
    if m.pdd_ms:
        rows.append(("post-dial delay mean / p95 / max", f"{_ms(m.pdd_ms['mean'])} / {_ms(m.pdd_ms['p95'])} / {_ms(m.pdd_ms['max'])}"))
    if m.session_duration_s:
        d = m.session_duration_s
        rows.append(("session duration mean / max / total", f"{d['mean']:.1f} / {d['max']:.1f} / {d['total']:.1f} s"))
    if m.final_codes:
        rows.append(("final codes", ", ".join(f"{k} x{v:,}" for k, v in sorted(m.final_codes.items()))))
    rows.append(("SIP messages (retransmissions)", f"{m.sip_messages:,} ({m.retransmissions:,})"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def _worst(findings: list[Finding]) -> Severity | None:
    return min((f.severity for f in findings), key=lambda s: s.rank, default=None)


def findings_view(report: Report, limit: int = 50) -> Group | None:
    """Findings grouped by code and severity (analysis/groups.py): a finding repeated on many calls is
    shown once, with how many and which calls."""
    groups = report.finding_groups
    if not groups:
        return None
    kinds = {c.number: ("call" if c.kind == "call" else c.method or c.kind.upper()) for c in report.calls}
    total = sum(g.count for g in groups)
    outside = Counter((f.code, f.severity) for f in report.all_findings() if f.call is None)
    parts: list = [Text(f"Findings ({total:,}" + (f", in {len(groups)} kinds)" if len(groups) < total else ")"),
                        style="bold")]
    for g in groups[:limit]:
        f = g.first
        if g.count == 1:
            where = f"{kinds[f.call]} {f.call}" if f.call in kinds else "capture"
        else:
            places = [_calls_text(g.calls, kinds)] if g.calls else []
            places += [f"{outside[g.code, g.severity]:,} outside any call"] if outside[g.code, g.severity] else []
            where = f"{g.count:,} times: " + ", ".join(places)
        parts.append(finding_line(g.severity, g.title, f"{where}; {g.code}"))
        body = [Text(f.explanation)]
        if f.fix:
            body.append(Text("fix: " + f.fix, style="green"))
        if f.frames:
            lead = "frames: " if g.count == 1 else f"frames ({kinds.get(f.call, 'capture')} {f.call or ''}): "
            body.append(Text(lead.replace(" )", ")") + ", ".join(map(str, f.frames[:12])), style="dim"))
        parts.append(Padding(Group(*body), (0, 0, 0, 9)))
    if len(groups) > limit:
        parts.append(Text(f"... {len(groups) - limit} more kinds of finding (use --json for all)", style="dim"))
    return Group(*parts)


def finding_line(severity: Severity, title: str, tag: str) -> Text:
    """A finding's first line, as analyze and call print it: severity, title, [where; code]."""
    return Text.assemble((f"{severity.upper():8}", SEVERITY_STYLE.get(severity, "")), " ", (title, "bold"),
                         (f"  [{tag}]", "dim"))


def _calls_text(numbers: list[int], kinds: dict[int, str], limit: int = 12) -> str:
    """'calls 1-4, 7, 9' (runs joined), cut after `limit` pieces with the count left."""
    names = {kinds.get(n, "call") for n in numbers}
    word = ("call" if len(numbers) == 1 else "calls") if names == {"call"} else "calls/exchanges"
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    pieces = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs]
    text = ", ".join(pieces[:limit]) + (f", ... ({len(numbers):,} in all)" if len(pieces) > limit else "")
    return f"{word} {text}"


def render(report: Report, console: Console) -> None:
    console.print(capture_panel(report))
    if any(c.kind == "call" for c in report.calls):
        console.print(calls_table(report, console.width))
    else:
        console.print(Text("No INVITE calls in this capture.", style="dim"))
    for extra in (other_table(report, console.width), streams_table(report, console.width),
                  conversation_table(report, console.width)):
        if extra is not None:
            console.print(extra)
    if content_off(report):
        console.print(Text(CONTENT_HINT, style="dim"))
    console.print(metrics_table(report))
    for table in sizing_view(report, console.width):
        console.print(table)
    view = findings_view(report)
    if view is not None:
        console.print(view)
    else:
        console.print(Text("No findings.", style="green"))
