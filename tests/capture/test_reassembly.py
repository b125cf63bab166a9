"""IP fragment reassembly (through the Decoder, on scapy-fragmented packets) and TCP stream ordering."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from siptool.capture import Decoder
from siptool.capture.reassembly import FRAGMENT_TIMEOUT, FragmentBuffer, TcpStream
from siptool.sip.framing import SipFramer
from siptool.sip.message import parse


def invite(call_id: str = "big@192.0.2.1", sdp_lines: int = 80) -> bytes:
    """A real INVITE with an SDP body large enough to be fragmented over a 1500-byte MTU."""
    sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\n"
    sdp += "".join(f"a=candidate:{i} 1 UDP 2130706431 192.0.2.1 {40000 + i} typ host\r\n" for i in range(sdp_lines))
    body = sdp.encode()
    head = (f"INVITE sip:bob@198.51.100.7 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbig\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:bob@198.51.100.7>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


BIG = invite()
DGRAM4 = IP(src="192.0.2.1", dst="198.51.100.7", id=4242) / UDP(sport=5060, dport=5060) / Raw(BIG)
DGRAM6 = (IPv6(src="2001:db8::1", dst="2001:db8::7") / IPv6ExtHdrFragment(id=0xABCDEF)
          / UDP(sport=5060, dport=5060) / Raw(BIG))


def frags4(size=1480):
    return [bytes(Ether() / f) for f in fragment(DGRAM4, fragsize=size)]


def frags6(size=1280):
    return [bytes(Ether() / f) for f in fragment6(DGRAM6, size)]


def run(frames, decoder=None):
    """Decode (frame number, bytes) pairs; return the packets that came out and the decoder."""
    d = decoder or Decoder()
    out = [d.decode(n, 100.0 + n / 1000, 1, raw) for n, raw in frames]
    return [p for p in out if p is not None], d


def check_whole(pkts, frames_expected):
    assert len(pkts) == 1
    p = pkts[0]
    assert p.payload == BIG and p.transport == "udp" and p.dport == 5060
    assert sorted(p.frames) == sorted(frames_expected)
    msg = parse(p.payload)
    assert msg.method == "INVITE" and msg.call_id == "big@192.0.2.1" and not msg.problems
    assert len(msg.body) == int(msg.get("content-length"))


def test_scapy_really_fragments_it():
    assert len(BIG) > 4000 and len(frags4()) >= 3 and len(frags6()) >= 4


def test_ipv4_in_order():
    fr = list(enumerate(frags4(), 1))
    pkts, d = run(fr)
    check_whole(pkts, [n for n, _ in fr])
    assert pkts[0].frame == fr[-1][0]  # reported at the frame that completed it
    assert d.skipped["IP fragment (held for reassembly)"] == len(fr) - 1
    assert d.fragments.flush() == []


@pytest.mark.parametrize("seed", range(5))
def test_ipv4_out_of_order(seed):
    fr = list(enumerate(frags4(576), 1))
    random.Random(seed).shuffle(fr)
    pkts, d = run(fr)
    check_whole(pkts, [n for n, _ in fr])
    assert d.fragments.flush() == []


def test_ipv4_last_fragment_first():
    fr = list(enumerate(frags4(), 1))
    pkts, _ = run(fr[::-1])
    check_whole(pkts, [n for n, _ in fr])


def test_ipv4_duplicated_fragments():
    fr = list(enumerate(frags4(), 1))
    dup = [fr[0], fr[1], fr[0], fr[1]] + fr[2:]
    pkts, d = run(dup)
    check_whole(pkts, [n for n, _ in dup])
    # a duplicate of the last fragment after completion starts a new partial that never completes
    pkts, d = run(fr + [(99, fr[-1][1])])
    assert len(pkts) == 1
    assert d.fragments.flush() == [[99]]


def test_ipv4_overlapping_fragments():
    """Fragments cut at different sizes overlapping each other still give the datagram once."""
    a = fragment(DGRAM4, fragsize=1480)
    b = fragment(DGRAM4, fragsize=800)
    fr = [(1, bytes(Ether() / a[0])), (2, bytes(Ether() / b[1])), (3, bytes(Ether() / b[2])),
          (4, bytes(Ether() / a[1])), (5, bytes(Ether() / a[2])), (6, bytes(Ether() / a[-1]))]
    pkts, _ = run(fr)
    assert len(pkts) == 1 and pkts[0].payload == BIG


def test_ipv4_missing_last_reported_incomplete():
    fr = list(enumerate(frags4(), 1))[:-1]
    pkts, d = run(fr)
    assert pkts == []
    assert d.fragments.flush() == [[n for n, _ in fr]]


def test_ipv4_missing_middle_reported_incomplete():
    fr = list(enumerate(frags4(576), 1))
    del fr[2]
    pkts, d = run(fr)
    assert pkts == [] and d.fragments.flush() == [[n for n, _ in fr]]


def test_two_datagrams_interleaved_by_ip_id():
    other = IP(src="192.0.2.1", dst="198.51.100.7", id=4243) / UDP(sport=5060, dport=5060) / Raw(invite("b2"))
    fa = frags4(1000)
    fb = [bytes(Ether() / f) for f in fragment(other, fragsize=1000)]
    mixed = [x for pair in zip(fa, fb) for x in pair] + fa[len(fb):] + fb[len(fa):]
    pkts, _ = run(list(enumerate(mixed, 1)))
    assert sorted(parse(p.payload).call_id for p in pkts) == ["b2", "big@192.0.2.1"]


def test_partial_datagram_expires_after_timeout():
    buf = FragmentBuffer()
    key = (b"\1" * 4, b"\2" * 4, 7, 17)
    assert buf.add(key, 0, True, b"x" * 8, 1, 0.0) is None
    # a fragment of another datagram well after the timeout evicts the stale one
    assert buf.add((b"\1" * 4, b"\2" * 4, 8, 17), 0, True, b"y" * 8, 2, FRAGMENT_TIMEOUT + 1) is None
    assert buf.incomplete == [[1]]
    assert buf.add(key, 8, False, b"z" * 8, 3, FRAGMENT_TIMEOUT + 2) is None  # its start is gone
    assert sorted(buf.flush()) == [[1], [2], [3]]


def test_ipv6_fragments_in_and_out_of_order():
    fr = list(enumerate(frags6(), 1))
    pkts, d = run(fr)
    check_whole(pkts, [n for n, _ in fr])
    assert pkts[0].src == "2001:db8::1"
    rev, _ = run(fr[::-1])
    check_whole(rev, [n for n, _ in fr])
    pkts, d = run(fr[:-1])
    assert pkts == [] and d.fragments.flush() == [[n for n, _ in fr[:-1]]]


def test_ipv6_extension_header_inside_the_fragmentable_part():
    """RFC 8200 4.5: headers after the Fragment header are part of the reassembled payload."""
    dgram = (IPv6(src="2001:db8::1", dst="2001:db8::7") / IPv6ExtHdrFragment(id=77) / IPv6ExtHdrDestOpt()
             / UDP(sport=5060, dport=5060) / Raw(BIG))
    fr = list(enumerate((bytes(Ether() / f) for f in fragment6(dgram, 1280)), 1))
    pkts, _ = run(fr[::-1])
    check_whole(pkts, [n for n, _ in fr])


def test_ipv6_atomic_fragment_is_a_whole_packet():
    dgram = IPv6(src="2001:db8::1", dst="2001:db8::7") / IPv6ExtHdrFragment(id=5, m=0, offset=0) \
        / UDP(sport=5060, dport=5060) / Raw(b"OPTIONS sip:x SIP/2.0\r\n\r\n")
    pkts, d = run([(1, bytes(Ether() / dgram))])
    assert len(pkts) == 1 and pkts[0].payload.startswith(b"OPTIONS") and d.fragments.flush() == []


def test_fragmented_invite_through_a_capture_file(tmp_path):
    """scapy writes the fragments to a pcap; open_capture reads it and gives one whole INVITE."""
    from scapy.utils import wrpcap

    from siptool.capture import open_capture

    path = tmp_path / "frag.pcap"
    wrpcap(str(path), [Ether() / f for f in fragment(DGRAM4, fragsize=1000)])
    with open_capture(path) as src:
        pkts = list(src)
    check_whole(pkts, range(1, len(pkts[0].frames) + 1))


# ---- TCP ----


def stream_out(stream, segments):
    """Feed (seq, data, frame) triples; return all bytes in order and the frames they came from."""
    data, frames = b"", []
    for seq, chunk, frame in segments:
        for piece, f in stream.feed(seq & 0xFFFFFFFF, chunk, frame):
            data += piece
            frames.append(f)
    return data, frames


TEXT = bytes(range(256)) * 8


def segments(start, text=TEXT, size=100):
    return [(start + i, text[i:i + size], n) for n, i in enumerate(range(0, len(text), size), 1)]


@pytest.mark.parametrize("start", [1000, 0xFFFFFFFF - 450, 0xFFFFFFFF, 0])
def test_tcp_in_order_and_sequence_wrap(start):
    s = TcpStream()
    s.feed(start - 1 & 0xFFFFFFFF, b"", 0, syn=True)
    data, frames = stream_out(s, segments(start))
    assert data == TEXT and frames == list(range(1, len(frames) + 1))
    assert s.next_seq == (start + len(TEXT)) & 0xFFFFFFFF and s.gaps == 0


@pytest.mark.parametrize("start", [1000, 0xFFFFFFFF - 450])
@pytest.mark.parametrize("seed", range(4))
def test_tcp_out_of_order(start, seed):
    segs = segments(start)
    rest = segs[1:]
    random.Random(seed).shuffle(rest)
    data, _ = stream_out(TcpStream(), [segs[0]] + rest)
    assert data == TEXT


@pytest.mark.parametrize("start", [5, 0xFFFFFFFF - 250])
def test_tcp_retransmissions_and_overlaps(start):
    segs = segments(start)
    noisy = []
    for seq, chunk, n in segs:
        noisy.append((seq, chunk, n))
        noisy.append((seq, chunk, n))  # exact retransmission
        noisy.append((seq + 30, chunk[30:] + TEXT[seq - start + 100:seq - start + 150], n))  # overlaps the next
        noisy.append((seq - 20, TEXT[max(0, seq - start - 20):seq - start + 10], n))  # old bytes again
    data, _ = stream_out(TcpStream(), noisy)
    assert data == TEXT


def test_tcp_held_segment_replaced_by_a_longer_retransmission():
    """A segment held past a hole, then resent with more bytes (coalesced): the extra bytes are kept."""
    s = TcpStream()
    out = stream_out(s, [(0, TEXT[:10], 1), (20, TEXT[20:30], 2), (20, TEXT[20:60], 3), (10, TEXT[10:20], 4)])
    assert out[0] == TEXT[:60]
    assert stream_out(s, [(60, TEXT[60:70], 5)])[0] == TEXT[60:70]


def test_tcp_hole_never_filled_is_skipped_and_counted():
    s = TcpStream()
    segs = segments(0, size=10)
    fed = [segs[0]] + segs[2:]  # the second segment is lost for good
    data, _ = stream_out(s, fed)
    assert s.gaps == 1
    assert data == TEXT[:10] + TEXT[20:]


def test_tcp_syn_resets_the_stream():
    s = TcpStream()
    stream_out(s, [(500, b"old", 1)])
    s.feed(9000, b"", 2, syn=True)
    assert stream_out(s, [(9001, b"new", 3)])[0] == b"new"


def sip_msgs(n):
    return [(f"MESSAGE sip:b@x SIP/2.0\r\nCall-ID: m{i}\r\nCSeq: {i} MESSAGE\r\nContent-Length: {len(str(i)) + 5}"
             f"\r\n\r\nbody {i}").encode() for i in range(n)]


@pytest.mark.parametrize("seg_size", [1, 7, 64, 300, 5000])
def test_tcp_sip_stream_any_segmentation(seg_size):
    """Several messages in one segment, one message over several segments, with retransmissions."""
    msgs = sip_msgs(12)
    text = b"".join(msgs)
    segs = segments(0xFFFFFF00, text, seg_size)
    segs = [x for s in segs for x in (s, s)]  # every segment retransmitted
    stream, framer, got = TcpStream(), SipFramer(), []
    for seq, chunk, frame in segs:
        for data, f in stream.feed(seq & 0xFFFFFFFF, chunk, frame):
            got += [m for m, _ in framer.feed(data, f)]
    assert got == msgs
    assert [parse(m, stream=True).call_id for m in got] == [f"m{i}" for i in range(12)]
