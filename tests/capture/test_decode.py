"""Link, network and transport decoding on packets built with scapy (real bytes, every layer)."""

from __future__ import annotations

import struct

import pytest
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Raw

from siptool.capture import Decoder
from siptool.sip.message import parse

SIP = (b"OPTIONS sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
       b"Call-ID: abc@192.0.2.1\r\nCSeq: 1 OPTIONS\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:bob@example.net>\r\n"
       b"Content-Length: 0\r\n\r\n")
V4 = dict(src="192.0.2.1", dst="198.51.100.7")
V6 = dict(src="2001:db8::1", dst="2001:db8:0:1::7")
UDP4 = IP(**V4) / UDP(sport=5062, dport=5060) / Raw(SIP)
UDP6 = IPv6(**V6) / UDP(sport=5062, dport=5060) / Raw(SIP)
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def decode(linktype: int, pkt, decoder: Decoder | None = None):
    d = decoder or Decoder()
    return d.decode(7, 12.5, linktype, bytes(pkt)), d


def assert_udp(p, v6=False, payload=SIP):
    assert p is not None
    addr = V6 if v6 else V4
    assert (p.src, p.sport, p.dst, p.dport, p.transport) == (addr["src"], 5062, addr["dst"], 5060, "udp")
    assert p.payload == payload and (p.frame, p.time) == (7, 12.5)
    assert parse(p.payload).call_id == "abc@192.0.2.1"


@pytest.mark.parametrize("wrap", [
    pytest.param(lambda ip: ETH / ip, id="ethernet"),
    pytest.param(lambda ip: ETH / Dot1Q(vlan=100) / ip, id="802.1Q"),
    pytest.param(lambda ip: ETH / Dot1AD(vlan=20) / Dot1Q(vlan=100) / ip, id="QinQ-88a8"),
    pytest.param(lambda ip: ETH / Dot1Q(vlan=20) / Dot1Q(vlan=100) / ip, id="QinQ-8100"),
    pytest.param(lambda ip: Ether(bytes(ETH / Dot1Q(vlan=20) / Dot1Q(vlan=100) / ip)[:12] + b"\x91\x00"
                                  + bytes(ETH / Dot1Q(vlan=20) / Dot1Q(vlan=100) / ip)[14:]), id="QinQ-9100"),
    pytest.param(lambda ip: ETH / MPLS(label=16, s=0) / MPLS(label=17, s=1) / ip, id="MPLS"),
    pytest.param(lambda ip: ETH / PPPoE(sessionid=1) / PPP(proto=0x21 if ip.version == 4 else 0x57) / ip,
                 id="PPPoE"),
])
@pytest.mark.parametrize("v6", [False, True])
def test_ethernet_family(wrap, v6):
    p, d = decode(1, wrap(UDP6 if v6 else UDP4))
    assert_udp(p, v6)
    assert not d.skipped


@pytest.mark.parametrize("v6", [False, True])
def test_linux_cooked_sll_and_sll2(v6):
    ip = UDP6 if v6 else UDP4
    proto = 0x86DD if v6 else 0x0800
    assert_udp(decode(113, CookedLinux(pkttype=0, lladdrtype=1, proto=proto) / ip)[0], v6)
    assert_udp(decode(276, CookedLinuxV2(proto=proto, ifindex=3) / ip)[0], v6)
    # SLL carrying VLAN-tagged frames keeps the tag in the payload (protocol 0x8100)
    tagged = CookedLinux(proto=0x8100) / Dot1Q(vlan=9, type=proto) / ip
    assert_udp(decode(113, tagged)[0], v6)


@pytest.mark.parametrize("linktype,v6", [(101, False), (101, True), (228, False), (229, True),
                                         (12, False), (14, True)])
def test_raw_ip(linktype, v6):
    assert_udp(decode(linktype, UDP6 if v6 else UDP4)[0], v6)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("linktype", [0, 108])
@pytest.mark.parametrize("family,v6", [(2, False), (24, True), (28, True), (30, True)])
def test_null_and_loop_either_byte_order(order, linktype, family, v6):
    head = struct.pack(order + "I", family)
    assert_udp(decode(linktype, head + bytes(UDP6 if v6 else UDP4))[0], v6)


