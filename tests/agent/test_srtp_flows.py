"""SRTP in the agent, sans-I/O: SDES offer and answer (RFC 4568) in every mode, the call flow with the
echo agent in memory (tests/agent/memory.py), and the RTP sessions protecting and unprotecting with
their keys (a key per direction), with what a wrong key and a duplicated packet do."""

from __future__ import annotations

import pytest

from agent.memory import Network
from agent.test_rtp_session import media
from siptool import sdp as sdplib
from siptool.agent import sdes
from siptool.agent.echo_core import EchoCore, EchoPolicy
from siptool.agent.events import Answered, MediaStopped
from siptool.agent.options import CallOptions
from siptool.agent.sdes import Keys, Protection, Refusal, SrtpMode
from siptool.agent.session import UacSession
from siptool.rtp.packet import parse_rtp
from siptool.report.agent_view import event_text
from siptool.rtp.srtp import SUITES, CryptoContext, MasterKey, Outcome

CALLER, ECHO = ("10.0.0.1", 5060), ("10.0.0.2", 5060)
GCM, SHA80, SHA32 = "AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"


def media_line(proto: str, crypto: list[sdplib.Crypto] = (), fingerprint: str = "") -> sdplib.Media:
    return sdplib.Media("audio", 4000, proto, ["0"], crypto=list(crypto), fingerprint=fingerprint)


# --- offer and answer ------------------------------------------------------------------------------

def test_offers_one_line_per_suite_with_fresh_keys_strongest_first():
    proto, lines = sdes.offer(SrtpMode.MANDATORY)
    assert proto == "RTP/SAVP" and [(c.tag, c.suite) for c in lines] == [(1, GCM), (2, SHA80), (3, SHA32)]
    assert [len(c.keys[0].key_salt) for c in lines] == [28, 30, 30]
    again = sdes.offer(SrtpMode.MANDATORY)[1]
    assert {c.keys[0].key_salt for c in lines}.isdisjoint(c.keys[0].key_salt for c in again)
    assert sdes.offer(SrtpMode.OPTIONAL, (SHA80,))[0] == "RTP/AVP"  # best effort: a=crypto on RTP/AVP
    assert sdes.offer(SrtpMode.OFF) == ("RTP/AVP", [])
    # what goes on the wire reads back as written (RFC 4568 9.1)
    text = sdplib.Media("audio", 4000, proto, ["0"], crypto=lines).lines()
    parsed = sdplib.parse("v=0\r\nc=IN IP4 10.0.0.1\r\n" + "\r\n".join(text)).media[0]
    assert [(c.tag, c.suite, c.keys) for c in parsed.crypto] == [(c.tag, c.suite, c.keys) for c in lines]


def test_the_answerer_takes_the_strongest_common_suite_with_a_key_of_its_own():
    _, lines = sdes.offer(SrtpMode.MANDATORY, (SHA32, SHA80, GCM))  # offered weakest first
    keys = sdes.answer(media_line("RTP/SAVP", lines), SrtpMode.OPTIONAL)
    assert isinstance(keys, Keys) and keys.suite == GCM and keys.remote is lines[2]
    assert keys.local.tag == 3 and keys.local.suite == GCM and keys.local.keys != lines[2].keys  # 7.1.2
    only80 = sdes.answer(media_line("RTP/SAVP", lines), SrtpMode.MANDATORY, (SHA80,))
    assert only80.suite == SHA80 and only80.local.tag == 2


@pytest.mark.parametrize("proto, crypto, fingerprint, mode, suites, expect", [
    ("RTP/SAVP", True, "", SrtpMode.OFF, sdes.OFFERED, (302, "SRTP is not enabled")),
    ("RTP/AVP", False, "", SrtpMode.MANDATORY, sdes.OFFERED, (302, "SRTP (RTP/SAVP) is required")),
    ("RTP/SAVP", True, "", SrtpMode.OPTIONAL, ("AEAD_AES_256_GCM",), (399, "no common SRTP crypto suite")),
    ("UDP/TLS/RTP/SAVP", False, "sha-256 AB:CD", SrtpMode.OPTIONAL, sdes.OFFERED, (302, "DTLS-SRTP")),
    ("RTP/AVP", True, "", SrtpMode.OPTIONAL, ("AEAD_AES_256_GCM",), None),  # best effort, no suite: plain
    ("RTP/AVP", True, "", SrtpMode.OFF, sdes.OFFERED, None),  # best effort, SRTP off: plain
    ("RTP/AVP", False, "", SrtpMode.OPTIONAL, sdes.OFFERED, None),
])
def test_what_the_answerer_refuses_and_what_it_answers_in_clear(proto, crypto, fingerprint, mode, suites, expect):
    lines = sdes.offer(SrtpMode.MANDATORY)[1] if crypto else []
    got = sdes.answer(media_line(proto, lines, fingerprint), mode, suites)
    if expect is None:
        assert got is None
    else:
        assert isinstance(got, Refusal) and got.warning == expect[0] and expect[1] in got.text


