"""Rich terminal rendering of a Report: capture summary, calls, media, metrics, findings."""

from __future__ import annotations

import datetime as dt

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .model import Call, Finding, Report

SEVERITY_STYLE = {"critical": "bold white on red", "error": "bold red", "warning": "yellow", "info": "cyan"}
STATE_STYLE = {"completed": "green", "answered": "green", "failed": "red", "cancelled": "yellow",
               "in-progress": "blue", "no-response": "red"}


def clock(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def stamp(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


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


def capture_panel(report: Report) -> Panel:
    c = report.capture
    lines = [
        f"[bold]{c.file}[/]  {c.format}{' (gzip)' if c.compressed else ''}, link {', '.join(c.link_types) or '-'}",
        f"{c.packets:,} packets, {c.bytes:,} bytes, {c.duration_s or 0:.3f} s  ({stamp(c.first_time)} to {clock(c.last_time)})",
        f"SIP messages {c.sip_packets:,}" + (f", TLS packets {c.tls_packets:,}" if c.tls_packets else ""),
    ]
    if c.skipped:
        lines.append("skipped: " + ", ".join(f"{n:,} {why}" for why, n in sorted(c.skipped.items(), key=lambda x: -x[1])))
    if c.truncated:
        lines.append(f"[yellow]truncated: {c.truncated}[/]")
    return Panel("\n".join(lines), title="capture", title_align="left", expand=False)


def calls_table(report: Report) -> Table:
    calls = [(c.number, c) for c in report.calls if c.kind == "call"]
    with_media = any(c.streams for _, c in calls)
    table = Table(title="Calls (INVITE sessions)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("start (UTC)", no_wrap=True)
    table.add_column("from", overflow="fold", min_width=6)
    table.add_column("to", overflow="fold", min_width=6)
    table.add_column("status", no_wrap=True, overflow="ellipsis", max_width=16, min_width=7)
    table.add_column("PDD", justify="right", no_wrap=True)
    table.add_column("dur.", justify="right", no_wrap=True)
    table.add_column("msgs", justify="right", no_wrap=True)
    if with_media:
        table.add_column("media (worst MOS)", no_wrap=True, overflow="ellipsis", min_width=8)
    table.add_column("!", justify="right", no_wrap=True)
    for i, call in calls:
        worst = _worst(call.findings)
        row = [str(i), clock(call.start)[:8], call.from_user or call.from_uri, call.to_user or call.to_uri,
               _status(call), _ms(call.pdd_ms),
               f"{call.duration_s:.1f} s" if call.duration_s is not None else "-",
               f"{call.messages}" + (f" ({call.retransmissions}r)" if call.retransmissions else "")]
        if with_media:
            row.append(_media_cell(call))
        row.append(Text(str(len(call.findings)), style=SEVERITY_STYLE.get(worst, "dim")) if call.findings else "-")
        table.add_row(*row)
    return table


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


def other_table(report: Report) -> Table | None:
    groups: dict[str, list[Call]] = {}
    for call in report.calls:
        if call.kind != "call":
            groups.setdefault(call.method or call.kind.upper(), []).append(call)
    if not groups:
        return None
    table = Table(title="Other SIP traffic", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("method", "dialogs", "messages", "final responses", "from"):
        table.add_column(name)
    for method, calls in sorted(groups.items()):
        codes: dict[str, int] = {}
        for c in calls:
            key = str(c.final_status) if c.final_status else "none"
            codes[key] = codes.get(key, 0) + 1
        users = sorted({c.from_user for c in calls if c.from_user})
        table.add_row(method, str(len(calls)), str(sum(c.messages for c in calls)),
                      ", ".join(f"{k} x{v}" for k, v in sorted(codes.items())),
                      ", ".join(users[:3]) + (" ..." if len(users) > 3 else ""))
    return table


def streams_table(report: Report, width: int = 120) -> Table | None:
    rows = [(c.number, s) for c in report.calls for s in c.streams]
    rows += [(None, s) for s in report.streams]
    if not rows:
        return None
    table = Table(title="Media streams (RTP)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    wide = width >= 118  # SSRC and notes only when there is room; --json has everything
    table.add_column("call", justify="right", no_wrap=True)
    table.add_column("src -> dst", no_wrap=True, overflow="ellipsis")
    if wide:
        table.add_column("SSRC", no_wrap=True)
    table.add_column("codec", no_wrap=True, max_width=8, overflow="ellipsis")
    for name in ("pkts", "lost", "max Δ ms", "jitter ms", "MOS"):
        table.add_column(name, justify="right", no_wrap=True)
    if wide:
        table.add_column("", overflow="fold")
    for i, s in rows:
        lost_style = "red" if s.loss_pct >= 3 else "yellow" if s.loss_pct >= 1 else ""
        mos_style = "red" if s.mos and s.mos < 3.6 else "yellow" if s.mos and s.mos < 4.0 else "green"
        notes = [] if s.from_sdp else ["no SDP"]
        if s.duplicates:
            notes.append(f"{s.duplicates} dup")
        if s.out_of_order:
            notes.append(f"{s.out_of_order} late")
        if s.dtmf:
            notes.append(f"DTMF {s.dtmf}")
        if s.rtcp_rtt_ms is not None:
            notes.append(f"RTT {s.rtcp_rtt_ms:.0f} ms")
        if s.rtcp_xr is not None:  # what the receiver itself reported (RTCP XR VoIP Metrics)
            x = s.rtcp_xr
            said = [f"loss {x.loss_pct:.1f}%", f"discard {x.discard_pct:.1f}%"]
            said += [f"RTT {x.round_trip_ms} ms"] if x.round_trip_ms else []
            said += [f"MOS-LQ {x.mos_lq:.1f}"] if x.mos_lq else []
            notes.append("XR " + " ".join(said))
        cells = [str(i) if i else "-", f"{s.src} -> {s.dst}", f"{s.ssrc:08X}", s.codec, f"{s.packets:,}",
                 Text(f"{s.lost} {s.loss_pct:.1f}%", style=lost_style), f"{s.max_delta_ms:.1f}",
                 f"{s.mean_jitter_ms:.2f}/{s.max_jitter_ms:.2f}",
                 Text(f"{s.mos:.2f}", style=mos_style) if s.mos else "-", Text(", ".join(notes), style="dim")]
        table.add_row(*(cells if wide else cells[:2] + cells[3:-1]))
    return table


def metrics_table(report: Report) -> Table:
    m = report.metrics
    table = Table(title="Metrics", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")

    def pct(v):
        return "-" if v is None else f"{v:.1f} %"

    rows = [
        ("calls (INVITE sessions)", f"{m.calls}"),
        ("answered / failed / cancelled / ringing", f"{m.answered} / {m.failed} / {m.cancelled} / {m.in_progress}"),
        ("answer-seizure ratio (ASR)", pct(m.answer_seizure_ratio)),
        ("session establishment ratio (SER, RFC 6076)", pct(m.session_establishment_ratio)),
        ("session establishment effectiveness (SEER)", pct(m.session_establishment_effectiveness_ratio)),
        ("ineffective session attempts (ISA)", pct(m.ineffective_session_attempts)),
        ("session success ratio (SSR: answered, not dropped)", pct(m.session_success_ratio)),
        ("session completion ratio (SCR: ended by BYE)", pct(m.session_completion_ratio)),
        ("dropped calls (no ACK / torn down)", f"{m.dropped}"),
    ]
    if m.pdd_ms:
        rows.append(("post-dial delay mean / p95 / max", f"{_ms(m.pdd_ms['mean'])} / {_ms(m.pdd_ms['p95'])} / {_ms(m.pdd_ms['max'])}"))
    if m.session_duration_s:
        d = m.session_duration_s
        rows.append(("session duration mean / max / total", f"{d['mean']:.1f} / {d['max']:.1f} / {d['total']:.1f} s"))
    if m.final_codes:
        rows.append(("final codes", ", ".join(f"{k} x{v}" for k, v in sorted(m.final_codes.items()))))
    rows.append(("SIP messages (retransmissions)", f"{m.sip_messages:,} ({m.retransmissions})"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def _worst(findings: list[Finding]) -> str | None:
    order = ("critical", "error", "warning", "info")
    return min((f.severity for f in findings), key=order.index, default=None)


def findings_view(report: Report, limit: int = 50) -> Group | None:
    found = report.all_findings()
    if not found:
        return None
    kinds = {c.number: ("call" if c.kind == "call" else c.method or c.kind.upper()) for c in report.calls}
    parts: list = [Text(f"Findings ({len(found)})", style="bold")]
    for f in found[:limit]:
        where = f"{kinds[f.call]} {f.call}" if f.call in kinds else "capture"
        parts.append(Text.assemble((f"{f.severity.upper():8}", SEVERITY_STYLE.get(f.severity, "")), " ",
                                   (f.title, "bold"), (f"  [{where}, {f.code}]", "dim")))
        body = [Text(f.explanation)]
        if f.fix:
            body.append(Text("fix: " + f.fix, style="green"))
        if f.frames:
            body.append(Text("frames: " + ", ".join(map(str, f.frames[:12])), style="dim"))
        parts.append(Padding(Group(*body), (0, 0, 0, 9)))
    if len(found) > limit:
        parts.append(Text(f"... {len(found) - limit} more (use --json for all)", style="dim"))
    return Group(*parts)


def render(report: Report, console: Console) -> None:
    console.print(capture_panel(report))
    if any(c.kind == "call" for c in report.calls):
        console.print(calls_table(report))
    else:
        console.print(Text("No INVITE calls in this capture.", style="dim"))
    for extra in (other_table(report), streams_table(report, console.width)):
        if extra is not None:
            console.print(extra)
    console.print(metrics_table(report))
    view = findings_view(report)
    if view is not None:
        console.print(view)
    else:
        console.print(Text("No findings.", style="green"))
