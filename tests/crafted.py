"""Crafting captures no peer produces on demand (import as `crafted`): SIP messages between two
hosts, RTP, written as a pcap with the times given."""

from __future__ import annotations

import struct

from scapy.all import IP, TCP, UDP, Ether, wrpcap

A, B = "203.0.113.5", "198.51.100.7"  # documentation addresses: public hosts in examples
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}  # given: scapy would ARP for them


def sip(first: str, cseq: str, *, call_id: str = "c1", to_tag: str = "", from_tag: str = "a1", body: str = "",
        src: str = A, extra: str = "", branch: str | None = None) -> str:
    """A SIP message with the mandatory headers; `first` is the start line."""
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    br = branch or f"z9hG4bK-{call_id}-{cseq.split()[0]}"
    return (f"{first}\r\nVia: SIP/2.0/UDP {src}:5060;branch={br}\r\n"
            f"From: <sip:alice@{A}>;tag={from_tag}\r\nTo: <sip:bob@{B}>{to_tag}\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq}\r\n{extra}{ctype}Content-Length: {len(body.encode())}\r\n\r\n{body}")


def sdp(ip: str, port: int, codecs: str = "0", rtpmap: str = "a=rtpmap:0 PCMU/8000\r\n", media: str = "audio") -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m={media} {port} RTP/AVP {codecs}\r\n{rtpmap}")


def udp(src: str, dst: str, payload, t: float, sport: int = 5060, dport: int = 5060):
    p = Ether(**MACS) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload
    p.time = t
    return p


def tcp(src: str, dst: str, payload, t: float, seq: int, sport: int = 40000, dport: int = 5060, flags: str = "PA"):
    p = Ether(**MACS) / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq) / payload
    p.time = t
    return p


def rtp(src: str, sport: int, dst: str, dport: int, seq: int, ssrc: int, t: float, pt: int = 0,
        ts: int | None = None, payload: bytes = b"\xff" * 160, marker: bool = False):
    head = struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF,
                       (seq * 160 if ts is None else ts) & 0xFFFFFFFF, ssrc)
    return udp(src, dst, head + payload, t, sport, dport)


def write(path, packets) -> str:
    wrpcap(str(path), packets)
    return str(path)
