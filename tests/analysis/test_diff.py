"""siptool diff: captures of real peers at two points (make_pcaps.sh's diff_* cases: kamailio as a
Record-Route proxy, with topoh, and with fixtures/relay.py anchoring the media) compared, checked
against tshark's frame times, the relay's own log and the tone file's missing packets."""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache

import pytest
from support import FIXTURES, REPO, require_binary

from siptool.analysis.diff import compare, match_calls, match_messages, same_number
from siptool.analysis.diff_facts import _list_note, codec_note
from siptool.drivers.files import diff_side as read
from siptool.report.model import Call, LadderStep

SCRIPT = (REPO / "fixtures" / "make_pcaps.sh").read_text()
BEFORE_ANY_POINT = [int(x) for x in re.search(r"diff_uas_tone.pcap.*?--drop ([\d,]+)", SCRIPT, re.S)
                    .group(1).split(",")]  # the callee's tone lacks these: lost before any capture point


@lru_cache(maxsize=None)
def diffed(case: str, folder: str = str(FIXTURES)):
    return compare(read(f"{folder}/{case}_a.pcap"), read(f"{folder}/{case}_b.pcap"))


def tshark_times(path) -> dict[int, tuple[float, str]]:
    """frame -> (time, method or status) of every SIP message, as tshark reads the capture."""
    require_binary("tshark")
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "sip", "-T", "fields", "-e", "frame.number", "-e",
                          "frame.time_epoch", "-e", "sip.Method", "-e", "sip.Status-Code"],
                         capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return {int(r[0]): (float(r[1]), r[2] or r[3]) for r in rows}


def check_against_tshark(case: str, folder=FIXTURES) -> None:
    """Every paired message is the same kind on both sides, and its hop delay is tshark's frame time
    on b minus tshark's frame time on a."""
    ta, tb = tshark_times(folder / f"{case}_a.pcap"), tshark_times(folder / f"{case}_b.pcap")
    for pair in diffed(case, str(folder)).calls:
        for m in pair.messages:
            assert m.frame_a in ta and m.frame_b in tb
            assert ta[m.frame_a][1] == tb[m.frame_b][1] == m.label.split()[0]
            if m.delay_ms is not None:
                assert m.delay_ms == pytest.approx((tb[m.frame_b][0] - ta[m.frame_a][0]) * 1000, abs=0.002)


def stream(pair, direction):
    (s,) = [s for s in pair.streams if s.direction == direction]
    return s


# --- kamailio as a Record-Route proxy ------------------------------------------------------------

def test_proxy_pairs_by_call_id_and_measures_each_hop():
    d = diffed("diff_proxy")
    assert (d.matched, d.only_a, d.only_b, d.paired_by) == (2, 0, 0, {"call-id": 2})
    ok, busy = d.calls
    assert (ok.final_a, ok.final_b, busy.final_a, busy.final_b) == (200, 200, 486, 486)
    assert ok.only_a == ok.only_b == busy.only_a == busy.only_b == 0
    labels = [m.label for m in ok.messages if not m.hop_by_hop]
    assert labels == ["INVITE", "180 Ringing", "200 OK", "ACK", "BYE", "200 OK (BYE)"]
    for m in ok.messages + busy.messages:
        if m.hop_by_hop:  # 100 Trying, and the ACK of the 486: each hop its own
            assert m.delay_ms is None and (m.label.startswith("100") or m.label == "ACK")
        else:  # what the caller sends passes a first, what the callee sends passes b first
            assert m.direction == ("a->b" if m.sender == "caller" else "b->a")
            assert 0 < abs(m.delay_ms) < 50
    assert [m.label for m in busy.messages if m.hop_by_hop] == ["100 trying -- your call is important to us", "ACK"]
    check_against_tshark("diff_proxy")


def test_proxy_rewrites_are_its_via_and_record_route():
    ok = diffed("diff_proxy").calls[0]
    by_field = {r.field: r for r in ok.rewrites}
    assert set(by_field) == {"Via", "Record-Route", "Route"}  # no SDP, Call-ID or Contact change
    via = by_field["Via"]
    assert via.note == "1 added on top" and via.b.split(", ")[0] == "UDP 10.18.2.1"
    assert via.messages == ["INVITE", "180 Ringing", "200 OK", "ACK", "BYE", "200 OK (BYE)"]
    rr = by_field["Record-Route"]
    assert rr.messages == ["INVITE"] and rr.a == "none" and rr.note == "2 added"  # double record-routing
    assert by_field["Route"].messages == ["ACK", "BYE"] and by_field["Route"].b == "none"  # loose routing


