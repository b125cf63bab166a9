"""Bytes in, packets out: capture files (reader), link/IP/UDP/TCP (decode), fragments and TCP (reassembly)."""

from __future__ import annotations

from typing import Iterator

from .decode import Decoder, Packet
from .reader import Capture, CaptureInfo, Record

__all__ = ["Capture", "CaptureInfo", "Decoder", "Packet", "Record", "open_capture", "PacketSource"]


class PacketSource:
    """A capture file as a stream of decoded UDP datagrams and TCP segments."""

    def __init__(self, path) -> None:
        self.capture = Capture(path)
        self.decoder = Decoder()

    @property
    def info(self) -> CaptureInfo:
        return self.capture.info

    def __enter__(self) -> "PacketSource":
        return self

    def __exit__(self, *exc) -> None:
        self.capture.close()

    def __iter__(self) -> Iterator[Packet]:
        decode = self.decoder.decode
        for rec in self.capture:
            pkt = decode(rec.frame, rec.time, rec.linktype, rec.data)
            if pkt is not None:
                yield pkt
        self.decoder.fragments.flush()


def open_capture(path) -> PacketSource:
    """Open a pcap/pcapng/gzip capture; raises SiptoolError with a one-line message if it cannot."""
    return PacketSource(path)
