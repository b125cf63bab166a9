"""The geometry of a call ladder, computed once from a Call and drawn by every renderer
(terminal, SVG/HTML, PNG, Mermaid): hosts as columns, one row per SIP message, RTP streams as bands.

Also the text rules every renderer shares: how times and deltas are written, and how a label is
folded into lines of a given width without ever cutting a number in two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

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
    transport: str = ""  # UDP, TCP, TLS, WS...

    @property
    def text(self) -> str:
        """The arrow's label as drawn: the message, marked when it is a retransmission."""
        return self.label + (" (retrans)" if self.retransmission else "")


@dataclass(slots=True)
class Band:
    """One RTP stream drawn between its two hosts (columns), after the SIP rows that set it up."""

    src: int
    dst: int
    label: str  # "RTP PCMU 196 pkts, 4 lost (2.0%), MOS 4.24, jitter 14.1 ms"
    start: float
    end: float
    bad: bool  # judged past a limit by the analysis (Stream.past_limits)
    frame: int = 0  # the stream's first packet


@dataclass(slots=True)
class Lane:
    """One side's speech (content analysis) on the call's time line, under the ladder."""

    label: str  # "caller speech"
    streams: str  # the streams it is drawn from, "src -> dst, ..."
    spurts: list[tuple[float, float]]  # talk spurts, capture times
    note: str = ""  # "silent", "not decoded (...)", level


@dataclass(slots=True)
class Mark:
    """A SIP message marked on the lanes' time line (the answer, the hang-up), with its frame."""

    time: float
    label: str
    frame: int


@dataclass
class Ladder:
    title: str
    subtitle: str
    hosts: list[str]  # column titles, "ip:port"
    rows: list[Row] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    lanes: list[Lane] = field(default_factory=list)  # speech per side (content analysis), when known
    span: tuple[float, float] = (0.0, 0.0)  # the lanes' time line: first message to last message or speech
    marks: list[Mark] = field(default_factory=list)


