"""capture/websocket.py: the Upgrade and RFC 6455 frames as SIP uses them (RFC 7118).

Frames are built here by websocket-client's own encoder (ABNF.format), the library the fixtures'
client uses, so what is read is what a real client writes."""

from __future__ import annotations

import zlib

import pytest
from websocket import ABNF

from siptool.capture.websocket import (MAX_MESSAGE, Close, FrameReader, Handshake, Message, Problem, accept_key,
                                       first_payload, parse_head)

SIP = b"OPTIONS sip:a@example.test SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"


def frame(data: bytes, opcode=ABNF.OPCODE_TEXT, fin=1, masked=True, rsv1=0) -> bytes:
    f = ABNF(fin, rsv1, 0, 0, opcode, 1 if masked else 0, data)
    f.get_mask_key = lambda n: b"\x01\x02\x03\x04"
    return f.format()


def read(data: bytes, from_client=True, chunks=1, **kw) -> list:
    r = FrameReader(from_client, **kw)
    step = max(1, len(data) // chunks)
    out = []
    for i in range(0, len(data), step):
        out += r.feed(data[i:i + step], frame=i // step + 1)
    return out


@pytest.mark.parametrize("chunks", [1, 2, 7, 1000])
def test_fragmented_message_over_any_segments(chunks):
    """A text frame and two continuations (RFC 6455 5.4), cut into any number of TCP segments:
    one message, unmasked, handed over at the segment that completes it."""
    parts = [SIP[:20], SIP[20:50], SIP[50:]]
    wire = frame(parts[0], fin=0) + frame(parts[1], ABNF.OPCODE_CONT, fin=0) + frame(parts[2], ABNF.OPCODE_CONT)
    n = min(chunks, len(wire))
    out = read(wire, chunks=n)
    step = max(1, len(wire) // n)
    assert out == [Message(SIP, (len(wire) - 1) // step + 1, True)]  # the last segment's frame


def test_control_frames_between_fragments_and_close():
    wire = (frame(SIP[:10], fin=0) + frame(b"hi", ABNF.OPCODE_PING) + frame(SIP[10:], ABNF.OPCODE_CONT)
            + frame(b"\x03\xe8bye", ABNF.OPCODE_CLOSE))
    out = read(wire)
    assert [type(e) for e in out] == [Message, Close]
    assert out[0].data == SIP and (out[1].code, out[1].reason) == (1000, "bye")


def test_lengths_16_and_64_bit():
    big = SIP + b"x" * 70_000
    for data in (SIP * 3, big):
        (msg,) = read(frame(data, ABNF.OPCODE_BINARY), chunks=5)
        assert msg.data == data and not msg.text


@pytest.mark.parametrize("wire,from_client,what", [
    (frame(SIP, masked=False), True, "unmasked frame from the client"),
    (frame(SIP, masked=True), False, "masked frame from the server"),
    (b"\x83" + frame(SIP)[1:], True, "reserved opcode"),  # websocket-client refuses to write one
    (frame(SIP, rsv1=1), True, "reserved bits"),
    (frame(b"x" * 130, ABNF.OPCODE_PING), True, "control frame fragmented or over 125"),
    (frame(SIP, ABNF.OPCODE_CONT), True, "continuation frame with no message"),
    (frame(b"\x03\xed", ABNF.OPCODE_CLOSE), True, "status code 1005"),
    (frame(b"\x03", ABNF.OPCODE_CLOSE), True, "1-byte body"),
    (frame(b"\xff\xfe", ABNF.OPCODE_TEXT), True, "not UTF-8"),
    (frame(b"", ABNF.OPCODE_CLOSE) + frame(SIP), True, "after the Close"),
    (frame(SIP[:9], fin=0) + frame(SIP), True, "new message began"),
])
def test_broken_frames_are_problems_with_their_frame(wire, from_client, what):
    out = read(wire, from_client)
    problems = [e for e in out if isinstance(e, Problem)]
    assert problems and what in problems[0].what and problems[0].frame == 1


def test_oversized_frame_is_skipped_by_its_length_not_buffered():
    header = bytes([0x81, 0x7F]) + (MAX_MESSAGE + 10).to_bytes(8, "big")  # unmasked, from the server
    r = FrameReader(False)
    out = r.feed(header + b"a" * 1000, frame=1)
    assert "larger than any SIP message" in out[0].what and len(r.buf) == 0
    out = r.feed(b"a" * (MAX_MESSAGE + 10 - 1000) + frame(SIP, masked=False), frame=2)
    assert out == [Message(SIP, 2, True)]


def test_permessage_deflate():
    """RFC 7692: RSV1 marks a compressed message; the context is kept across messages unless the
    handshake said no_context_takeover."""
    comp = zlib.compressobj(wbits=-15)
    wire = b""
    for _ in range(2):
        data = comp.compress(SIP) + comp.flush(zlib.Z_SYNC_FLUSH)
        wire += frame(data[:-4], rsv1=1, masked=False)
    out = read(wire, from_client=False, deflate=True)
    assert [m.data for m in out] == [SIP, SIP]
    out = read(frame(b"\x00\x01", rsv1=1, masked=False), from_client=False)
    assert ["reserved bits" in out[0].what, "no permessage-deflate agreed" in out[1].what] == [True, True]


REQUEST = (b"GET / HTTP/1.1\r\nHost: sip.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n")


def test_handshake_checks():
    """RFC 6455 4.2.2's own example key and accept value; RFC 7118 4.1's subprotocol."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    good = Handshake(parse_head(REQUEST), 1, parse_head(RESPONSE), 2)
    assert good.accepted and good.subprotocol == "sip" and good.problems() == []
    none = Handshake(parse_head(REQUEST.replace(b"Sec-WebSocket-Protocol: sip\r\n", b"")), 1,
                     parse_head(b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Protocol: sip\r\n\r\n"), 2)
    assert not none.accepted and len(none.problems()) == 2 and "refused" in none.problems()[1]
    other = Handshake(parse_head(REQUEST), 1, parse_head(RESPONSE.replace(b"Protocol: sip", b"Protocol: msrp")
                                                         .replace(b"s3pP", b"AAAA")), 2)
    assert ["selected 'msrp'" in p or "Accept does not match" in p for p in other.problems()] == [True, True]


def test_first_payload_tells_sip_frames_from_text():
    assert first_payload(frame(SIP), 16) == SIP[:16]
    assert first_payload(frame(SIP, masked=False), 16) == SIP[:16]
    assert first_payload(SIP) is False  # a SIP start line is not a WebSocket frame
    assert first_payload(frame(SIP)[:5], 16) is None  # too few bytes yet


def test_oversized_frame_followed_by_more_in_one_buffer():
    """The frame too large to keep is dropped by its length; what follows it is still read."""
    big = bytes([0x82, 0x7F]) + (MAX_MESSAGE + 1).to_bytes(8, "big") + bytes(MAX_MESSAGE + 1)
    out = FrameReader(False).feed(big + frame(SIP, masked=False), frame=3)
    assert "larger than any SIP message" in out[0].what and out[1] == Message(SIP, 3, True)
