"""What the agent shows while it works and when it is done: the call log (typed events from
agent/events.py), a placed call's result and its JSON envelope, the live board of a capacity run,
the echo agent's line per call, a registration's lines. Renderers: they read events, results and
the Analyzer's Call (with the agent's facts in call.agent), and compute nothing."""

from __future__ import annotations

import time
from dataclasses import asdict

from ..agent.events import MediaResumed, MediaStarted, MediaStopped, Note, Received, Said, Sent
from .jsonout import _clean, call_dict
from .terminal import finding_line, streams_table

CALL_SCHEMA = "siptool.call/1.4"  # docs/json-schema.md; 1.1 findings, 1.2 `call` and the events' `type`, 1.3 targets, 1.4 `voice`
CALLS_SCHEMA = "siptool.calls/1.1"  # 1.1: served_by, failed_over
SHOWN = ("critical", "error", "warning")  # an echoed call's findings printed under its line


def event_text(e) -> str:
    """One step of the call log, in words: '-> INVITE', '<- 180 Ringing', '<- 200 OK (BYE)'."""
    if isinstance(e, (Sent, Received)):
        arrow = "->" if isinstance(e, Sent) else "<-"
        what = e.method if e.status is None else f"{e.status} {e.reason}"
        return f"{arrow} {what}" + (f" ({e.note})" if e.note else "")
    if isinstance(e, MediaStarted):
        return f"media {e.codec} to {e.address}:{e.port}"
    if isinstance(e, MediaStopped):
        return f"no RTP from the far end for {e.seconds:g} s" + (" after the answer: one-way audio" if e.never else "")
    if isinstance(e, MediaResumed):
        return "RTP from the far end again"
    if isinstance(e, Said):
        return f"-> says {e.text} ({e.seconds:.1f} s)"
    if isinstance(e, Note):
        return e.text
    return type(e).__name__


def log_line(e) -> str:
    """A step as the live call log prints it: its time (ms since the INVITE) and its words."""
    return f"[dim]{e.t_ms:9.1f} ms[/dim]  {event_text(e)}" if e.t_ms is not None else \
        f"[dim]{'':12}[/dim] {event_text(e)}"


def events_json(events: list) -> list[dict]:
    return [{"t_ms": e.t_ms, "event": event_text(e), "type": type(e).__name__.lower()} for e in events]


def call_json(res) -> dict:
    """`call --json`: the envelope (siptool.call/1.x), the Analyzer's Call of it in `call`."""
    d = {"schema": CALL_SCHEMA}
    for name in ("ok", "status", "reason", "call_id", "error", "events", "pdd_ms", "answer_ms", "codec", "ended_by",
                 "duration_s", "tx", "rx", "rtt_ms", "rtcp_rtt_ms", "one_way", "media_gaps", "dtmf_sent", "auth",
                 "hold_status", "resume_status", "cancel_status", "nat", "problems", "findings", "targets"):
        d[name] = getattr(res, name)
    d["events"] = events_json(res.events)
    d["targets"] = [_clean(t) for t in res.targets]
    d["tx"], d["rx"] = _clean(res.tx), _clean(res.rx)
    d["findings"] = [_clean(f) for f in res.findings]
    d["call"] = call_dict(res.call) if res.call is not None else None
    voice = res.call.agent.voice if res.call is not None and res.call.agent is not None else None
    d["voice"] = _clean(voice) if voice is not None else None
    return d


def summary_json(s) -> dict:
    d = {"schema": CALLS_SCHEMA, **{k: v for k, v in asdict(s).items() if k != "results"}}
    d["results"] = [call_json(r) for r in s.results]
    return d