def test_ipv6_extension_headers():
    chain = (IPv6(**V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
             / IPv6ExtHdrRouting(addresses=["2001:db8::99"]) / IPv6ExtHdrDestOpt()
             / UDP(sport=5062, dport=5060) / Raw(SIP))
    assert_udp(decode(101, chain)[0], v6=True)
    ah = IPv6(**V6) / AH(nh=17, payloadlen=4, spi=1, icv=b"\0" * 12) / UDP(sport=5062, dport=5060) / Raw(SIP)
    assert bytes(ah)[6] == 51
    assert_udp(decode(229, ah)[0], v6=True)


def test_ipv4_options_and_ethernet_padding():
    small = IP(options=b"\x94\x04\x00\x00", **V4) / UDP(sport=5062, dport=5060) / Raw(b"\r\n\r\n")
    frame = bytes(ETH / small)
    frame += b"\0" * (60 - len(frame))  # Ethernet minimum frame: padding is not payload
    p, _ = decode(1, frame)
    assert p.payload == b"\r\n\r\n" and p.dport == 5060


def test_tcp_payload_after_options():
    seg = IP(**V4) / TCP(sport=5062, dport=5060, seq=0xFFFFFFF0, flags="PA",
                         options=[("MSS", 1460), ("NOP", None), ("WScale", 7), ("Timestamp", (1, 2))]) / Raw(SIP)
    p, _ = decode(1, ETH / seg)
    assert (p.transport, p.sport, p.dport, p.tcp_seq) == ("tcp", 5062, 5060, 0xFFFFFFF0)
    assert p.tcp_flags == 0x18 and p.payload == SIP
    syn, _ = decode(1, ETH / IP(**V4) / TCP(sport=1, dport=5060, flags="S", seq=5))
    assert syn.payload == b"" and syn.tcp_flags & 0x02 and syn.tcp_seq == 5


def test_gre_erspan_type_ii():
    inner = Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b") / Dot1Q(vlan=5) / UDP4
    outer = (ETH / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(seqnum_present=1, sequence_number=77)
             / ERSPAN_II(session_id=3, vlan=5) / inner)
    raw = bytes(outer)
    assert raw[14 + 9] == 47 and raw[14 + 20 + 2:14 + 20 + 4] == b"\x88\xbe"
    assert_udp(decode(1, raw)[0])


def test_gre_erspan_type_iii_and_plain_gre():
    inner = Ether() / UDP6
    assert_udp(decode(1, ETH / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x22EB)
                      / ERSPAN_III(session_id=3) / inner)[0], v6=True)
    assert_udp(decode(1, ETH / IP(src="10.0.0.1", dst="10.0.0.2") / GRE(key_present=1, key=9) / UDP4)[0])
    assert_udp(decode(101, IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x6558) / Ether() / UDP4)[0])


@pytest.mark.parametrize("outer,inner,v6", [(IP(src="10.0.0.1", dst="10.0.0.2"), UDP4, False),
                                            (IP(src="10.0.0.1", dst="10.0.0.2"), UDP6, True),
                                            (IPv6(src="fe80::1", dst="fe80::2"), UDP4, False),
                                            (IPv6(src="fe80::1", dst="fe80::2"), UDP6, True)])
def test_ip_in_ip(outer, inner, v6):
    p, _ = decode(1, ETH / outer / inner)
    assert_udp(p, v6)


def test_nested_tunnels_cannot_exhaust_the_stack():
    """GRE/Ethernet/IP nested thousands of times: skipped and counted, never RecursionError."""
    inner = bytes(UDP4)
    for _ in range(1500):
        inner = bytes(IP(src="10.0.0.1", dst="10.0.0.2", proto=47) / GRE(proto=0x6558) / Ether(type=0x0800) / Raw(inner))
    p, d = decode(101, inner)
    assert p is None and d.skipped == {"tunnels nested too deep": 1}


