"""SIP parser (RFC 3261 7, 20, 25): examples, compact forms, folding, and hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siptool.sip.framing import SipFramer
from siptool.sip.message import SipParseError, param, parse, split_list
from siptool.sip.uri import name_addr, uri_user

INVITE = (b"INVITE sip:+4930123@trunk.example.com SIP/2.0\r\n"
          b"v: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK776asdhds;rport\r\n"
          b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2.example.com;branch=z9hG4bK2\r\n"
          b"f: \"Alice, A.\" <sip:alice@example.com>;tag=1928301774\r\n"
          b"t: <sip:+4930123@trunk.example.com>\r\n"
          b"i: a84b4c76e66710@pc33.example.com\r\n"
          b"CSeq: 314159 INVITE\r\n"
          b"m: <sip:alice@10.0.0.5:5060>\r\n"
          b"Subject: a folded\r\n   header value\r\n"
          b"c: application/sdp\r\n"
          b"l: 12\r\n\r\n"
          b"v=0\r\no=- 1\r\n")


def test_compact_forms_folding_and_repeats():
    msg = parse(INVITE)
    assert (msg.method, msg.uri) == ("INVITE", "sip:+4930123@trunk.example.com")
    assert msg.call_id == "a84b4c76e66710@pc33.example.com" and msg.cseq == (314159, "INVITE")
    assert msg.from_tag == "1928301774" and msg.to_tag is None
    assert msg.branch == "z9hG4bK776asdhds"
    assert len(msg.get_all("via")) == 3  # one repeated header plus a comma-joined pair
    assert msg.get("subject") == "a folded header value"
    assert msg.get("content-type") == "application/sdp" and msg.body == b"v=0\r\no=- 1\r\n"
    assert not msg.problems
    assert name_addr(msg.get("from")) == ("Alice, A.", "sip:alice@example.com")
    assert uri_user(msg.uri) == "+4930123"


def test_response_and_problems_are_kept_not_raised():
    msg = parse(b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 40\r\n\r\nshort")
    assert (msg.status, msg.reason, msg.label) == (486, "Busy Here", "486 Busy Here")
    assert any("Content-Length 40" in p for p in msg.problems)
    assert any("From is missing" in p for p in msg.problems)


@pytest.mark.parametrize("raw,why", [
    (b"HELLO WORLD\r\n\r\n", "bad request line"),
    (b"INV ITE sip:a@b SIP/2.0\r\n\r\n", "bad request line"),
    (b"INVITE nourischeme SIP/2.0\r\n\r\n", "no scheme"),
    (b"SIP/2.0 99 Too Low\r\n\r\n", "bad status line"),
    (b"OPTIONS sip:a@b SIP/2.0\r\nno colon here\r\n\r\n", "without a colon"),
    (b"OPTIONS sip:a@b SIP/2.0\r\n  folded first\r\n\r\n", "continuation line"),
])
def test_malformed_messages_say_why(raw, why):
    with pytest.raises(SipParseError, match=why):
        parse(raw)


def test_list_and_param_helpers():
    assert split_list('"a,b" <sip:x@y;p=1,2>, <sip:z@w>') == ['"a,b" <sip:x@y;p=1,2>', "<sip:z@w>"]
    assert param("<sip:a@b;tag=x>;tag=y", "tag") == "y"


def test_framer_splits_and_joins_on_content_length():
    one = parse(INVITE).serialise()
    framer = SipFramer()
    out = framer.feed(one + one[:50], frame=1) + framer.feed(one[50:], frame=2)
    assert [frame for _, frame in out] == [1, 2]
    assert all(parse(raw, stream=True).call_id == "a84b4c76e66710@pc33.example.com" for raw, _ in out)


# --- properties ---------------------------------------------------------------------------------

TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~",
                min_size=1, max_size=12)
VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40).map(str.strip)


@st.composite
def messages(draw):
    if draw(st.booleans()):
        first = f"{draw(TOKEN).upper()} sip:{draw(TOKEN)}@{draw(TOKEN)} SIP/2.0"
    else:
        first = f"SIP/2.0 {draw(st.integers(100, 699))} {draw(VALUE)}".rstrip()
    names = st.sampled_from(["Via", "From", "To", "Call-ID", "CSeq", "Contact", "X-Custom", "Subject", "i", "m"])
    headers = draw(st.lists(st.tuples(names, VALUE), max_size=8))
    body = draw(st.binary(max_size=64))
    lines = [first] + [f"{n}: {v}" for n, v in headers] + [f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_valid_messages_round_trip(raw):
    msg = parse(raw)
    again = parse(msg.serialise())
    assert (again.method, again.uri, again.status, again.reason) == (msg.method, msg.uri, msg.status, msg.reason)
    assert again.headers == msg.headers and again.body == msg.body


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_parse_error(data):
    try:
        parse(data)
    except SipParseError:
        pass


@settings(max_examples=500)
@given(st.data())
def test_mutated_messages_never_raise_anything_but_parse_error(data):
    raw = bytearray(INVITE)
    for _ in range(data.draw(st.integers(1, 8))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(raw) - 1))
        if op == "flip":
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos:pos + data.draw(st.integers(1, 20))]
        else:
            raw[pos:pos] = data.draw(st.sampled_from([b"\r\n", b":", b" ", b"\x00", b"\xff", b";tag="]))
        if not raw:
            break
    try:
        msg = parse(bytes(raw))
    except SipParseError:
        return
    msg.serialise()
    _ = (msg.cseq, msg.branch, msg.from_tag, msg.call_id, msg.label)
