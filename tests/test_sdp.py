"""SDP parser (RFC 8866) on real-world shapes: session/media c=, rtpmap, direction, rtcp, crypto, ICE."""

from __future__ import annotations

from hypothesis import given, strategies as st

from siptool import sdp

OFFER = b"""v=0\r
o=- 20518 0 IN IP4 203.0.113.5\r
s=call\r
c=IN IP4 203.0.113.5\r
t=0 0\r
a=sendonly\r
m=audio 49170 RTP/SAVP 0 8 101 18\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:101 telephone-event/8000\r
a=fmtp:101 0-16\r
a=ptime:30\r
a=rtcp:53020 IN IP4 126.16.64.4\r
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r
a=candidate:1 1 UDP 2130706431 10.0.1.1 8998 typ host\r
m=video 0 RTP/AVP 31\r
c=IN IP4 0.0.0.0\r
"""


def test_offer_fields():
    d = sdp.parse(OFFER)
    assert d.origin_address == "203.0.113.5" and d.connection == "203.0.113.5" and not d.problems
    audio, video = d.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 49170, "RTP/SAVP")
    assert sdp.codecs(audio) == [(0, "PCMU", 8000, 1), (8, "PCMA", 8000, 1), (101, "telephone-event", 8000, 1),
                                 (18, "G729", 8000, 1)]
    assert audio.fmtp[101] == "0-16" and audio.ptime == 30
    assert (audio.rtcp_port, audio.rtcp_address) == (53020, "126.16.64.4")
    assert [c.suite for c in audio.crypto] == ["AES_CM_128_HMAC_SHA1_80"] and len(audio.candidates) == 1
    assert sdp.direction(d, audio) == "sendonly"  # session-level attribute applies
    assert sdp.connection_address(d, audio) == "203.0.113.5"
    assert sdp.direction(d, video) == "inactive"  # port 0: rejected/disabled stream
    assert sdp.connection_address(d, video) == "0.0.0.0"


def test_media_level_wins_and_old_style_hold():
    d = sdp.parse("v=0\r\nc=IN IP4 192.0.2.1\r\na=recvonly\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n"
                  "a=sendrecv\r\na=rtcp-mux\r\n")
    (m,) = d.media
    assert sdp.connection_address(d, m) == "0.0.0.0"
    assert sdp.direction(d, m) == "sendonly"  # RFC 3264 8.4: c=0.0.0.0 is the old hold
    assert m.rtcp_mux


def test_broken_lines_become_problems():
    d = sdp.parse(b"v=0\r\ngarbage\r\nm=audio notaport RTP/AVP 0\r\nm=audio 5000 RTP/AVP 0 96\r\n"
                  b"a=rtpmap:x y\r\na=ptime:abc\r\n")
    assert len(d.problems) == 4
    (m,) = d.media
    assert sdp.codecs(m) == [(0, "PCMU", 8000, 1), (96, "PT96", 0, 1)]


@given(st.binary(max_size=400))
def test_never_raises(data):
    sdp.parse(data)


def test_one_sdp_model_serialises_and_negotiates():
    """The agent builds, reads and answers SDP with siptool.sdp's model (issue 15): what it writes
    parses back to the same sections; negotiate() picks by the offer's order (RFC 3264 6.1)."""
    from siptool import sdp as sdplib
    from siptool.agent import sdp as agent_sdp

    for address in ("192.0.2.7", "2001:db8::7"):
        body = agent_sdp.build(address, 40000, [8, 0], direction="sendonly", session_id=7)
        desc = sdplib.parse(body)
        assert desc.problems == [] and desc.serialise() == body  # a round trip, byte for byte
        m = sdplib.audio_in_force(desc)
        assert (m.connection, m.port, m.payload_types, m.direction, m.ptime) == (address, 40000, [8, 0, 101], "sendonly", 20)
        assert m.dtmf_pt == 101 and m.codec_name(8) == "PCMA" and m.codec_name(18) == "G729"
        assert sdplib.negotiate(m, ["PCMU", "PCMA"]) == ("PCMA", 8) and sdplib.negotiate(m, ["G722"]) is None
        assert sdplib.answer_direction(m.direction) == "recvonly"
    held = sdplib.audio_in_force(sdplib.parse(agent_sdp.build("0.0.0.0", 4000, [0])))
    assert held.direction == "sendonly"  # RFC 3264 8.4: c=0.0.0.0 is hold


