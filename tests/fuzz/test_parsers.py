"""Every parser, on any input, returns a value or raises its own module's error (issue 14), in time
linear in the input's size. Hypothesis draws the inputs: raw bytes, and mutations of real messages
where the hostile part sits in a field the parser reads."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from linear import assert_linear

from siptool import sdp as sdplib
from siptool.agent import inputs
from siptool.capture import hep
from siptool.capture.decode import Decoder
from siptool.errors import SiptoolError
from siptool.rtp.packet import dtmf_digits, parse_rtcp, parse_rtp, parse_telephone_event
from siptool.sip import build
from siptool.sip.auth import Authenticator, Challenge, parse_authorization, pick_challenge
from siptool.sip.framing import SipFramer
from siptool.sip.message import SipParseError, parse
from siptool.sip.uri import top_via, valid_host

# 300 examples a property in CI; a longer run: SIPTOOL_FUZZ_EXAMPLES=100000 pytest tests/fuzz/test_parsers.py
EXAMPLES = int(os.environ.get("SIPTOOL_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

INVITE = (b"INVITE sip:bob@198.51.100.7:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK-1;rport\r\n"
          b"From: \"Al\" <sip:alice@203.0.113.5>;tag=a1\r\nTo: <sip:bob@198.51.100.7>\r\nCall-ID: c1@x\r\n"
          b"CSeq: 1 INVITE\r\nContact: <sip:alice@203.0.113.5:5060>\r\nContent-Type: application/sdp\r\n"
          b"Content-Length: 129\r\n\r\n")
SDP = (b"v=0\r\no=- 1 1 IN IP4 203.0.113.5\r\ns=-\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n")
# Text that looks like a field but breaks it: Unicode digits, huge numbers, NULs, controls, quotes.
NASTY = st.sampled_from(["\u00b9\u00b2", "\u2460", "9" * 5000, "99999", "-1", "\x00", "\r", "\n", '"', "\\", ";",
                         ":", "@", "<", ">", ",", "=", "inf", "nan", "0x10", " ", "", "\u0660", "\ufeff", "%00"])


VOCAB = st.sampled_from(["SIP/2.0/UDP", "SIP/2.0/TCP", " ", "127.0.0.1", "203.0.113.5", "h.example", ":", "5060",
                         "99999", "0", ";", "branch=z9hG4bK1", "rport", "=", "received", "maddr", "[", "]", "::1",
                         "@", "sip:", "sips:", "tel:", "<", ">", ",", '"', "INVITE", "1", "tag=a", "/", "\t"])
FIELD = st.lists(st.one_of(VOCAB, NASTY), max_size=12).map("".join)


def message(fields: dict) -> bytes:
    """An OPTIONS whose headers are the given (possibly hostile) values."""
    head = "OPTIONS sip:x@198.51.100.7 SIP/2.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode("utf-8", "surrogatepass")


HEADERS = st.fixed_dictionaries({"Via": FIELD, "From": FIELD, "To": FIELD, "Call-ID": FIELD, "CSeq": FIELD,
                                 "Contact": FIELD, "Record-Route": FIELD, "Content-Length": FIELD})


def mutate(base: bytes):
    """base with a span replaced by nasty text or random bytes."""
    pieces = st.one_of(NASTY.map(lambda t: t.encode("utf-8")), st.binary(max_size=40))
    return st.tuples(st.integers(0, len(base)), st.integers(0, 40), st.lists(pieces, max_size=4)).map(
        lambda t: base[:t[0]] + b"".join(t[2]) + base[t[0] + t[1]:])


# --- SIP ------------------------------------------------------------------------------------

def _read_all(msg) -> None:
    """Every accessor the analyser and the agent use."""
    msg.cseq, msg.branch, msg.from_tag, msg.to_tag, msg.call_id, msg.label, msg.first_line
    for name in ("via", "contact", "route", "record-route", "from", "to"):
        msg.get_all(name)
    msg.serialise()


@SETTINGS
@given(st.one_of(st.binary(max_size=600), mutate(INVITE + SDP), HEADERS.map(message)))
def test_sip_parse_gives_a_message_or_its_error(data):
    try:
        msg = parse(data)
    except SipParseError:
        return
    _read_all(msg)
    sdplib.parse(msg.body)
    if msg.is_request:  # what the agent checks before any handler sees a request: a verdict, never a raise
        problem = build.request_problem(msg, len(data))
        assert problem is None or (problem[0] in (400, 513) and problem[1].isprintable())
        build.response_address(msg, ("127.0.0.1", 5060))


@pytest.mark.parametrize("make", [
    lambda n: INVITE[:-2] + b"X-Long: " + b"a" * n + b"\r\n\r\n",
    lambda n: INVITE[:-2] + b"Via: " + b"SIP/2.0/UDP h;x=" * (n // 16) + b"\r\n\r\n",
    lambda n: INVITE[:-2] + b"Contact: " + b"<sip:a@b>," * (n // 10) + b"\r\n\r\n",
    lambda n: INVITE[:-2] + b'To: "' + b'\\"' * (n // 2) + b'"<sip:b@c>\r\n\r\n',
    lambda n: INVITE[:-2] + b"X: y\r\n" * (n // 6) + b"\r\n",
])
def test_sip_parse_is_linear(make):
    def run(data):
        try:
            _read_all(parse(data))
        except SipParseError:
            pass
    assert_linear(run, make, 20_000)


# --- SDP ------------------------------------------------------------------------------------

@SETTINGS
@given(st.one_of(st.binary(max_size=600), mutate(SDP)))
def test_sdp_parse_never_raises(data):
    desc = sdplib.parse(data)
    for m in desc.media:
        sdplib.codecs(m), sdplib.direction(desc, m), sdplib.connection_address(desc, m), m.payload_types
        assert 0 <= m.port <= 65535 and all(0 <= pt < 128 for pt in m.payload_types)


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.lists(st.one_of(st.sampled_from(
    ["1", " ", "AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM", "inline:", "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
     "|", "2^", "20", ":", "4", ";", "KDR=1", "="]), NASTY), max_size=14).map("".join)))
def test_sdes_crypto_gives_a_line_or_a_problem(value):
    problems: list[str] = []
    crypto = sdplib.parse_crypto(value, problems)
    assert crypto is not None or problems
    if crypto is not None:
        assert sdplib.parse_crypto(crypto.value()) == crypto  # what it writes, it reads back the same


def test_sdp_parse_is_linear():
    assert_linear(sdplib.parse, lambda n: SDP + b"a=rtpmap:" + b"9" * n + b"\r\n" + b"a=x\r\n" * (n // 5), 20_000)


# --- RTP, RTCP, RFC 4733 --------------------------------------------------------------------

RTCP_RR = struct.pack("!BBHI", 0x81, 201, 7, 1) + struct.pack("!IIIIII", 2, 0, 0, 0, 0, 0)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), mutate(RTCP_RR * 3), mutate(struct.pack("!BBHII", 0x80, 101, 1, 1, 1))))
def test_rtp_and_rtcp_parsers_never_raise(data):
    parse_rtp(data)
    for p in parse_rtcp(data):
        p.reports, p.voip_metrics
    parse_telephone_event(data)
    dtmf_digits([data, data[4:]])


# --- stream framing ---------------------------------------------------------------------------

@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=300), mutate(INVITE + SDP)), max_size=6))
def test_framer_takes_any_chunks(chunks):
    framer = SipFramer()
    total = 0
    for i, c in enumerate(chunks):
        for msg, _ in framer.feed(c, i):
            total += len(msg)
    for msg, _ in framer.flush():
        total += len(msg)
    assert total <= sum(len(c) for c in chunks)  # never invents bytes


# --- digest -----------------------------------------------------------------------------------

CHALLENGE = 'Digest realm="siptool", nonce="65f0a1b2.0123456789abcdef01234567", qop="auth", algorithm=SHA-256'
ANSWER = ('Digest username="alice", realm="siptool", nonce="65f0a1b2.0123456789abcdef01234567", uri="sip:x", '
          'response="00", algorithm=MD5, qop=auth, nc=00000001, cnonce="ab"')


@SETTINGS
@given(st.one_of(st.text(max_size=300), mutate(CHALLENGE.encode()).map(lambda b: b.decode("utf-8", "replace")),
                 mutate(ANSWER.encode()).map(lambda b: b.decode("utf-8", "replace"))))
def test_digest_parsers_never_raise(value):
    Challenge.parse(value)
    pick_challenge([value, CHALLENGE])
    parse_authorization(value)
    assert Authenticator("siptool", {"alice": "pw"}).check("INVITE", value) in ("fail", "stale", "ok")


@pytest.mark.parametrize("make", [
    lambda n: 'Digest realm="' + "a" * n + '", nonce="1"',
    lambda n: "Digest " + "a=b, " * (n // 5),
    lambda n: 'Digest nonce="' + '\\"' * (n // 2),
    lambda n: "Digest " + "x" * n,
])
def test_digest_parsing_is_linear(make):
    """A 70 KB WWW-Authenticate took 23.7 s in the caller (a backtracking regex)."""
    def run(value):
        Challenge.parse(value)
        Authenticator("r", {"a": "b"}).check("INVITE", value.replace("Digest", "Digest username=a,", 1))
    assert_linear(run, make, 20_000)


# --- URI, Via, addresses from messages --------------------------------------------------------

@SETTINGS
@given(st.one_of(st.text(max_size=120), FIELD, mutate(b"<sip:+4930@[2001:db8::1]:5071;transport=tcp>").map(
    lambda b: b.decode("utf-8", "replace"))))
def test_uri_parse_gives_a_uri_or_its_error(text):
    try:
        uri = inputs.sip_uri(text)
    except SiptoolError:
        return
    host, port = uri.hostport()
    assert 0 < port <= 65535 and host


@SETTINGS
@given(st.one_of(mutate(INVITE), HEADERS.map(message)))
def test_via_addresses_are_valid_or_refused(data):
    """Where a response goes (RFC 3261 18.2.2, RFC 3581) is a valid address, or none."""
    try:
        msg = parse(data)
    except SipParseError:
        return
    for fn in (lambda: build.response_address(msg, ("127.0.0.1", 5060)), lambda: build.public_address(msg)):
        addr = fn()
        if addr is not None:
            assert 0 < addr[1] <= 65535 and valid_host(addr[0])
    build.top_via_received(msg, "127.0.0.1", 5060)
    via = top_via(msg)
    if via is not None:
        assert via.port is None or 0 < via.port <= 65535


@pytest.mark.parametrize("via, expect", [
    ("SIP/2.0/UDP 127.0.0.1:99999", None),  # once answered to port 99999: the SIP socket died
    (";branch=x", None), ("SIP/2.0/UDP 127.0.0.1:\u00b9\u00b25060", None), ("SIP/2.0/UDP host:abc;received=1.2.3.4", None),
    ("SIP/2.0/UDP 10.0.0.1;rport", ("192.0.2.9", 7000)), ("SIP/2.0/UDP 10.0.0.1:5062", ("10.0.0.1", 5062)),
    ("SIP / 2.0 / UDP [2001:db8::1]:5070;received=2001:db8::2", ("2001:db8::2", 5070)),
    ("SIP/2.0/UDP 10.0.0.1;rport=70000;received=192.0.2.9", ("192.0.2.9", 7000)),  # rport asked: the source
])
def test_response_address_class(via, expect):
    msg = parse(message({"Via": via, "From": "<sip:a@b>;tag=1", "To": "<sip:x@y>", "Call-ID": "1",
                         "CSeq": "1 OPTIONS"}))
    assert build.response_address(msg, ("192.0.2.9", 7000)) == expect


# --- link layers --------------------------------------------------------------------------------

@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276, 147]))
def test_decoder_takes_any_frame(data, linktype):
    Decoder().decode(1, 0.0, linktype, data)


# --- HEP v3 -----------------------------------------------------------------------------------

HEP_SIP = hep.encode(hep.HepMessage("203.0.113.5", "198.51.100.7", 5060, 5060, INVITE + SDP, agent_id=2001,
                                    auth_key=b"k", correlation_id=b"c1@x"))


@SETTINGS
@given(st.one_of(st.binary(max_size=300), mutate(HEP_SIP), mutate(HEP_SIP[:120])))
def test_hep_decode_gives_a_message_or_its_error(data):
    """Any datagram is a HepMessage or a HepError; the receiver turns either into a packet, a count
    or a rejected message's number (the hep.malformed finding), never an exception."""
    try:
        msg = hep.decode(data)
    except hep.HepError:
        pass
    else:
        assert 0 <= msg.sport <= 65535 and isinstance(msg.payload, bytes)
        msg.packet(1), repr(msg), msg.agent
    receiver = hep.HepReceiver()
    receiver.receive(data, "x")
    assert receiver.messages == 1 and receiver.malformed + len(receiver.skipped) <= 1