def test_proxy_media_loss_began_before_the_callee_side():
    ok = diffed("diff_proxy").calls[0]
    out, back = stream(ok, "caller->callee"), stream(ok, "callee->caller")
    assert (out.paired_by, out.upstream, out.lost_before, out.lost_between) == ("ssrc+direction", "a", 0, 0)
    assert (back.upstream, back.lost_before, back.lost_between) == ("b", len(BEFORE_ANY_POINT), 0)
    assert back.lost_before_seq == BEFORE_ANY_POINT and back.lost_a == back.lost_b == len(BEFORE_ANY_POINT)


# --- kamailio with topoh: Call-IDs rewritten -----------------------------------------------------

def test_topoh_pairs_by_users_time_and_sdp():
    d = diffed("diff_topoh")
    assert (d.matched, d.paired_by) == (3, {"users+time+sdp": 3})
    assert [(p.number_a, p.number_b, p.to_user) for p in d.calls] == [(1, 1, "alice"), (2, 2, "busy"), (3, 3, "alice")]
    for p in d.calls:
        assert p.call_id_a != p.call_id_b and p.call_id_b.startswith("!!:")  # topoh's mask
        (cid,) = [r for r in p.rewrites if r.field == "Call-ID"]
        assert (cid.a, cid.b) == (p.call_id_a, p.call_id_b)
        assert "INVITE" in next(r for r in p.rewrites if r.field == "Contact").messages
    # calls 1 and 3 have the same users and SDP: only their times tell them apart
    assert abs(d.calls[2].start_a - d.calls[0].start_a) > 3
    check_against_tshark("diff_topoh")


def test_pairing_by_time_survives_a_missing_call():
    a, b = read(str(FIXTURES / "diff_topoh_a.pcap")), read(str(FIXTURES / "diff_topoh_b.pcap"))
    calls_a = [c for c in a.report.calls if c.kind == "call"]
    calls_b = [c for c in b.report.calls if c.kind == "call" and c.number != 1]  # b lost call 1
    pairs = match_calls(calls_a, calls_b, 10.0)
    assert sorted((x.number, y.number) for x, y, _, _ in pairs) == [(2, 2), (3, 3)]  # a's call 1: a only
    assert match_calls(calls_a, calls_b, 1.0)[0][2] == "users+time+sdp"
    assert match_calls(calls_a[:1], calls_b[1:], 1.0) == []  # 3.2 s apart: beyond --max-skew 1


# --- media anchored on fixtures/relay.py ---------------------------------------------------------

def test_relay_loss_began_between_the_points():
    log = json.loads((FIXTURES / "diff_relay.relay.json").read_text())["summary"]
    (p,) = diffed("diff_relay").calls
    out = stream(p, "caller->callee")
    # the relay dropped these between a and b; nothing was missing at a
    assert (out.upstream, out.lost_before, out.lost_between_seq) == ("a", 0, log["dropped_seq"])
    assert out.packets_a == 50 and out.packets_b == 50 - log["dropped"] + log["duplicated"]
    assert out.src_a != out.src_b and out.first_between_frame > 0  # another leg on each side
    back = stream(p, "callee->caller")
    assert back.upstream == "b" and back.lost_before_seq == BEFORE_ANY_POINT
    # what the relay did not return to the caller (it drops what comes before the caller latched)
    assert back.lost_between == back.packets_b - log["returned_b_to_a"]
    check_against_tshark("diff_relay")


def test_relay_sdp_rewrites():
    (p,) = diffed("diff_relay").calls
    got = {(r.field, tuple(r.messages)): (r.a, r.b, r.note) for r in p.rewrites}
    assert got[("c=", ("INVITE",))] == ("10.18.1.2", "10.18.2.1", "")
    assert got[("m= port", ("INVITE",))] == ("6000", "40002", "")
    assert got[("codecs", ("INVITE",))] == ("PCMU PCMA telephone-event", "PCMU telephone-event", "removed: PCMA")
    assert got[("c=", ("200 OK",))] == ("10.18.1.1", "10.18.2.2", "")  # the answer, anchored the other way


# --- one side only, unreadable input --------------------------------------------------------------

def test_calls_on_one_side_only():
    d = compare(read(str(FIXTURES / "call_ok.pcap")), read(str(FIXTURES / "busy_486.pcap")))
    assert (d.matched, d.only_a, d.only_b) == (0, 1, 1)
    assert [(p.matched_by, p.number_a, p.number_b) for p in d.calls] == [("", 1, None), ("", None, 1)]
    assert all("seen on" in p.match_note for p in d.calls)


# --- rules, alone ----------------------------------------------------------------------------------

def step(frame, label, method, status=None, cseq=1, retrans=False, t=None, side="caller"):
    return LadderStep(frame, t if t is not None else frame / 100, "a:1", "b:1", "UDP", label, method, status, cseq,
                      retransmission=retrans, side=side)