def clock(t: float) -> str:
    """Capture time of day, UTC, to the millisecond: "00:56:37.942"."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:12]


def delta_text(seconds: float) -> str:
    """Time since the previous message: "+0.2 ms", "+205.0 ms", "+4.505 s"."""
    return f"{seconds * 1000:+.1f} ms" if abs(seconds) < 1 else f"{seconds:+.3f} s"


UNITS = {"ms", "s", "pkts", "pkt", "lost", "kbps", "%", "dup", "late"}
NAMES = {"MOS", "jitter", "PDD", "duration", "loss", "Retry-After:"}  # a name and the figure after it


def words(text: str) -> list[str]:
    """The pieces a label may be folded between: its words, a figure kept with its unit and name
    ("jitter 14.1 ms", "196 pkts,", "MOS 4.24"), so no line ends between a name, number and unit."""
    out: list[str] = []
    for w in text.split():
        number = re.match(r"^[(+\-]?\d", w)
        if out and w.rstrip(",;)") in UNITS and re.match(r"^[(+\-]?\d", out[-1].split()[-1]):
            out[-1] += " " + w
        elif out and number and out[-1] in NAMES:
            out[-1] += " " + w
        else:
            out.append(w)
    return out


def fold(text: str, room: int) -> list[str]:
    """`text` in lines of at most `room` characters, broken between words (see `words`). A piece
    longer than a line is broken between its own words, and a word longer than a line (a long
    Call-ID, an IPv6 address) is split over lines, never shortened: every character is kept."""
    room = max(room, 1)
    if len(text) <= room and "\n" not in text:
        return [text]
    lines: list[str] = []
    for piece in words(text):
        for w in [piece] if len(piece) <= room else piece.split(" "):
            if lines and len(lines[-1]) + 1 + len(w) <= room:
                lines[-1] += " " + w
                continue
            while len(w) > room:
                lines.append(w[:room])
                w = w[room:]
            lines.append(w)
    return lines or [""]


def fold_host(host: str, room: int) -> list[str]:
    """A column title "ip:port" in lines of `room` characters: whole when it fits, else the address
    and ":port" on lines of their own (so the port is never cut)."""
    if len(host) <= room:
        return [host]
    ip, sep, port = host.rpartition(":")
    if not sep or not port.isdigit():
        return fold(host, room)
    return fold(ip, room) + fold(":" + port, room)


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
                        retransmission=step.retransmission, sdp=step.sdp, transport=step.transport))
        previous = step.time
    announced: dict[str, str] = {}  # media address -> the SIP host that first announced it
    for e in call.sdp:
        if e.port:
            announced.setdefault(_endpoint(e.address, e.port), e.sender)
    bands = [_band(s, hosts, column, announced) for s in call.streams]
    status = f"{call.final_status} {call.final_reason}".strip() if call.final_status else call.state or "no answer"
    number = f"call {call.number}: " if call.number else ""
    title = f"{number}{call.from_user or call.from_uri or '?'} -> {call.to_user or call.to_uri or '?'}  {status}"
    facts = [f"Call-ID {call.call_id}"]
    if call.pdd_ms is not None:
        facts.append(f"PDD {call.pdd_ms:.0f} ms")
    if call.duration_s is not None:
        facts.append(f"duration {call.duration_s:.1f} s")
    if call.end_reason:
        facts.append(call.end_reason)
    ladder = Ladder(title=title, subtitle=", ".join(facts), hosts=hosts, rows=rows, bands=bands)
    _lanes(call, ladder)
    return ladder


def _lanes(call: Call, ladder: Ladder) -> None:
    """One lane per side whose audio was analysed, and the time line they share: from the call's first
    message to its last message or speech, with the answer (2xx to the INVITE) and the BYE marked."""
    lanes = []
    for side in ("caller", "callee"):
        mine = [s for s in call.streams if s.content is not None and s.content.side == side]
        if not mine:
            continue
        spurts = sorted((x.start, x.end) for s in mine for x in s.content.talk_spurts)
        notes = ["silent" if s.content.silent else "not decoded" if not s.content.decoded
                 else f"{s.content.level_dbov:.0f} dBov" if s.content.level_dbov is not None else "" for s in mine]
        lanes.append(Lane(label=f"{side} speech", streams=", ".join(f"{s.src} -> {s.dst}" for s in mine),
                          spurts=spurts, note=", ".join(n for n in notes if n)))
    if not lanes:
        return
    times = [r.time for r in ladder.rows] + [t for lane in lanes for sp in lane.spurts for t in sp]
    times += [s.end for s in call.streams if s.content is not None]
    ladder.lanes, ladder.span = lanes, (min(times), max(times))
    for step in call.ladder:
        if step.retransmission:
            continue
        if step.method == "INVITE" and step.status is not None and 200 <= step.status < 300:
            ladder.marks.append(Mark(step.time, step.label, step.frame))
        elif step.method == "BYE" and step.status is None:
            ladder.marks.append(Mark(step.time, "BYE", step.frame))


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _band(s: Stream, hosts: list[str], column, announced: dict[str, str]) -> Band:
    def media_column(endpoint: str, other: int | None = None) -> int:
        """The SIP column of the same IP (not `other`'s); of several, the one whose SDP announced
        this address (RFC 4566 c= and m=). Media from an address no SIP host has: its own column."""
        ip = endpoint.rsplit(":", 1)[0]
        same = [i for i, h in enumerate(hosts) if h.rsplit(":", 1)[0] == ip and i != other]
        sender = announced.get(endpoint)
        if sender in hosts and hosts.index(sender) in same:
            return hosts.index(sender)
        if same:
            return same[0]
        return column(endpoint)

    src = media_column(s.src)
    dst = src if s.dst == s.src else media_column(s.dst, other=src)
    mos = f", MOS {s.mos:.2f}" if s.mos is not None else ""
    label = (f"RTP {s.codec} {s.packets} pkts, {s.lost} lost ({s.loss_pct:.1f}%){mos}, "
             f"jitter {s.max_jitter_ms:.1f} ms")
    return Band(src=src, dst=dst, label=label, start=s.start, end=s.end, bad=s.past_limits, frame=s.first_frame)