@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=80), st.just(HEP_SIP), mutate(HEP_SIP)), max_size=6),
       st.integers(1, 400))
def test_hep_framer_takes_any_stream(chunks, step):
    framer = hep.HepFramer()
    stream = b"".join(chunks)
    try:
        for i in range(0, len(stream), step):
            for message in framer.feed(stream[i:i + step]):
                assert len(message) == int.from_bytes(message[4:6], "big")
    except hep.HepError:
        pass
    assert framer.pending < 65536


def test_hep_decode_is_linear():
    def make(n):  # a message of many small unknown-vendor chunks, then the payload
        chunks = bytes.fromhex("0002002000070a") * (n // 7)
        body = chunks[:60000] + hep.encode(hep.HepMessage("10.0.0.1", "10.0.0.2", 1, 2, b"x"))[6:]
        return b"HEP3" + (6 + len(body)).to_bytes(2, "big") + body

    assert_linear(hep.decode, make, 7000)


# --- WebSocket, SCTP, TLS plaintext export, SRTP (issue 17) --------------------------------------

WS_FRAMES = (b"\x81\xfe\x00\x10\x01\x02\x03\x04" + bytes(16) + b"\x01\x05hello" + b"\x80\x02hi"
             + b"\x89\x00" + b"\x88\x02\x03\xe8")


@SETTINGS
@given(st.one_of(st.binary(max_size=400), mutate(WS_FRAMES)), st.integers(1, 50), st.sampled_from([True, False, None]))
def test_websocket_reader_takes_any_bytes(data, step, from_client):
    """Any bytes in any segments: events or problems, never an exception; the buffer never holds
    more than one frame's worth of what was given."""
    from siptool.capture.websocket import FrameReader, first_payload, parse_head

    r = FrameReader(from_client)
    for i in range(0, len(data), step):
        r.feed(data[i:i + step], frame=i)
    assert len(r.buf) <= len(data)
    first_payload(data)
    parse_head(data)


SCTP_PACKET = (b"\x03\x00\x00\x10" + bytes(12) + b"\x00\x03\x00\x18" + bytes(12) + b"SIP/2.0 " +
               b"\x00\x02\x00\x14\x00\x00\x00\x02" + bytes(8) + b"INVI")


@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=120), mutate(SCTP_PACKET)), max_size=8))
def test_sctp_chunks_and_reassembly_take_any_bytes(packets):
    from siptool.capture.sctp import Reassembly, data_chunks

    r = Reassembly()
    for n, packet in enumerate(packets):
        chunks, problem = data_chunks(packet, n)
        assert problem is None or isinstance(problem, str)
        for c in chunks:
            r.add(c)
    r.flush()
    assert not r.held