def test_retransmissions_and_renumbered_cseq():
    a = [step(1, "INVITE", "INVITE"), step(2, "INVITE", "INVITE", retrans=True),
         step(3, "200 OK", "INVITE", 200, side="callee"), step(4, "ACK", "ACK"), step(5, "BYE", "BYE", cseq=2)]
    b = [step(11, "INVITE", "INVITE", cseq=101, t=0.015), step(12, "200 OK", "INVITE", 200, cseq=101, t=0.025,
                                                                 side="callee"),
         step(13, "ACK", "ACK", cseq=101, t=0.045), step(14, "BYE", "BYE", cseq=102, t=0.055)]
    pairs = match_messages(a, b)
    assert [(m.label, m.frame_a, m.frame_b, m.retransmission) for m in pairs] == [
        ("INVITE", 1, 11, False), ("INVITE", 2, None, True), ("200 OK", 3, 12, False), ("ACK", 4, 13, False),
        ("BYE", 5, 14, False)]
    assert pairs[0].delay_ms == pytest.approx(5.0) and pairs[2].direction == "b->a"


def test_numbers_codecs_and_lists():
    assert same_number("+4930123456", "030123456") and same_number("alice", "alice")
    assert not same_number("+4930123456", "+4930123457") and not same_number("123", "0123")
    assert codec_note(["PCMU", "PCMA", "telephone-event"], ["PCMA", "PCMU"]) == "removed: telephone-event; reordered"
    assert codec_note(["PCMU"], ["PCMU", "G729"]) == "added: G729"
    assert _list_note(["x"], ["p", "x"]) == "1 added on top" and _list_note(["p", "x"], ["x"]) == "1 removed from top"
    assert _list_note(["x"], ["y"]) == "rewritten" and _list_note([], ["r1", "r2"]) == "2 added"


def test_call_objects_need_only_their_fields():
    # match_calls reads start, users and SDP offers: two calls with no SDP pair by users and time
    x = Call(call_id="a1", kind="call", start=100.0, from_user="+4930111", to_user="+4940222")
    y = Call(call_id="b9", kind="call", start=100.2, from_user="004930111", to_user="+4940222")
    assert match_calls([x], [y], 10.0)[0][2:] == ("users+time", "Call-ID rewritten; From +4930111 and To +4940222 "
                                                                "on both, INVITE +200.0 ms on b")


# --- regenerated from real peers --------------------------------------------------------------------

@pytest.mark.interop
def test_script_makes_the_two_point_cases(tmp_path):
    """make_pcaps.sh diff_topoh diff_relay: three namespaces, kamailio (topoh, SDP rewriting) and the
    relay between two veth interfaces, tcpdump on both (needs root)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("make_pcaps.sh needs root for its network namespaces")
    for tool in ("sipp", "tcpdump", "ip", "kamailio", "tshark"):
        require_binary(tool)
    subprocess.run([str(REPO / "fixtures" / "make_pcaps.sh"), "diff_topoh", "diff_relay"], check=True,
                   capture_output=True, timeout=180, env=dict(os.environ, SIPTOOL_FX_OUT=str(tmp_path)))
    d = diffed("diff_topoh", str(tmp_path))
    assert d.paired_by == {"users+time+sdp": 3} and all(p.call_id_a != p.call_id_b for p in d.calls)
    log = json.loads((tmp_path / "diff_relay.relay.json").read_text())["summary"]
    (p,) = diffed("diff_relay", str(tmp_path)).calls
    assert stream(p, "caller->callee").lost_between_seq == log["dropped_seq"]
    assert stream(p, "callee->caller").lost_before_seq == BEFORE_ANY_POINT
    check_against_tshark("diff_relay", tmp_path)


def test_sdp_fields_compared():
    from siptool.analysis.diff_facts import MessageFacts, SdpFacts, differences

    a = MessageFacts(via=["UDP 10.0.0.1:5060"], sdp=SdpFacts("10.0.0.1", 4000, "RTP/SAVP", ["PCMU", "PCMA"], 20,
                                                             "sendrecv", ["AES_CM_128_HMAC_SHA1_80"]))
    b = MessageFacts(via=["UDP 10.0.0.1:5060"], sdp=SdpFacts("10.0.0.1", 4000, "RTP/AVP", ["PCMA", "PCMU"], 30,
                                                             "sendonly", []))
    got = {name: (x, y, note) for name, x, y, note in differences(a, b)}
    assert got == {"proto": ("RTP/SAVP", "RTP/AVP", ""), "ptime": ("20", "30", ""),
                   "direction": ("sendrecv", "sendonly", ""), "codecs": ("PCMU PCMA", "PCMA PCMU", "reordered"),
                   "crypto": ("AES_CM_128_HMAC_SHA1_80", "none", "SRTP keys dropped")}
    assert differences(a, MessageFacts(via=a.via)) == [("SDP", "yes", "none", "body removed")]
