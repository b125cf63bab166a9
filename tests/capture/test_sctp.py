"""capture/sctp.py: DATA chunks (RFC 9260 3.3.1) and the user messages SIP rides in (RFC 4168)."""

from __future__ import annotations

import struct

from siptool.capture.sctp import MAX_HELD, DataChunk, Reassembly, data_chunks, serialise

SIP = b"INVITE sip:alice@example.test SIP/2.0\r\nCall-ID: c1\r\nContent-Length: 0\r\n\r\n"


def chunk(tsn: int, data: bytes, begin=True, end=True, stream=0, unordered=False) -> DataChunk:
    return DataChunk(tsn, stream, 0, 0, begin, end, unordered, data)


def fragments(message: bytes, first_tsn: int, size: int) -> list[DataChunk]:
    pieces = [message[i:i + size] for i in range(0, len(message), size)]
    return [chunk((first_tsn + i) & 0xFFFFFFFF, p, i == 0, i == len(pieces) - 1) for i, p in enumerate(pieces)]


def test_chunks_of_a_packet_sack_data_data():
    sack = struct.pack("!BBHIIHH", 3, 0, 16, 7, 65536, 0, 0)
    packet = sack + serialise(chunk(10, SIP)) + serialise(chunk(11, b"x" * 5))  # 5 bytes: padded to 8
    found, problem = data_chunks(packet, frame=4)
    assert problem is None
    assert [(c.tsn, c.data, c.frame, c.begin, c.end) for c in found] == [(10, SIP, 4, True, True),
                                                                         (11, b"x" * 5, 4, True, True)]


def test_broken_chunks_are_said_and_reading_stops():
    good = serialise(chunk(1, SIP))
    found, problem = data_chunks(good + b"\x00\x03\x01\x00" + b"z" * 8)
    assert len(found) == 1 and "runs past the packet" in problem
    found, problem = data_chunks(struct.pack("!BBHIHHI", 0, 3, 16, 1, 0, 0, 0))
    assert found == [] and "no user data" in problem


def test_fragments_in_any_order_make_one_message():
    parts = fragments(SIP, 0xFFFFFFFE, 20)  # the TSNs wrap (serial number arithmetic, RFC 9260 1.6)
    for order in (parts, parts[::-1], parts[1:] + parts[:1]):
        r = Reassembly()
        out = [m for c in order for m in r.add(c)]
        assert [m[0] for m in out] == [SIP] and not r.held


def test_retransmitted_tsn_is_dropped_and_streams_stay_apart():
    r = Reassembly()
    a = fragments(SIP, 100, 30)
    assert r.add(a[0]) == [] and r.add(a[0]) == [] and r.dropped == 1
    other = chunk(100 + len(a), b"whole", stream=1)
    assert [m[0] for m in r.add(other)] == [b"whole"]
    assert [m[0] for c in a[1:] for m in r.add(c)] == [SIP]


def test_incomplete_messages_are_problems_at_the_end():
    r = Reassembly()
    for c in fragments(SIP, 5, 20)[:-1]:
        c.frame = 9
        assert r.add(c) == []
    r.flush()
    assert r.problems and "never completed" in r.problems[0][1] and r.problems[0][0] == 9


def test_held_fragments_are_bounded():
    r = Reassembly()
    for tsn in range(0, 2 * MAX_HELD + 2, 2):  # first fragments whose rest never comes
        r.add(chunk(tsn, b"a", begin=True, end=False))
    assert len(r.held) == MAX_HELD and 0 not in r.held and "dropped" in r.problems[0][1]  # the oldest went
