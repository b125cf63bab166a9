"""The agent's own packets, as a capture would hold them: fed to the Analyzer as they are sent and
received (so a placed call is judged by the same code as a captured one), and written as a pcap
only when asked (`--pcap FILE`, `check --pcap-dir`).

Each packet becomes a `capture.Packet` (UDP, or TCP with running sequence numbers for TCP/TLS; TLS as
the cleartext SIP it carried), IPv4 or IPv6, timed to the nanosecond as the pcap records it, so the
Report from memory and the Report of the written file are the same, but for one thing a pcap cannot
say: the Analyzer in memory reads TLS as decrypted TLS (transport TLS: no finding about secrets in
clear SIP), and WebSocket as WS or WSS, while the written file shows what they carried as TCP (a WS
connection's handshake and frames, read back as WS)."""

from __future__ import annotations

import socket
import struct

from ..capture import CaptureInfo, Packet
from ..capture.writer import PcapWriter
from .clock import stamp

LINKTYPE_RAW = 101  # raw IPv4/IPv6, the version nibble tells which
STREAMS = {"tls": "TLS", "ws": "WS", "wss": "WSS"}  # connections the Analyzer reads in the clear, with their transport


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

    def __call__(self, direction: str, local, remote, data: bytes, kind: str, now: float | None = None) -> None:
        here, there = tuple(local[:2]), tuple(remote[:2])
        src, dst = (here, there) if direction == "out" else (there, here)
        t = stamp(now)  # as the reader computes it from the pcap record
        sec = int(t)
        nsec = round((t - sec) * 1e9)
        data = bytes(data)
        frame = self.info.packets + 1
        if kind == "udp":
            pkt = Packet(frame, t, src[0], src[1], dst[0], dst[1], "udp", data)
        else:
            seq = self._seq.get((src, dst), 1000)
            self._seq[(src, dst)] = seq + len(data)
            pkt = Packet(frame, t, src[0], src[1], dst[0], dst[1], "tcp", data, seq, 0x18)
        info = self.info
        info.packets = frame
        info.size_bytes += (40 if ":" in src[0] else 20) + (8 if kind == "udp" else 20) + len(data)
        info.first_time = t if info.first_time is None else info.first_time
        info.last_time = t
        if self.analyzer is not None:
            if kind in STREAMS:
                self.analyzer.feed_stream(frame, t, (src[0], src[1], dst[0], dst[1]), data, STREAMS[kind])
            else:
                self.analyzer.feed(pkt)
        if self.writer is not None:  # the IP packet is built only for the file
            if kind == "udp":
                seg = struct.pack("!HHHH", src[1], dst[1], 8 + len(data), 0)
            else:
                ack = self._seq.get((dst, src), 1000)
                seg = struct.pack("!HHIIBBHHH", src[1], dst[1], pkt.tcp_seq, ack, 5 << 4, 0x18, 65535, 0, 0)
            raw = _ip(src[0], dst[0], 17 if kind == "udp" else 6, seg + data, frame)
            self.writer.write(sec, nsec, raw, len(raw))

    def report(self):
        """The Report of what was tapped (once: the Analyzer finishes)."""
        if self._report is None:
            self._report = self.analyzer.finish(self.info)
        return self._report

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _ip(src: str, dst: str, proto: int, payload: bytes, ident: int) -> bytes:
    if ":" in src:  # IPv6 (RFC 8200): no checksum of its own
        return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64, socket.inet_pton(socket.AF_INET6, src),
                           socket.inet_pton(socket.AF_INET6, dst)) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:] + payload


class Taps:
    """Several taps fed the same packets (a call's own Analyzer and the run's pcap)."""

    def __init__(self, *taps) -> None:
        self.taps = [t for t in taps if t is not None]

    def __call__(self, *packet) -> None:
        for tap in self.taps:
            tap(*packet)

    def __bool__(self) -> bool:
        return bool(self.taps)
