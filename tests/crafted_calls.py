"""Crafted SIP/SDP/RTP/UDPTL packets for cases no peer produces on demand (scapy, written with wrpcap).

A call is a list of scapy packets with `.time` set; `write` sorts them by time into a pcap.
"""

from __future__ import annotations

import struct

from scapy.all import IP, UDP, Ether, wrpcap

MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}  # given: scapy would ARP for them

A, B = "203.0.113.5", "198.51.100.7"  # caller, callee (documentation addresses, never sent anywhere)
T0 = 1700000000.0


def udp(src: str, sport: int, dst: str, dport: int, payload: bytes | str, when: float):
    pkt = Ether(**MACS) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload
    pkt.time = when
    return pkt


def rtp(src, sport, dst, dport, when, seq, ts, ssrc, pt=0, marker=0, payload: bytes = b"\xff" * 160):
    header = struct.pack("!BBHII", 0x80, (marker << 7) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    return udp(src, sport, dst, dport, header + payload, when)


def udptl(src, sport, dst, dport, when, seq: int):
    """A T.38 UDPTL datagram (ITU-T T.38 9.1): sequence number, an IFP packet, redundancy frames."""
    ifp = bytes([0x06, 0x80]) + bytes(range(30))  # t4-non-ecm-data, 30 octets of image data
    return udp(src, sport, dst, dport, struct.pack("!H", seq & 0xFFFF) + bytes([len(ifp)]) + ifp + b"\x00", when)


def audio(port: int, pts=(0,), extra: str = "") -> str:
    """An m=audio section with rtpmaps (PCMU/PCMA/CN static; 101 telephone-event)."""
    names = {0: "PCMU/8000", 8: "PCMA/8000", 13: "CN/8000", 18: "G729/8000", 101: "telephone-event/8000"}
    lines = "".join(f"a=rtpmap:{pt} {names[pt]}\r\n" for pt in pts if pt in names)
    return f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}\r\n{lines}{extra}"


def image(port: int) -> str:
    """An m=image section for T.38 fax over UDPTL (ITU-T T.38 Annex D)."""
    return (f"m=image {port} udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"
            "a=T38FaxRateManagement:transferredTCF\r\na=T38FaxUdpEC:t38UDPRedundancy\r\n")


def sdp(ip: str, media: str, version: int = 1) -> str:
    return f"v=0\r\no=- 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{media}"


class Dialog:
    """SIP messages of one dialog between A (caller, tag a1) and B (callee, tag b2), either side
    sending requests, with their own CSeq; `sip(...)` returns a packet at `when`."""

    def __init__(self, call_id: str = "crafted-1") -> None:
        self.call_id = call_id
        self.cseq = {A: 0, B: 0}

    def _message(self, src, dst, first, cseq, method, body="", to_tag=True, contact=None):
        me, peer = (("alice", A, "a1"), ("bob", B, "b2")) if src == A else (("bob", B, "b2"), ("alice", A, "a1"))
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        to = f"<sip:{peer[0]}@{peer[1]}>" + (f";tag={peer[2]}" if to_tag else "")
        return (f"{first}\r\nVia: SIP/2.0/UDP {src}:5060;branch=z9hG4bK-{src}-{cseq}{method}\r\n"
                f"From: <sip:{me[0]}@{me[1]}>;tag={me[2]}\r\nTo: {to}\r\nCall-ID: {self.call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:{me[0] if contact is None else peer[0]}@{contact or src}:5060>\r\n{ctype}"
                f"Content-Length: {len(body)}\r\n\r\n{body}")

    def request(self, src, method, when, body="", initial=False):
        dst = B if src == A else A
        self.cseq[src] += 1
        self.last = (src, self.cseq[src], method)
        user = "bob" if dst == B else "alice"
        text = self._message(src, dst, f"{method} sip:{user}@{dst} SIP/2.0", self.cseq[src], method, body,
                             to_tag=not initial)
        return udp(src, 5060, dst, 5060, text, when)

    def response(self, status, reason, when, body=""):
        """The response to the latest request (sent by its receiver, headers as that request's)."""
        src, cseq, method = self.last
        dst = B if src == A else A
        text = self._message(src, dst, f"SIP/2.0 {status} {reason}", cseq, method, body, contact=dst)
        return udp(dst, 5060, src, 5060, text, when)

    def ack(self, when):
        src, cseq, _ = self.last
        self.last = (src, cseq, "ACK")
        user = "bob" if src == A else "alice"
        text = self._message(src, B if src == A else A, f"ACK sip:{user}@{B if src == A else A} SIP/2.0", cseq, "ACK")
        return udp(src, 5060, B if src == A else A, 5060, text, when)


def write(path, packets) -> None:
    wrpcap(str(path), sorted(packets, key=lambda p: float(p.time)))