def test_lines_with_session_parameters_libsrtp_cannot_honour_are_ignored():
    lines = sdes.offer(SrtpMode.MANDATORY, (GCM, SHA80))[1]
    lines[0].session_params = ["UNENCRYPTED_SRTP"]  # RFC 4568 6.3.3: not something we do
    lines[1].session_params = ["WSH=128"]  # a window size hint: fine
    assert sdes.answer(media_line("RTP/SAVP", lines), SrtpMode.OPTIONAL).suite == SHA80


def test_the_offerer_reads_the_answer():
    proto, lines = sdes.offer(SrtpMode.MANDATORY)
    theirs = sdplib.Crypto(2, SHA80, [MasterKey(bytes(30))])
    keys = sdes.accept(lines, proto, media_line("RTP/SAVP", [theirs]), SrtpMode.MANDATORY)
    assert keys == Keys(SHA80, lines[1], theirs)
    downgrade = sdes.accept(lines, proto, media_line("RTP/AVP"), SrtpMode.MANDATORY)
    assert downgrade.startswith("SRTP downgraded: the answer is RTP/AVP to an RTP/SAVP offer")
    wrong_tag = sdes.accept(lines, proto, media_line("RTP/SAVP", [sdplib.Crypto(2, GCM, [MasterKey(bytes(28))])]),
                            SrtpMode.MANDATORY)
    assert "no a=crypto line matching an offered one" in wrong_tag and "2 AEAD_AES_128_GCM" in wrong_tag
    proto, lines = sdes.offer(SrtpMode.OPTIONAL)
    assert sdes.accept(lines, proto, media_line("RTP/AVP"), SrtpMode.OPTIONAL) is None  # declined: plain
    assert sdes.accept(lines, proto, media_line("RTP/AVP", [theirs]), SrtpMode.OPTIONAL).suite == SHA80
    assert "RTP/SAVP to an RTP/AVP offer" in sdes.accept([], "RTP/AVP", media_line("RTP/SAVP"), SrtpMode.OFF)


# --- the call flow in memory ----------------------------------------------------------------------

def flow(policy: EchoPolicy, **options):
    net = Network()
    caller, echo = net.endpoint(*CALLER), net.endpoint(*ECHO)
    EchoCore(echo, policy, open_media=lambda session: 40002)
    o = CallOptions(uri="sip:echo@10.0.0.2", **{"duration": 3.0, **options})
    call = UacSession(caller, o, ECHO, ("10.0.0.1", 40000))
    call.start(net.now)
    net.run(until=lambda: call.ended and not net.nodes[ECHO].dialogs)
    return net, call


def bodies(net, label: str) -> list[sdplib.Media]:
    return [sdplib.audio_in_force(sdplib.parse(p.msg.body)) for p in net.wire if p.label == label and p.msg.body]


def test_srtp_call_with_the_echo_and_a_hold_that_keeps_the_keys():
    net, call = flow(EchoPolicy(), srtp="mandatory", hold=True, duration=6.0)
    offer, hold, resume = bodies(net, "INVITE")
    answer, hold_answer, resume_answer = bodies(net, "200 OK (INVITE)")
    assert offer.proto == answer.proto == "RTP/SAVP" and [c.suite for c in offer.crypto] == list(sdes.OFFERED)
    (chosen,) = answer.crypto
    assert (chosen.tag, chosen.suite) == (1, GCM) and chosen.keys != offer.crypto[0].keys
    assert call.srtp == Keys(GCM, call.crypto_offer[0], chosen)
    answered = [e for _, o, e in net.events if o is call and isinstance(e, Answered)]
    assert answered[0].srtp == call.srtp
    # RFC 4568 7.1.4: the re-INVITEs offer the line the answer took, with the same key; answers keep theirs
    for again in (hold, resume):
        assert again.proto == "RTP/SAVP" and [(c.tag, c.suite, c.keys) for c in again.crypto] == \
            [(1, GCM, offer.crypto[0].keys)]
    for again in (hold_answer, resume_answer):
        assert [(c.tag, c.keys) for c in again.crypto] == [(1, chosen.keys)]
    assert call.hold_status == call.resume_status == 200
    assert "media PCMU to 10.0.0.2:40002, SRTP AEAD_AES_128_GCM" in [event_text(e) for e in call.log]


def test_no_common_suite_is_refused_with_488_and_a_warning():
    net, call = flow(EchoPolicy(srtp_suites=(GCM,)), srtp="mandatory", srtp_suites=(SHA80, SHA32))
    assert call.status == 488 and call.codec is None
    refusal = next(p.msg for p in net.wire if p.label.startswith("488"))
    assert refusal.get("warning") == ('399 siptool "no common SRTP crypto suite (offered AES_CM_128_HMAC_SHA1_80, '
                                      'AES_CM_128_HMAC_SHA1_32; accepted AEAD_AES_128_GCM)"')


def test_best_effort_srtp_declined_by_an_echo_without_srtp_is_plain_rtp():
    net, call = flow(EchoPolicy(srtp=SrtpMode.OFF), srtp="optional")
    (offer,), (answer,) = bodies(net, "INVITE"), bodies(net, "200 OK (INVITE)")
    assert offer.proto == "RTP/AVP" and len(offer.crypto) == 3
    assert answer.proto == "RTP/AVP" and answer.crypto == [] and call.status == 200
    assert call.srtp is None and call.codec == "PCMU" and not call.problems


