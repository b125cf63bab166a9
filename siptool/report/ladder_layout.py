"""The geometry of a call ladder, computed once from a Call and drawn by every renderer
(terminal, SVG/HTML, PNG, Mermaid): hosts as columns, one row per SIP message, RTP streams as bands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Call, Stream


@dataclass(slots=True)
class Row:
    """One SIP message: an arrow from column `src` to column `dst`."""

    src: int
    dst: int
    label: str  # "INVITE", "180 Ringing"
    note: str  # SDP summary, "Retry-After: 30"...
    time: float  # absolute capture time
    offset: float  # seconds since the call's first message
    delta: float  # seconds since the previous row
    frame: int
    kind: str  # "request", "provisional", "success", "failure"
    retransmission: bool
    sdp: bool


@dataclass(slots=True)
class Band:
    """One RTP stream drawn between its two hosts (columns), after the SIP rows that set it up."""

    src: int
    dst: int
    label: str  # "PCMU 200 pkts, loss 0.0 %, MOS 4.41"
    start: float
    end: float
    bad: bool  # loss, jitter or MOS past the usual thresholds


@dataclass
class Ladder:
    title: str
    subtitle: str
    hosts: list[str]  # column titles, "ip:port"
    rows: list[Row] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)


def _kind(status: int | None) -> str:
    if status is None:
        return "request"
    if status < 200:
        return "provisional"
    return "success" if status < 300 else "failure"


def build(call: Call) -> Ladder:
    """Columns in order of first appearance (the caller first), media hosts matched by IP when the
    RTP address:port is not a SIP column (media usually uses other ports than signalling)."""
    hosts: list[str] = []

    def column(endpoint: str) -> int:
        if endpoint not in hosts:
            hosts.append(endpoint)
        return hosts.index(endpoint)

    first = call.ladder[0].time if call.ladder else call.start
    sdp_by_frame: dict[int, list[str]] = {}
    for e in call.sdp:  # "SDP PCMU,PCMA sendonly" from what each message offered or answered
        names = [c.split()[1].split("/")[0] for c in e.codecs if len(c.split()) > 1]
        names = [n for n in names if n.lower() != "telephone-event"] or names
        text = ",".join(names[:3]) + ("…" if len(names) > 3 else "")
        if e.direction != "sendrecv":
            text += f" {e.direction}"
        if e.port == 0:
            text = f"{e.media} rejected"
        sdp_by_frame.setdefault(e.frame, []).append(text.strip())
    rows: list[Row] = []
    previous = first
    for step in call.ladder:
        src, dst = column(step.src), column(step.dst)
        label = step.label + (f" ({step.method})" if step.status is not None and step.method != "INVITE" else "")
        note = step.summary or ""
        if step.sdp:
            note = ("SDP " + " / ".join(sdp_by_frame.get(step.frame, [])) + ("; " + note if note else "")).strip()
        rows.append(Row(src=src, dst=dst, label=label, note=note, time=step.time, offset=step.time - first,
                        delta=step.time - previous, frame=step.frame, kind=_kind(step.status),
                        retransmission=step.retransmission, sdp=step.sdp))
        previous = step.time
    bands = [_band(s, hosts, column) for s in call.streams]
    status = f"{call.final_status} {call.final_reason}".strip() if call.final_status else call.state or "no answer"
    title = f"{call.from_user or call.from_uri or '?'} -> {call.to_user or call.to_uri or '?'}  {status}"
    facts = [f"Call-ID {call.call_id}"]
    if call.pdd_ms is not None:
        facts.append(f"PDD {call.pdd_ms:.0f} ms")
    if call.duration_s is not None:
        facts.append(f"duration {call.duration_s:.1f} s")
    if call.end_reason:
        facts.append(call.end_reason)
    return Ladder(title=title, subtitle=", ".join(facts), hosts=hosts, rows=rows, bands=bands)


def _band(s: Stream, hosts: list[str], column) -> Band:
    def media_column(endpoint: str) -> int:
        ip = endpoint.rsplit(":", 1)[0]
        for i, h in enumerate(hosts):
            if h.rsplit(":", 1)[0] == ip:
                return i
        return column(endpoint)

    mos = f" MOS {s.mos:.2f}" if s.mos is not None else ""
    label = f"RTP {s.codec} {s.packets} pkts {s.loss_pct:.1f}% lost{mos}, jitter {s.max_jitter_ms:.1f} ms"
    bad = s.loss_pct >= 1 or s.max_jitter_ms >= 30 or (s.mos is not None and s.mos < 3.6)
    return Band(src=media_column(s.src), dst=media_column(s.dst), label=label, start=s.start, end=s.end, bad=bad)