def _fmt(v, unit="") -> str:
    return "-" if v is None else f"{v}{unit}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def render_result(out, res) -> None:
    """A placed call's result: verdict, timings, NAT, each direction's media, problems, findings."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    verdict = "[green]PASS[/green]" if res.ok else "[red]FAIL[/red]"
    head = f"{res.status} {res.reason}" if res.status else "no answer"
    out.print(f"\n{verdict}  {head}  " + (f"call-id {res.call_id}" if res.call_id else "(no INVITE sent)"))
    if res.error:
        out.print(f"[red]{res.error}[/red]")
    if len(res.targets) > 1 or any(t.found != "numeric" for t in res.targets):
        out.print("servers tried (RFC 3263):")
        for line in target_lines(res.targets):
            out.print(line)
    answered = res.status is not None and 200 <= res.status < 300
    if answered:
        out.print(f"post-dial delay {_ms(res.pdd_ms)}, answer {_ms(res.answer_ms)}, "
                  f"codec {_fmt(res.codec)}, ended by {_fmt(res.ended_by)} after {res.duration_s:.2f} s"
                  + (f", DTMF sent {res.dtmf_sent}" if res.dtmf_sent else ""))
    elif res.pdd_ms is not None:
        out.print(f"post-dial delay {_ms(res.pdd_ms)}")
    if res.nat.get("text") and res.status is not None:
        first, *rest = res.nat["text"].split("; ")  # one clause a line: fits 80 columns
        out.print(first)
        for clause in rest:
            out.print(f"     {clause}")
    if res.codec:
        t = Table(box=None, pad_edge=False)
        for col in ("direction", "packets", "lost", "loss %", "jitter ms", "MOS", "source"):
            t.add_column(col, justify="right" if col not in ("direction", "source") else "left")
        for name, f in (("sent", res.tx), ("received", res.rx)):
            t.add_row(name, str(f.packets), str(f.lost), f"{f.loss_pct:.2f}", f"{f.jitter_ms:.2f}", _fmt(f.mos), f.source)
        out.print(t)
        out.print(f"round-trip audio delay {_fmt(res.rtt_ms, ' ms')} (correlation), RTCP round trip "
                  f"{_fmt(res.rtcp_rtt_ms, ' ms')}")
    if res.report is not None and res.call is not None and res.call.streams:  # as analyze shows them
        table = streams_table(res.report, out.width)
        if table is not None:
            out.print(table)
    voice = res.call.agent.voice if res.call is not None and res.call.agent is not None else None
    if voice is not None:
        render_voice(out, voice, res.call.answer or 0.0)
    for p in res.problems:
        out.print(f"[yellow]- {p}[/yellow]")
    if res.findings:  # what `analyze` says of this call's own packets, as it prints findings
        out.print(f"Findings ({len(res.findings)}, from the call's own packets as analyze reads them)")
        for f in res.findings:
            out.print(finding_line(f.severity, f.title, f.code))
            if f.fix:
                out.print(Padding(Text("fix: " + f.fix, style="green"), (0, 0, 0, 9)))


def render_voice(out, v, answer: float) -> None:
    """A voice test's figures: the greeting, each prompt's answer, overlap, the far end's level; times
    from the answer (the 200 OK)."""
    from rich.table import Table

    level = f"{v.level_dbov:.1f} dBov" if v.level_dbov is not None else "-"
    out.print(f"Voice test: greeting {_ms(v.greeting_ms)} after the answer; its speech level {level}; "
              f"both speaking {v.overlap_ms / 1000:.1f} s" + ("; it talked over us" if v.talk_over else ""))
    if v.prompts:
        t = Table(box=None, pad_edge=False)
        for col in ("prompt", "said at s", "speech ends s", "answer after", "overlap"):  # s since the 200 OK
            t.add_column(col, justify="left" if col == "prompt" else "right", overflow="fold")
        for p in v.prompts:
            t.add_row(p.prompt, f"{p.start - answer:.2f}", f"{p.speech_end - answer:.2f}",
                      _ms(p.response_ms) if p.response_ms is not None else "no answer", f"{p.overlap_ms:.0f} ms")
        out.print(t)
def target_lines(tries) -> list[str]:
    """One line per server a request went to (report.model.TargetTry): name, address, transport,
    what happened and how long it took."""
    lines = []
    for t in tries:
        where = f"[{t.address}]:{t.port}" if ":" in t.address else f"{t.address}:{t.port}"
        took = "" if t.ms is None else f"{t.ms:.0f} ms"
        style = "green" if t.outcome == "served" else "red" if t.outcome != "skipped" else "yellow"
        lines.append(f"  {t.name} {where} {t.transport.upper()}: [{style}]{t.outcome}[/] {took}"
                     + (f"\n      {t.detail}" if t.detail else ""))
    return lines


def progress_line(done: int, total: int, res) -> str:
    """One finished call of a capacity run, when not on a terminal."""
    mark = "[green]ok[/green]" if res.ok else f"[red]{(res.error or res.reason or 'failed')[:50]}[/red]"
    return (f"[{done}/{total}] {res.call_id or '-'} {res.status or '-'} pdd {res.pdd_ms or 0:.0f} ms "
            f"MOS {res.rx.mos if res.rx.mos is not None else '-'} {mark}")


def board(f):
    """The live view of a capacity run (report.capacity_model.LiveFigures, from agent/tally.py):
    started, answered, failed, active, PDD and MOS so far."""
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    t.add_row(f"[bold]calls[/] {f.done}/{f.total} done", f"started {f.started}", f"answered {f.answered}",
              f"active {f.active}", f"[red]failed {f.failed}[/]" if f.failed else "failed 0", f"setup {f.setup_pct:.1f}%")
    pdd = f"PDD p50 {f.pdd_p50_ms:.0f} ms, p95 {f.pdd_p95_ms:.0f} ms" if f.pdd_p50_ms is not None else "PDD -"
    mos = f"MOS min {f.mos_min:.2f}, median {f.mos_median:.2f}" if f.mos_min is not None else "MOS -"
    bar_w = 30
    filled = int(bar_w * f.done / max(f.total, 1))
    t.add_row("[green]" + "█" * filled + "[/][dim]" + "░" * (bar_w - filled) + "[/]", pdd, mos, "", "", "")
    return t


def render_summary(out, s) -> None:
    out.print(f"\ncalls {s.attempted}, answered {s.answered}, passed {s.succeeded}, "
              f"setup success {100 * s.setup_ratio:.1f}%")
    if s.pdd_ms:
        out.print("post-dial delay ms: " + ", ".join(f"{k} {v}" for k, v in s.pdd_ms.items()))
    if s.mos:
        out.print("MOS received: " + ", ".join(f"{k} {v}" for k, v in s.mos.items()))
    for why, n in sorted(s.failures.items(), key=lambda kv: -kv[1]):
        out.print(f"[red]{n} x {why}[/red]")
    if s.served_by and (len(s.served_by) > 1 or s.failed_over):
        out.print(f"served by (RFC 3263; {s.failed_over} call(s) failed over):")
        for server, n in s.served_by.items():
            out.print(f"  {server}: {n}")


def echo_line(record) -> str:
    """The echo agent's line for a call that ended, from the Analyzer's Call of its signalling and
    the echo's facts (call.agent); its warnings and errors follow, one line each."""
    call = record.call
    a = call.agent if call is not None else None
    when = time.strftime("%H:%M:%S", time.localtime(call.end or call.start)) if call is not None else \
        time.strftime("%H:%M:%S")
    remote = call.caller if call is not None else f"{record.remote[0]}:{record.remote[1]}"
    outcome = a.outcome if a is not None else record.state
    ended_by = a.ended_by if a is not None else record.ended_by
    media = (f"said {len(a.said)}" if a is not None and a.said is not None else
             f"echoed {a.echoed if a else record.packets_echoed} pkts")  # a voice agent speaks, an echo echoes
    line = (f"{when} {outcome:<9} from {remote} {(a.codec if a else record.codec) or '-':<5} "
            f"{(a.held_s if a else 0.0) or 0.0:6.1f} s  {media}"
            + (f"  ended by {ended_by}" if ended_by else "") + f"  call-id {record.call_id}")  # whole: to grep for
    for st in (call.streams if call is not None else []):  # with --pcap: its media as the Analyzer read it
        line += (f"\n  RTP {st.src} > {st.dst} {st.codec} {st.packets} pkts loss {st.loss_pct:.2f}% "
                 f"jitter {st.max_jitter_ms:.1f} ms MOS {_fmt(st.mos)}")
    for f in (call.findings if call is not None else []):
        if f.severity in SHOWN:
            line += "\n  " + finding_line(f.severity, f.title, f.code).plain
    return line