@SETTINGS
@given(st.binary(max_size=200))
def test_exported_pdu_parser_takes_any_bytes(data):
    from siptool.capture.tls import parse_exported

    found = parse_exported(data)
    assert found is None or (found[0] > 0 and len(found[1]) == 4)


@SETTINGS
@given(st.one_of(st.text(max_size=200), st.lists(st.one_of(st.sampled_from(
    ["10.0.0.1:5004", "[2001:db8::1]:5004", "ssrc=0x1a2b", "ssrc=99", " ", "\n", "#",
     "AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM", "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR", "|2^20",
     "|1:4"]), NASTY), max_size=12).map("".join)))
def test_srtp_keys_file_gives_entries_or_one_error(text):
    from siptool.rtp import srtp_keys

    try:
        entries = srtp_keys.parse(text)
    except SiptoolError as exc:
        assert "\n" not in str(exc)
    else:
        assert entries and all(e.keys for e in entries)


@SETTINGS
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_srtp_check_takes_any_packets(packets):
    """Packets that are not SRTP, or not of this key: counted, never raised."""
    from siptool.analysis.secure_media import KeyCandidate, StreamCheck
    from siptool.rtp.srtp import MasterKey

    keys = [KeyCandidate("AES_CM_128_HMAC_SHA1_80", (MasterKey(bytes(30)),), "sdp"),
            KeyCandidate("AEAD_AES_128_GCM", (MasterKey(bytes(28), 1, 1),), "keys-file")]
    for rtcp in (False, True):
        check = StreamCheck("sdes", keys, rtcp=rtcp)
        for n, p in enumerate(packets):
            check.packet(n, p)
        s = check.summary()
        assert s.packets == len(packets) == s.authenticated + s.auth_failures + s.replayed
