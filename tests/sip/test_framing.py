"""The stream framer (RFC 3261 18.3) on good, cut and hostile streams: bounded memory, linear time,
resynchronisation at the next start line, and the damage recorded."""

from __future__ import annotations

import pytest
from crafted import A, B, sip, tcp, write
from linear import assert_linear

from siptool.drivers.files import analyze_file
from siptool.sip.framing import MAX_BODY, MAX_HEADER, SipFramer

OPTIONS = sip(f"OPTIONS sip:{B} SIP/2.0", "1 OPTIONS").encode()


def frame_all(chunks):
    framer = SipFramer()
    out = []
    for i, c in enumerate(chunks):
        out += [m for m, _ in framer.feed(c, i + 1)]
    return framer, out + [m for m, _ in framer.flush()]


@pytest.mark.parametrize("size", [1, 7, 64, 1000])
def test_any_split_gives_the_same_messages(size):
    data = b"\r\n\r\n" + OPTIONS + b"\r\n" + OPTIONS + OPTIONS
    framer, out = frame_all([data[i:i + size] for i in range(0, len(data), size)])
    assert out == [OPTIONS] * 3 and framer.damaged == 0 and framer.skipped == 0


def test_impossible_content_length_is_cut_at_the_next_start_line():
    bad = OPTIONS.replace(b"Content-Length: 0", b"Content-Length: 999999999999") + b"body bytes\r\n"
    framer, out = frame_all([bad, OPTIONS])
    assert out == [bad, OPTIONS]  # nothing lost: the bad one is handed over and framing goes on
    ((frame, what, _),) = framer.damage
    assert frame == 1 and "999999999999" in what


def test_garbage_between_messages_is_skipped_and_counted():
    framer, out = frame_all([OPTIONS, b"\x16\x03\x01 junk junk\r\nmore junk\r\n", OPTIONS])
    assert out == [OPTIONS, OPTIONS] and framer.damaged == 2 and framer.skipped > 0


def test_a_stream_that_ends_inside_a_message_hands_it_over():
    framer, out = frame_all([OPTIONS[:-30]])
    assert out == [OPTIONS[:-30]] and "ended inside" in framer.damage[0][1]


HOSTILE = {
    "capitals": lambda n: b"A" * n,  # once stalled the agent 2.7 s at 64 KB (quadratic start-line search)
    "methods": lambda n: b"INVITE " * (n // 7),
    "newlines": lambda n: b"\n" * n,
    "status words": lambda n: b"SIP/2.0 " * (n // 8),
    "one long header": lambda n: b"REGISTER sip:x SIP/2.0\r\nVia: " + b"x" * n,
}


def _feed(junk: bytes) -> list:
    framer = SipFramer()
    out = []
    for i in range(0, len(junk), 1460):  # as TCP segments
        out += framer.feed(junk[i:i + 1460], 1)
        assert len(framer.buf) <= MAX_HEADER + MAX_BODY + 1460  # memory stays bounded
    return out + framer.feed(b"\r\n" + OPTIONS, 2)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_streams_cost_linear_time_and_bounded_memory(kind):
    make = HOSTILE[kind]
    assert [m for m, _ in _feed(make(300_000))][-1] == OPTIONS  # still in step afterwards
    assert_linear(_feed, make, 40_000)


def test_capture_with_a_huge_content_length_keeps_the_message_and_says_so(tmp_path):
    """The INVITE with Content-Length 999999999999 used to vanish (sip_packets 0) after a long stall."""
    invite = sip(f"INVITE sip:bob@{B} SIP/2.0", "1 INVITE").replace("Content-Length: 0",
                                                                     "Content-Length: 999999999999")
    ringing = sip("SIP/2.0 180 Ringing", "1 INVITE", to_tag=";tag=b")
    body = b"x" * (2 * 1024 * 1024)
    pkts = [tcp(A, B, invite.encode(), 1.0, 1)]
    seq = 1 + len(invite)
    for i in range(0, len(body), 60000):
        pkts.append(tcp(A, B, body[i:i + 60000], 1.1, seq))
        seq += len(body[i:i + 60000])
    pkts.append(tcp(B, A, ringing.encode(), 1.2, 1, sport=5060, dport=40000))
    pkts.append(tcp(A, B, b"", 1.3, seq, flags="FA"))
    report = analyze_file(write(tmp_path / "big.pcap", pkts))
    (call,) = report.calls
    assert [s.label for s in call.ladder] == ["INVITE", "180 Ringing"]
    assert any(f.code == "sip.nonconformant" for f in call.findings)
    (damage,) = [f for f in report.findings if f.code == "sip.framing"]
    assert damage.frames == [1] and "999999999999" in damage.explanation