def test_three_tunnel_layers_are_followed():
    inner = UDP4
    for _ in range(3):
        inner = IP(src="10.0.0.1", dst="10.0.0.2") / GRE(proto=0x6558) / Ether(type=0x0800) / inner
    assert_udp(decode(101, inner)[0])


def test_skipped_reasons_are_counted():
    d = Decoder()
    packets = [
        (1, ETH / ARP()),
        (1, ETH / IP(**V4) / ICMP()),
        (1, ETH / IPv6(**V6, nh=58) / Raw(b"\x80\0\0\0")),
        (1, ETH / IP(**V4) / ICMP()),
        (1, Ether(type=0x0800) / Raw(b"\x45\x00")),  # IP header cut short
        (1, ETH / IP(**V4, proto=17) / Raw(b"\x13\xc4")),  # UDP header cut short
        (147, UDP4),  # a user link type
        (1, ETH / IP(**V4, proto=132) / Raw(b"x" * 11)),  # SCTP common header cut short
    ]
    out = [d.decode(i, 0.0, lt, bytes(p)) for i, (lt, p) in enumerate(packets)]
    assert out == [None] * len(packets)
    assert d.skipped == {"not IP (ARP, LLDP, ...)": 1, "ICMP": 2, "ICMPv6": 1, "malformed link/IP header": 1,
                         "UDP header cut short": 1, "unsupported link type 147": 1, "SCTP header cut short": 1}


def test_sctp_packet_is_its_chunks_with_the_common_header_ports():
    """RFC 9260 3.1: source port, destination port, verification tag, checksum, then the chunks."""
    chunks = b"\x00\x03\x00\x14" + bytes(16)
    p, _ = decode(1, ETH / IP(**V4, proto=132) / Raw(struct.pack("!HHII", 5061, 5060, 7, 0) + chunks))
    assert (p.transport, p.sport, p.dport, p.payload) == ("sctp", 5061, 5060, chunks)


@pytest.mark.parametrize("pkt,headers", [
    (UDP4, 20 + 8), (UDP6, 40 + 8), (IP(**V4) / TCP(sport=5062, dport=5060) / Raw(SIP), 20 + 20),
    (IPv6(**V6) / IPv6ExtHdrDestOpt() / TCP(sport=5062, dport=5060) / Raw(SIP), 40 + 8 + 20)],
    ids=["udp4", "udp6", "tcp4", "tcp6-ext"])
def test_every_cut_short_header_is_skipped_not_raised(pkt, headers):
    """Captures cut by a small snaplen: each prefix of the headers is skipped and counted once."""
    whole = bytes(ETH / Dot1Q(vlan=3) / pkt)
    for cut in range(0, 18 + headers):
        d = Decoder()
        assert d.decode(1, 0.0, 1, whole[:cut]) is None, cut
        assert sum(d.skipped.values()) == 1, (cut, d.skipped)


def test_bad_ipv4_header_length_is_malformed():
    raw = bytearray(bytes(UDP4))
    raw[0] = 0x42  # IHL 2 words: shorter than the fixed header
    d = Decoder()
    assert d.decode(1, 0.0, 101, bytes(raw)) is None
    assert d.skipped == {"malformed link/IP header": 1}


def test_udp_length_field_bounds_payload():
    raw = bytes(ETH / IP(**V4) / UDP(sport=5062, dport=5060, len=8 + 7) / Raw(SIP))
    p, _ = decode(1, raw)
    assert p.payload == SIP[:7]


def test_shared_erspan_capture(shared_pcaps):
    """The field capture of ERSPAN-mirrored SIP: every UDP packet inside decodes to SIP."""
    from siptool.capture import open_capture

    path = shared_pcaps / "heplify_erspan_sip_ipv4_udp.pcapng"
    if not path.exists():
        pytest.skip("capture not in ../shared/pcaps")
    with open_capture(path) as src:
        sip = [p for p in src if p.payload[:3] in (b"INV", b"SIP", b"ACK", b"BYE", b"OPT", b"REG")]
    assert sip and all(parse(p.payload).call_id for p in sip)