# --- the RTP sessions with their keys -------------------------------------------------------------

def keys_pair(suite: str = SHA80) -> tuple[Keys, Keys]:
    """The caller's Keys and the echo's, as SDES gives them."""
    proto, lines = sdes.offer(SrtpMode.MANDATORY, (suite,))
    echo = sdes.answer(media_line(proto, lines), SrtpMode.OPTIONAL)
    caller = sdes.accept(lines, proto, media_line(proto, [echo.local]), SrtpMode.MANDATORY)
    return caller, echo


def hooks(p: Protection) -> dict:
    return {"protect": p.protect, "unprotect": p.unprotect}


@pytest.mark.parametrize("suite", [GCM, SHA80, SHA32])
def test_media_both_ways_each_protected_with_its_senders_key(suite):
    ours, theirs = keys_pair(suite)
    mine, echo_side = Protection(ours), Protection(theirs)
    caller, echo, wire = media(2.0, caller_hooks=hooks(mine), echo_hooks=hooks(echo_side))
    out = [d for _, where, rtcp, d, _ in wire if where == "out" and not rtcp]
    back = [d for _, where, rtcp, d, _ in wire if where == "back" and not rtcp]
    assert len(out) == len(back) == caller.tx_packets == 100
    tag = SUITES[suite].rtp_tag
    assert {len(d) for d in out} == {12 + 160 + tag}  # SRTP: the payload encrypted, the tag added
    assert all(a[12:] != b[12:] for a, b in zip(out, back))  # what comes back is not our cipher text
    # only the echo's key opens what it sent back, only ours what we sent
    assert CryptoContext(suite, theirs.local.keys).unprotect(back[0]).outcome is Outcome.OK
    assert CryptoContext(suite, ours.local.keys).unprotect(back[0]).outcome is Outcome.AUTH_FAILED
    assert caller.rx_packets == 100 and caller.stats.finish().lost_rfc3550 == 0
    assert mine.rx.counts.ok == 100 and echo_side.rx.counts.ok == 100 and echo.echoed == 100
    assert [p for _, _, _, p in caller.rx_audio[:5]] == [caller.coder.encode(caller.sent_signal(800)[i * 160:(i + 1) * 160])
                                                          for i in range(5)]
    # SRTCP: each side read the other's reports
    assert caller.rtcp_rx > 0 and echo.rtcp_rx > 0 and mine.rx_rtcp.rtcp_counts.ok == caller.rtcp_rx
    assert all(d[1] in (200, 201) and len(d) > 8 for _, _, rtcp, d, _ in wire if rtcp)


def test_a_wrong_key_drops_everything_and_a_duplicate_is_a_replay():
    ours, theirs = keys_pair()
    stale = Keys(ours.suite, ours.local, sdplib.Crypto(1, ours.suite, [MasterKey(bytes(30))]))  # not the echo's key
    mine = Protection(stale)
    caller, _echo, _ = media(1.0, caller_hooks=hooks(mine), echo_hooks=hooks(Protection(theirs)))
    assert caller.rx_packets == 0 and mine.rx.counts.auth_failed == 50
    assert caller.events[0][1] == MediaStopped("", None, 0.5, True)  # as no media at all
    ours, theirs = keys_pair()
    mine = Protection(ours)
    caller, _echo, _ = media(1.0, caller_hooks=hooks(mine), echo_hooks=hooks(Protection(theirs)),
                             dup=lambda where, data: where == "back" and parse_rtp(data).sequence % 10 == 0)
    assert caller.rx_packets == 50 and mine.rx.counts.replayed == 5 and mine.rx.counts.ok == 50
    assert mine.facts().replayed == 5 and mine.facts().received == 55


def test_keys_libsrtp_cannot_take_are_not_taken():
    """Several keys without MKIs, or MKIs of two lengths (RFC 4568 6.1): the answerer ignores the
    line, the offerer refuses such an answer; neither gets as far as libsrtp."""
    key = MasterKey(bytes(30))
    bad = [sdplib.Crypto(1, SHA80, [key, MasterKey(bytes(range(30)))]),
           sdplib.Crypto(2, SHA80, [MasterKey(bytes(30), 1, 1), MasterKey(bytes(30), 2, 2)])]
    assert sdes.usable(bad) == []
    assert isinstance(sdes.answer(media_line("RTP/SAVP", bad), SrtpMode.OPTIONAL), Refusal)
    proto, lines = sdes.offer(SrtpMode.MANDATORY, (SHA80,))
    problem = sdes.accept(lines, proto, media_line("RTP/SAVP", bad[:1]), SrtpMode.MANDATORY)
    assert "no a=crypto line matching an offered one" in problem
    good = sdplib.Crypto(1, SHA80, [MasterKey(bytes(30), 1, 2), MasterKey(bytes(range(30)), 2, 2)])
    Protection(sdes.accept(lines, proto, media_line("RTP/SAVP", [good]), SrtpMode.MANDATORY))  # MKIs: fine
