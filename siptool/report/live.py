"""The live board: what a live run shows while it captures (a LiveSnapshot, made by analysis/live.py
about twice a second) and its rendering. The renderer only lays the snapshot out; every figure in
it was measured by the analysis."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from .model import Finding


class Progress(StrEnum):
    """How far a call in progress has come (RFC 3261 13.2.2): no provisional yet, ringing, answered."""

    TRYING = "trying"
    RINGING = "ringing"
    ANSWERED = "answered"


@dataclass(slots=True)
class ActiveCall:
    call_id: str
    from_user: str
    to_user: str
    progress: Progress
    age_s: float  # since its first message, on the capture's clock
    rtp_packets: int  # RTP packets of its open streams so far
    loss_pct: float  # over the snapshot's window
    jitter_ms: float  # highest voice jitter (RFC 3550) over the snapshot's window


@dataclass(slots=True)
class FailedCall:
    start: float  # capture time of its first message
    call_id: str
    from_user: str
    to_user: str
    status: int
    reason: str


@dataclass(slots=True)
class LiveSnapshot:
    """One moment of a live run."""

    source: str  # "eth0 (udp port 5060)"
    elapsed_s: float
    packets: int  # read from the source
    sip_packets: int
    kernel_drops: int | None  # None: the source cannot tell
    writing: str  # the pcap being written, "" when none
    window_s: float  # loss and jitter are over the last this many seconds of each stream
    active_total: int
    active: list[ActiveCall] = field(default_factory=list)  # the latest calls in progress, oldest first
    failed_total: int = 0
    failed: list[FailedCall] = field(default_factory=list)  # the latest failures, oldest first
    findings_total: int = 0
    findings: list[Finding] = field(default_factory=list)  # the latest findings


def board(s: LiveSnapshot):
    """The snapshot as a rich renderable: counters, active calls with media, recent failures, findings."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    drops = "" if s.kernel_drops is None else f"  kernel drops {s.kernel_drops}"
    head = Text(f"capturing on {s.source}  {s.elapsed_s:6.1f} s  {s.packets} packets  {s.sip_packets} SIP{drops}",
                style="bold")
    if s.writing:
        head.append(f"  -> {s.writing}", style="dim")
    table = Table(title=f"active calls ({s.active_total})", caption=f"loss and jitter: last {s.window_s:.0f} s",
                  expand=False)
    for col in ("Call-ID", "from", "to", "state", "age", "RTP pkts", "loss", "jitter"):
        table.add_column(col)
    for c in s.active:
        table.add_row(c.call_id[:20], c.from_user, c.to_user, c.progress, f"{c.age_s:.0f} s", str(c.rtp_packets),
                      f"{c.loss_pct:.1f}%", f"{c.jitter_ms:.1f} ms")
    fails = Table(title=f"recent failures ({s.failed_total})", expand=False)
    for col in ("time", "Call-ID", "from", "to", "status"):
        fails.add_column(col)
    for c in s.failed:
        fails.add_row(time.strftime("%H:%M:%S", time.gmtime(c.start)), c.call_id[:20], c.from_user, c.to_user,
                      f"{c.status} {c.reason}")
    lines = Text()
    for f in s.findings:
        lines.append(f"{f.severity:8} {f.code}: {f.title}\n")
    return Group(head, table, fails, Text(f"findings so far: {s.findings_total}", style="bold"), lines)


class LiveBoard:
    """An observer of a live run (drivers/live.py) that shows each snapshot on a terminal, in place,
    and clears it when the run ends (the full report follows)."""

    def __init__(self, console) -> None:
        self.console = console
        self._live = None

    def update(self, snapshot: LiveSnapshot) -> None:
        if self._live is None:
            from rich.live import Live

            self._live = Live(board(snapshot), console=self.console, refresh_per_second=4, transient=True)
            self._live.start()
        else:
            self._live.update(board(snapshot))

    def finish(self, report) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
