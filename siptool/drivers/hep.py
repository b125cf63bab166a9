"""HEP in a live run (drivers/live.py): received from many capture agents, or sent to a collector.

`HepSource` listens for HEP (capture/hep_listen.HepListener: UDP and/or TCP) and yields the packets
received, each naming its capture point, to a LiveRun whose analysis is
analysis.points.CapturePoints (one Analyzer per agent, so a Call-ID seen by two agents is two
legs). With `write`, each packet is also written to a pcap as the agent captured it, rebuilt from
what HEP carries (capture/craft.rebuilt): an IP packet from the HEP addresses with a UDP datagram,
or a TCP segment numbered as the receiver numbers each flow, at the HEP time (LINKTYPE_RAW, IPv4
and IPv6), as sngrep writes what it receives. Link headers, IP options, TCP handshakes and ACKs
are not in HEP, so they are not in the file either; `siptool analyze` of the file finds the same
calls, the agents' legs no longer apart (a pcap has no capture point).

`HepForward` wraps another source (a network interface) and sends the SIP it yields to a
collector as HEP (capture/hep_send.HepSender), as a capture agent does, before the analysis reads
it: SIP over UDP, and the TCP segments of flows that carry SIP. Sending never stops the capture;
what could not be sent is counted and reported (`hep.unsent`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

from ..analysis.points import hep_unsent, received
from ..capture import CaptureInfo, Packet
from ..capture.craft import rebuilt
from ..capture.decode import TCP, UDP
from ..capture.hep import HepReceiver
from ..capture.hep_listen import HepListener
from ..capture.hep_send import HepSender
from ..errors import SiptoolError
from ..report.model import Finding
from ..sip.message import looks_like_sip
from .live import Counters, Source

LINKTYPE_RAW = 101  # raw IPv4/IPv6 packets, no link header
TOO_LARGE = "HEP payload too large for one IP packet (not written to the pcap)"
SIP_TCP_FLOWS = 4096  # TCP flows known to carry SIP, the most recent kept


class HepSource:
    """Packets received as HEP on `address` (`udp:HOST:PORT`, `tcp:HOST:PORT`, or `HOST:PORT` for both);
    with `auth_key`, messages without it are refused (hep.auth_refused)."""

    def __init__(self, address: str, auth_key: bytes | None = None, write: str | None = None, ring: int = 0,
                 ring_size: str = "100MB") -> None:
        self.listener = HepListener(address, HepReceiver(auth_key))
        host, port = self.listener.address
        kinds = "+".join(k for k, sock in (("udp", self.listener.udp), ("tcp", self.listener.tcp)) if sock)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.name, self.label = f"hep:{where}", f"HEP on {kinds} {where}"
        self.writer = None
        self.unwritable = 0
        if write:
            from ..capture.writer import PcapWriter
            try:
                self.writer = PcapWriter(write, LINKTYPE_RAW, ring=ring, ring_size=ring_size)
            except BaseException:
                self.listener.close()
                raise

    def __iter__(self) -> Iterator[Packet | None]:
        writer = self.writer
        for pkt in self.listener:
            if writer is not None:
                if pkt is None:
                    writer.tick()
                else:
                    self._write(pkt)
            yield pkt

    def _write(self, pkt: Packet) -> None:
        try:
            data = rebuilt(pkt)
        except SiptoolError:
            self.unwritable += 1
            return
        sec = int(pkt.time)
        usec = min(int(round((pkt.time - sec) * 1e6)), 999999)  # HEP's resolution
        self.writer.write(sec, usec * 1000, data, len(data))

    def stop(self) -> None:
        self.listener.stop()

    def close(self) -> None:
        try:
            self.listener.close()
        finally:
            if self.writer is not None:
                self.writer.close()

    def counters(self) -> Counters:
        receiver = self.listener.receiver
        return Counters(receiver.messages, self.listener.drops if self.listener.udp is not None else None,
                        self.writer.current_file if self.writer is not None else "", receiver.last_time)

    def finish(self) -> tuple[CaptureInfo, dict[str, int], list[list[int]], list[Finding]]:
        info, skipped, fragments, found = received(self.listener.receiver, self.name, self.listener.drops)
        if self.unwritable:
            skipped[TOO_LARGE] = self.unwritable
        return info, skipped, fragments, found


class HepForward:
    """`source`'s packets, its SIP also sent as HEP by `sender` (a Source itself)."""

    def __init__(self, source: Source, sender: HepSender) -> None:
        self.source, self.sender = source, sender
        self.name = source.name
        self.label = f"{source.label}, HEP to {sender.address}"
        self._sip_flows: OrderedDict[tuple, None] = OrderedDict()

    def __iter__(self) -> Iterator[Packet | None]:
        send = self.sender.send
        for pkt in self.source:
            if pkt is not None and pkt.payload and self._is_sip(pkt):
                send(pkt)
            yield pkt

    def _is_sip(self, pkt: Packet) -> bool:
        """SIP over UDP; over TCP, every segment of a flow seen to start a SIP message (a message may
        span segments, and a segment may hold the end of one and the start of the next)."""
        if pkt.transport == UDP:
            return looks_like_sip(pkt.payload)
        if pkt.transport != TCP:
            return False
        flow = (pkt.src, pkt.sport, pkt.dst, pkt.dport)
        if flow in self._sip_flows:
            self._sip_flows.move_to_end(flow)
            return True
        if looks_like_sip(pkt.payload):
            self._sip_flows[flow] = None
            if len(self._sip_flows) > SIP_TCP_FLOWS:
                self._sip_flows.popitem(last=False)
            return True
        return False

    def stop(self) -> None:
        self.source.stop()

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.sender.close()

    def counters(self) -> Counters:
        return self.source.counters()

    def finish(self) -> tuple[CaptureInfo, dict[str, int], list[list[int]], list[Finding]]:
        info, skipped, fragments, found = self.source.finish()
        unsent = hep_unsent(self.sender.sent, self.sender.failed, self.sender.address)
        return info, skipped, fragments, found + ([unsent] if unsent is not None else [])
