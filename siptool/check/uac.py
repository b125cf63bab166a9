"""The checks' view of the SIP user agent (siptool/agent): a few coroutines returning Outcomes.

Every operation's own packets are fed through the same Analyzer as `analyze`, so a check's ladder and
findings (missing ACK, one-way audio, ...) come from the one set of rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..report.model import Finding, Report
from .result import ladder_text


@dataclass
class Outcome:
    """One agent operation: the final status of its main request, figures, and the analysed signalling."""

    status: int | None = None
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    ladder: str = ""
    error: str = ""  # could not run: transport error, timeout before any response


def analyse_pcap(path) -> Report | None:
    """The Report of a pcap the agent wrote of its own traffic (None when it wrote nothing)."""
    import os

    from ..analysis.session import analyze_file

    if not path or not os.path.exists(path) or os.path.getsize(path) <= 24:
        return None
    return analyze_file(path)


def absorb_report(out: Outcome, report: Report | None, call_id: str | None = None) -> None:
    """Ladder and findings of the call(s) in the report (one call when call_id is given)."""
    if report is None:
        return
    calls = [c for c in report.calls if call_id is None or c.call_id == call_id]
    out.ladder = "\n\n".join(ladder_text(c.ladder) for c in calls if c.ladder)
    seen = set()
    for c in calls:
        for f in c.findings:
            key = (f.code, f.title)
            if key not in seen:
                seen.add(key)
                out.findings.append(f)
        if c.ok_retransmissions:
            out.figures.setdefault("ok_retransmissions", c.ok_retransmissions)


class Driver:
    """Runs check operations through siptool.agent for one suite target.

    NOT WIRED YET: siptool.agent had no user agent when this was written. The checks (builtin.py) call:

      await options(uri) -> Outcome                  figures: rtt_ms
      await register(password, expires) -> Outcome   status = final REGISTER response after the challenge
      await call(uri, codecs=("PCMU",), duration=5.0, dtmf="", hold=False, cancel_after=None,
                 transport=None) -> Outcome          status = final INVITE response; figures: pdd_ms, codec,
                 packets_tx/rx, mos_tx/rx, loss_pct_tx/rx, jitter_ms_tx/rx, duration_s, ended_by
                 ("local"/"remote"), dtmf_rx, telephone_event, hold_status, resume_status, cancel_status,
                 answered_before_cancel, ok_retransmissions
      await calls(uri, n, codecs, duration) -> list[Outcome]   n concurrent calls

    Each should save its own packets as a pcap (the agent's --pcap) and fill ladder/findings with
    absorb_report(outcome, analyse_pcap(path)).
    """

    def __init__(self, target) -> None:
        self.target = target
        try:
            from .. import agent  # noqa: F401
            from ..agent import ua  # noqa: F401
        except ImportError:
            from ..errors import SiptoolError
            raise SiptoolError("the SIP user agent (siptool.agent) is not available in this build") from None

    def close(self) -> None:
        pass
