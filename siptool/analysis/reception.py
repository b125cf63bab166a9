"""What receivers reported about each RTP source: RTCP report blocks (RFC 3550 6.4.1) and XR VoIP
Metrics (RFC 3611 4.7), kept by the source's SSRC *and* the reporter's transport address.

A report block names the source it is about by SSRC only, but one SSRC can travel in two streams
of a capture: an echo (SIPp -rtp_echo, siptool echo) sends the caller's packets back with the
caller's SSRC, and an SBC relaying RTP can keep it on both legs. The caller's report about what
came back then names its own SSRC, and read by SSRC alone it would become the far end's report
about the caller's stream. So a stream takes the reports of its own receiver: the RTCP sent from
its destination's address, on the RTP port + 1 (RFC 3550 11) or on the RTP port itself (rtcp-mux,
RFC 5761). When that receiver's RTCP comes from elsewhere (NAT, an a=rtcp port), the reports of
anyone but the stream's sender stand in: a sender never reports on a stream it sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from ..report.model import RtcpXr

Address = tuple[str, int]
T = TypeVar("T")


@dataclass
class Blocks:
    """One reporter's report blocks about one source (or several reporters' together)."""

    at: float = 0.0  # capture time of the latest
    loss: float = 0.0  # highest fraction lost, percent (one report interval each)
    jitter: int = 0  # interarrival jitter of the latest, timestamp units
    lost: int = 0  # cumulative number of packets lost, latest
    rtt: list[float] = field(default_factory=list)  # round trips measured from the blocks, ms


class Reception:
    """`block(...)`, `voip_metrics(...)` as RTCP passes; `blocks_about`, `xr_about` a stream's."""

    def __init__(self) -> None:
        self._blocks: dict[int, dict[Address | None, Blocks]] = {}  # SSRC -> reporter -> its blocks
        self._xr: dict[int, dict[Address | None, tuple[float, RtcpXr]]] = {}  # ... -> (time, latest XR)

    def block(self, ssrc: int, reporter: Address | None, time: float, loss_pct: float, jitter: int, lost: int,
              rtt_ms: float | None) -> None:
        b = self._blocks.setdefault(ssrc, {}).setdefault(reporter, Blocks())
        b.at, b.loss, b.jitter, b.lost = time, max(b.loss, loss_pct), jitter, lost
        if rtt_ms is not None and len(b.rtt) < 1000:
            b.rtt.append(rtt_ms)

    def voip_metrics(self, ssrc: int, reporter: Address | None, time: float, xr: RtcpXr) -> None:
        self._xr.setdefault(ssrc, {})[reporter] = (time, xr)

    def xr_reports(self, ssrc: int, reporter: Address | None) -> int:
        """XR VoIP Metrics blocks this reporter sent about the source so far."""
        seen = self._xr.get(ssrc, {}).get(reporter)
        return seen[1].reports if seen else 0

    def blocks_about(self, ssrc: int, src: Address, dst: Address) -> Blocks | None:
        """The report blocks about the stream src -> dst (several reporters' merged: the highest
        loss, the latest jitter and cumulative loss, every round trip)."""
        heard = sorted(_about(self._blocks.get(ssrc), src, dst), key=lambda b: b.at)
        if len(heard) < 2:
            return heard[0] if heard else None
        return Blocks(heard[-1].at, max(b.loss for b in heard), heard[-1].jitter, heard[-1].lost,
                      [r for b in heard for r in b.rtt][:1000])

    def xr_about(self, ssrc: int, src: Address, dst: Address) -> RtcpXr | None:
        """The latest XR VoIP Metrics about the stream src -> dst."""
        heard = _about(self._xr.get(ssrc), src, dst)
        return max(heard, key=lambda t: t[0])[1] if heard else None


def _about(heard: dict[Address | None, T] | None, src: Address, dst: Address) -> list[T]:
    """Of what reporters said about a source, what is about the stream src -> dst: its receiver's
    (from dst's address, RTP port + 1 or the port itself), else everyone's but its sender's."""
    if not heard:
        return []
    host, port = dst
    for reporter in ((host, port + 1), (host, port)):
        if reporter in heard:
            return [heard[reporter]]
    sender = ((src[0], src[1]), (src[0], src[1] + 1))
    return [h for reporter, h in heard.items() if reporter not in sender]
