"""The agent's own packets, as a capture would hold them: fed to the Analyzer as they are sent and
received (so a placed call is judged by the same code as a captured one), and written as a pcap
only when asked (`--pcap FILE`, `check --pcap-dir`).

Each packet becomes a `capture.Packet` (UDP, or TCP with running sequence numbers for TCP/TLS; TLS as
the cleartext SIP it carried), IPv4 or IPv6, timed to the nanosecond as the pcap records it, so the
Report from memory and the Report of the written file are the same. IP packets the agent crafted
itself (the fragments of `check`'s fragments probe) are kept as they left and read by the capture
side's own decoder, which joins fragments as it does for a file."""

from __future__ import annotations

from ..capture import CaptureInfo, Decoder, Packet
from ..capture.craft import IPPROTO_TCP, IPPROTO_UDP, ip_packet, tcp_segment, udp_datagram
from ..capture.writer import PcapWriter
from .clock import stamp

LINKTYPE_RAW = 101  # raw IPv4/IPv6, the version nibble tells which


class AgentTap:
    """Callable tap(direction, local, remote, data, kind, now); `report()` is the Analyzer's Report of
    everything tapped (`analyse=False`: a pcap writer only; `content`: analysis.content.ContentOptions,
    the audio decoded as `analyze --content` does); `close()` ends the pcap when one is written."""

    def __init__(self, path: str | None = None, thresholds=None, analyse: bool = True, content=None) -> None:
        from ..analysis.session import Analyzer, _media_tracker
        from ..analysis.thresholds import DEFAULT

        self.path = path
        self.analyzer = Analyzer(media=_media_tracker(content=content), thresholds=thresholds or DEFAULT) \
            if analyse else None
        self.info = CaptureInfo(path=path or "<agent>", format="agent", linktypes=["raw"])
        self.writer = PcapWriter(path, LINKTYPE_RAW) if path else None
        self._seq: dict[tuple, int] = {}
        self._report = None
        self._decoder: Decoder | None = None  # for crafted IP packets (ip_packets), made when one comes

    def __call__(self, direction: str, local, remote, data: bytes, kind: str, now: float | None = None) -> None:
        here, there = tuple(local[:2]), tuple(remote[:2])
        src, dst = (here, there) if direction == "out" else (there, here)
        t = stamp(now)  # as the reader computes it from the pcap record
        data = bytes(data)
        frame = self._count(t, (40 if ":" in src[0] else 20) + (8 if kind == "udp" else 20) + len(data))
        if kind == "udp":
            pkt = Packet(frame, t, src[0], src[1], dst[0], dst[1], "udp", data)
        else:
            seq = self._seq.get((src, dst), 1000)
            self._seq[(src, dst)] = seq + len(data)
            pkt = Packet(frame, t, src[0], src[1], dst[0], dst[1], "tcp", data, seq, 0x18)
        if self.analyzer is not None:
            self.analyzer.feed(pkt)
        if self.writer is not None:  # the IP packet is built only for the file
            if kind == "udp":
                raw = ip_packet(src[0], dst[0], IPPROTO_UDP, udp_datagram(src[0], src[1], dst[0], dst[1], data),
                                frame, dont_fragment=True)
            else:
                ack = self._seq.get((dst, src), 1000)
                seg = tcp_segment(src[0], src[1], dst[0], dst[1], pkt.tcp_seq, data, ack)
                raw = ip_packet(src[0], dst[0], IPPROTO_TCP, seg, frame, dont_fragment=True)
            self._write(t, raw)

    def ip_packets(self, packets: list[bytes], now: float | None = None) -> None:
        """Whole IP packets the agent sent as they are (capture/craft.py: the fragments of one UDP
        datagram): written as they left; the Analyzer gets the datagram once the last has passed."""
        t = stamp(now)
        if self._decoder is None:
            self._decoder = Decoder()
        for raw in packets:
            frame = self._count(t, len(raw))
            pkt = self._decoder.decode(frame, t, LINKTYPE_RAW, raw)
            if pkt is not None and self.analyzer is not None:
                self.analyzer.feed(pkt)
            self._write(t, raw)

    def _count(self, t: float, size: int) -> int:
        """One more packet at `t` of `size` bytes on the wire: its frame number."""
        info = self.info
        info.packets += 1
        info.size_bytes += size
        info.first_time = t if info.first_time is None else info.first_time
        info.last_time = t
        return info.packets

    def _write(self, t: float, raw: bytes) -> None:
        if self.writer is not None:
            sec = int(t)
            self.writer.write(sec, round((t - sec) * 1e9), raw, len(raw))

    def report(self):
        """The Report of what was tapped (once: the Analyzer finishes)."""
        if self._report is None:
            d = self._decoder
            self._report = self.analyzer.finish(self.info, d.skipped if d else None,
                                                d.fragments.flush() if d else None)
        return self._report

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Taps:
    """Several taps fed the same packets (a call's own Analyzer and the run's pcap)."""

    def __init__(self, *taps) -> None:
        self.taps = [t for t in taps if t is not None]

    def __call__(self, *packet) -> None:
        for tap in self.taps:
            tap(*packet)

    def __bool__(self) -> bool:
        return bool(self.taps)
