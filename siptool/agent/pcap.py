"""`--pcap FILE`: the agent's own signalling and media written as a capture `analyze` can read.

Packets are recorded as they are sent and received (application payloads) and written as raw IPv4
(LINKTYPE_RAW 101) with UDP headers, or TCP headers with running sequence numbers for TCP/TLS (TLS is
written as the cleartext SIP it carried, flagged in the file name by the caller's choice)."""

from __future__ import annotations

import socket
import struct
import time

from ..capture.writer import PcapWriter

LINKTYPE_RAW = 101


def _ip4(src: str, dst: str, proto: int, payload: bytes, ident: int) -> bytes:
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:] + payload


class PcapTap:
    """Callable tap(direction, local, remote, data, kind) collecting packets; `close()` writes the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.records: list[tuple[float, tuple, tuple, bytes, str]] = []
        self._seq: dict[tuple, int] = {}

    def __call__(self, direction: str, local, remote, data: bytes, kind: str) -> None:
        src, dst = (local, remote) if direction == "out" else (remote, local)
        self.records.append((time.time(), tuple(src[:2]), tuple(dst[:2]), bytes(data), kind))

    def close(self) -> None:
        with PcapWriter(self.path, LINKTYPE_RAW) as w:
            for i, (t, src, dst, data, kind) in enumerate(sorted(self.records, key=lambda r: r[0])):
                if ":" in src[0] or ":" in dst[0]:
                    continue  # IPv6 not written (loopback tests use IPv4)
                if kind == "udp":
                    seg = struct.pack("!HHHH", src[1], dst[1], 8 + len(data), 0) + data
                    pkt = _ip4(src[0], dst[0], 17, seg, i)
                else:
                    flow = (src, dst)
                    seq = self._seq.get(flow, 1000)
                    self._seq[flow] = seq + len(data)
                    ack = self._seq.get((dst, src), 1000)
                    seg = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, 0x18, 65535, 0, 0) + data
                    pkt = _ip4(src[0], dst[0], 6, seg, i)
                sec = int(t)
                w.write(sec, int((t - sec) * 1e9), pkt, len(pkt))
