"""Dialogs (RFC 3261 12), message building, and the agent's small SDP offer/answer."""

from __future__ import annotations

import numpy as np
import pytest

from siptool import sdp as sdplib
from siptool.agent import inputs, roundtrip, sdp
from siptool.errors import SiptoolError
from siptool.rtp import codecs, g711
from siptool.sip import build
from siptool.sip.dialog import Dialog
from siptool.sip.message import parse


def _invite():
    return build.request("INVITE", "sip:100@b.example", via_value=build.via("udp", "10.0.0.1", 5060, "z9hG4bK1"),
                          from_value="<sip:a@a.example>;tag=ft", to_value="<sip:100@b.example>", call_id="cid", cseq=7,
                          contact="<sip:a@10.0.0.1:5060>")


def test_uac_dialog_route_set_and_bye():
    inv = _invite()
    ok = build.response(inv, 200, to_tag="tt", headers=[("contact", "<sip:100@10.0.0.9:5070>")])
    ok.headers += [("record-route", "<sip:p2.example;lr>"), ("record-route", "<sip:p1.example;lr>")]
    ok = parse(ok.serialise())
    d = Dialog.uac(inv, ok)
    assert d.route_set == ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]  # reversed (12.1.2)
    assert d.remote_target == "sip:100@10.0.0.9:5070" and d.next_hop() == "sip:p1.example;lr"
    bye = d.request("BYE", build.via("udp", "10.0.0.1", 5060, "z9hG4bK2"))
    assert bye.uri == "sip:100@10.0.0.9:5070" and bye.cseq == (8, "BYE")
    assert bye.from_tag == "ft" and bye.to_tag == "tt" and bye.get_all("route") == d.route_set
    ack = d.ack(7, build.via("udp", "10.0.0.1", 5060, "z9hG4bK3"))
    assert ack.cseq == (7, "ACK") and d.local_seq == 8


def test_uas_dialog_accepts_in_dialog_requests():
    inv = parse(_invite().serialise())
    d = Dialog.uas(inv, "mine")
    bye = build.request("BYE", "sip:x", via_value="SIP/2.0/UDP h;branch=z9hG4bK9", from_value="<sip:a@a.example>;tag=ft",
                         to_value="<sip:100@b.example>;tag=mine", call_id="cid", cseq=8)
    assert d.accepts(parse(bye.serialise()))
    assert d.remote_target == "sip:a@10.0.0.1:5060" and d.remote_seq == 7


def test_response_via_rport_received():
    inv = parse(_invite().serialise())
    build.top_via_received(inv, "192.0.2.7", 40000)
    assert build.response_address(inv, ("0.0.0.0", 0)) == ("192.0.2.7", 40000)
    resp = parse(build.response(inv, 180, to_tag="x").serialise())
    assert "received=192.0.2.7" in resp.get("via") and resp.to_tag == "x"


def test_parse_uri():
    u = inputs.sip_uri("<sips:+4930@[::1]:5071;transport=tcp>")
    assert (u.scheme, u.user, u.host, u.port, u.transport) == ("sips", "+4930", "::1", 5071, "tcp")
    assert inputs.sip_uri("sip:100@h").hostport() == ("h", 5060)
    with pytest.raises(SiptoolError, match="no host to send to"):
        inputs.sip_uri("tel:+4930")


def test_sdp_offer_answer():
    offer = sdp.parse(sdp.build("127.0.0.1", 4000, [8, 0]))
    assert offer.connection == "127.0.0.1" and offer.port == 4000 and offer.payload_types == [8, 0, 101]
    assert sdplib.negotiate(offer, ["PCMU", "PCMA"]) == ("PCMA", 8)  # the offer's order wins (RFC 3264 6.1)
    assert sdplib.negotiate(offer, ["G729"]) is None
    assert offer.dtmf_pt == 101
    assert sdp.parse(sdp.build("h", 1, [0], direction="sendonly")).direction == "sendonly"
    assert sdplib.answer_direction("sendonly") == "recvonly"


def test_audio_rtt_by_correlation_offline():
    """Received audio delayed by 37.5 ms: correlation finds it, and a non-echo far end gives None."""
    sig = g711.speech_like(3.0)
    payload = g711.encode("PCMU", sig)
    rx = [(1000.0 + k * 0.02 + 0.0375 + (k % 3) * 0.002, 5000 + 160 * k, 0, payload[160 * k:160 * k + 160])
          for k in range(len(sig) // 160)]
    pcmu = codecs.coder("PCMU")
    assert abs(roundtrip.audio_rtt_ms(sig, 1000.0, *roundtrip.received_signal(rx, 0, pcmu)) - 37.5) < 2.5
    noise = np.random.default_rng(2).integers(-3000, 3000, len(sig)).astype(np.int16)
    rx = [(t, ts, 0, g711.encode("PCMU", noise[160 * k:160 * k + 160])) for k, (t, ts, _, _) in enumerate(rx)]
    assert roundtrip.audio_rtt_ms(sig, 1000.0, *roundtrip.received_signal(rx, 0, pcmu)) is None