def test_offer_answer_roles():
    """RFC 3261 13.2.1: the offer is in the INVITE, or (late offer) in the 2xx, answered in the ACK."""
    role = sdp.role
    assert role(True, "INVITE", "INVITE", None, True) == sdp.Role.OFFER
    assert role(False, None, "INVITE", 183, True) == role(False, None, "INVITE", 200, True) == sdp.Role.ANSWER
    assert role(False, None, "INVITE", 200, False) == sdp.Role.OFFER  # the INVITE carried none
    assert role(False, None, "INVITE", 183, False) == sdp.Role.ANSWER  # only a 2xx (reliable) makes one
    assert role(True, "ACK", "ACK", None, False) == sdp.Role.ANSWER
    assert role(False, None, "UPDATE", 200, False) == sdp.Role.ANSWER
    assert role(False, None, "INVITE", 200, None) == sdp.Role.ANSWER  # no INVITE captured: read as usual
    assert sdp.Role.OFFER == "offer"  # the Report's SdpEntry.role, as JSON shows it


def test_passive_roles_of_a_late_offer_call():
    """The Analyzer labels a late-offer call through sdp.role: 2xx offer, ACK answer."""
    from siptool.analysis.session import Analyzer, _media_tracker
    from siptool.capture import CaptureInfo, Packet

    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

    def msg(first: str, cseq: str, sdp_body: bytes = b"") -> bytes:
        head = (f"{first}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=a\r\n"
                f"To: <sip:b@y>{';tag=b' if not first.startswith('INVITE') else ''}\r\nCall-ID: late\r\n"
                f"CSeq: {cseq}\r\n")
        if sdp_body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(sdp_body)}\r\n\r\n").encode() + sdp_body

    analyzer = Analyzer(media=_media_tracker())
    for n, data in enumerate([msg("INVITE sip:b@y SIP/2.0", "1 INVITE"),
                              msg("SIP/2.0 200 OK", "1 INVITE", body),
                              msg("ACK sip:b@y SIP/2.0", "1 ACK", body)], 1):
        analyzer.feed(Packet(n, float(n), "192.0.2.1", 5060, "192.0.2.2", 5060, "udp", data))
    call = analyzer.finish(CaptureInfo(path="-")).calls[0]
    assert [(e.message, e.role) for e in call.sdp] == [("200 OK", "offer"), ("ACK", "answer")]


# --- SDES (RFC 4568) ------------------------------------------------------------------------

KEY30 = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"  # RFC 4568 9.1's example key
KEY28 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw=="


def test_crypto_lines_parse_and_serialise():
    """RFC 4568 9.1's offer shapes: lifetime as 2^n, MKI, two keys, session parameters; written
    back as they were read (a=crypto in Media.lines())."""
    values = [f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^20|1:4",
              f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY30}|2^20|1:4;inline:{KEY30}|2^20|2:4 KDR=1 WSH=64",
              f"3 AEAD_AES_128_GCM inline:{KEY28}",
              f"4 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|1000"]
    body = OFFER.replace(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + KEY30.encode() + b"\r\n",
                         b"".join(b"a=crypto:" + v.encode() + b"\r\n" for v in values))
    d = sdp.parse(body)
    audio = d.media[0]
    assert not d.problems and [c.value() for c in audio.crypto] == values
    first, second, gcm, decimal = audio.crypto
    assert (first.tag, first.suite, len(first.keys[0].key_salt)) == (1, "AES_CM_128_HMAC_SHA1_80", 30)
    assert (first.keys[0].lifetime, first.keys[0].mki, first.keys[0].mki_length) == (2 ** 20, 1, 4)
    assert [k.mki for k in second.keys] == [1, 2] and second.session_params == ["KDR=1", "WSH=64"]
    assert len(gcm.keys[0].key_salt) == 28 and decimal.keys[0].lifetime == 1000
    assert [line for line in audio.lines() if line.startswith("a=crypto:")] == [f"a=crypto:{v}" for v in values]
    again = sdp.parse(sdp.SessionDescription(origin="- 1 1 IN IP4 203.0.113.5", media=[audio]).serialise())
    assert [c.value() for c in again.media[0].crypto] == values


def test_bad_crypto_lines_are_problems_not_errors():
    bad = {"1 AES_CM_128_HMAC_SHA1_80 inline:not*base64": "not base64",
           f"1 AEAD_AES_128_GCM inline:{KEY30}": "28-byte key",
           f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|1:0": "bad MKI",
           f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|300:1": "bad MKI",
           f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30}|2^x": "lifetime",
           "1 AES_CM_128_HMAC_SHA1_80 uri:https://kms.example/key": "not inline",
           "x AES_CM_128_HMAC_SHA1_80": "bad crypto"}
    for value, why in bad.items():
        d = sdp.parse(OFFER + f"a=crypto:{value}\r\n".encode())
        assert any(why in p for p in d.problems), value
        assert all(c.keys for c in d.media[-1].crypto)  # a line with no usable key is dropped
    unknown = sdp.parse_crypto("7 F8_128_HMAC_SHA1_80 inline:" + KEY30)
    assert unknown.suite == "F8_128_HMAC_SHA1_80" and len(unknown.keys[0].key_salt) == 30  # kept as written