def register_line(ex) -> str:
    """One REGISTER transaction's outcome."""
    what = f"{ex.status} {ex.reason}" if ex.status else f"no answer: {ex.error}"
    extra = f", granted {ex.expires} s" if ex.expires else ""
    auth = f", answered a {ex.challenged} challenge" if ex.challenged else ""
    style = "green" if ex.status and ex.status < 300 else "red"
    line = f"REGISTER {ex.contact or ''} -> [{style}]{what}[/]{extra}{auth} ({ex.rtt_ms} ms)"
    if len(ex.targets) > 1 or any(t.found != "numeric" for t in ex.targets):
        line += "\n" + "\n".join(target_lines(ex.targets))
    return line


def register_json(aor: str, registrar: str, registered: bool, reg) -> dict:
    return {"aor": aor, "registrar": registrar, "registered": registered, "refreshes": reg.refreshes,
            "public_address": f"{reg.public[0]}:{reg.public[1]}" if reg.public else None,
            "exchanges": [asdict(e) for e in reg.history]}


def register_summary(out, reg, registered: bool, keep: bool) -> None:
    grants = [e for e in reg.history if e.expires]
    if reg.public:
        out.print(f"behind NAT: the registrar sees this client at {reg.public[0]}:{reg.public[1]} "
                  f"(received/rport, RFC 3581); refreshes registered that address in Contact")
    out.print(f"{'registered' if registered else 'NOT registered'}: {reg.refreshes} refresh(es)"
              + ("" if keep or not grants else ", unregistered at the end"))
