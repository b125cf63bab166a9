"""Call flows between the caller's session and the echo agent's, in memory with a fake clock
(tests/agent/memory.py): every flow of RFC 3261 the agent takes part in, each in milliseconds and
without sockets, with the exact messages and times RFC 3261 prescribes (T1 = 0.5 s, T2 = 4 s,
link delay 10 ms)."""

from __future__ import annotations

import pytest

from agent.memory import Network
from siptool import sdp as sdplib
from siptool.agent.echo_core import EchoCore, EchoPolicy
from siptool.agent.events import Ended, Note, Received
from siptool.agent.options import CallOptions
from siptool.agent.session import State, UacSession, UasSession
from siptool.sip import build
from siptool.sip.auth import Authenticator

CALLER, ECHO = ("10.0.0.1", 5060), ("10.0.0.2", 5060)


def setup(policy: EchoPolicy | None = None, fault=None, **options):
    """A network with the caller and the echo agent; the caller's session, not started."""
    net = Network(fault=fault)
    caller, echo = net.endpoint(*CALLER), net.endpoint(*ECHO)
    core = EchoCore(echo, policy or EchoPolicy(), open_media=lambda session: 40002)
    o = CallOptions(uri="sip:echo@10.0.0.2", **{"duration": 3.0, **options})
    call = UacSession(caller, o, ECHO, ("10.0.0.1", 40000))
    return net, call, core


def place(policy=None, fault=None, until=None, **options):
    net, call, core = setup(policy, fault, **options)
    call.start(net.now)
    net.run(until=until or (lambda: call.ended and not net.nodes[ECHO].dialogs))
    return net, call


def steps(call) -> list[str]:
    """The caller's log as the call prints it (report/agent_view.event_text)."""
    from siptool.report.agent_view import event_text
    return [event_text(e) for e in call.log]


def echo_calls(net) -> list[UasSession]:
    return [o for ep, o, e in net.events if ep is net.nodes.get(ECHO, ep) and isinstance(o, UasSession)
            and isinstance(e, Ended)]


def sent_by(net, who, what: str) -> list[float]:
    """Times (s since the first packet) at which `who` sent a message labelled `what`."""
    return [t for t, label in net.labels(who) if label.split(" [")[0] == what]


def test_answer_and_hang_up():
    net, call = place()
    assert call.state is State.ENDED and call.status == 200 and call.codec == "PCMU" and call.ended_by == "local"
    assert [label for _, label in net.labels()] == [
        "INVITE", "100 Trying (INVITE)", "180 Ringing (INVITE)", "200 OK (INVITE)", "ACK", "BYE", "200 OK (BYE)"]
    assert steps(call) == ["-> INVITE", "<- 100 Trying", "<- 180 Ringing", "<- 200 OK", "-> ACK",
                           "media PCMU to 10.0.0.2:40002", "-> BYE", "<- 200 OK (BYE)"]
    assert sent_by(net, CALLER, "BYE") == [3.27]  # duration + 0.25 s after the answer (came at 0.02)
    (uas,) = echo_calls(net)
    assert (uas.outcome, uas.ended_by, uas.codec) == ("ended", "remote", ("PCMU", 0))
    answer = sdplib.audio_in_force(sdplib.parse(net.wire[3].msg.body))
    assert (answer.connection, answer.port, answer.direction) == ("10.0.0.2", 40002, "sendrecv")


def test_busy_486_is_acked_by_the_transaction():
    net, call = place(EchoPolicy(reject=486))
    assert call.status == 486 and call.ended and call.dialog is None and not call.error
    assert [label for _, label in net.labels()] == ["INVITE", "100 Trying (INVITE)", "486 Busy Here (INVITE)", "ACK"]
    invite, ack = net.wire[0].msg, net.wire[3].msg
    assert ack.branch == invite.branch and ack.cseq == (1, "ACK")  # 17.1.1.3: the transaction's own ACK


def test_cancel_while_ringing():
    net, call = place(EchoPolicy(ring=5.0), cancel_after=1.0)
    assert call.status == 487 and call.cancel_status == 200 and call.ended_by is None
    assert [label for _, label in net.labels()] == [
        "INVITE", "100 Trying (INVITE)", "180 Ringing (INVITE)", "CANCEL", "200 OK (CANCEL)",
        "487 Request Terminated (INVITE)", "ACK"]
    cancel = net.wire[3].msg
    assert cancel.branch == net.wire[0].msg.branch and cancel.cseq == (1, "CANCEL")  # 9.1
    assert sent_by(net, CALLER, "CANCEL") == [1.0]
    (uas,) = echo_calls(net)
    assert (uas.outcome, uas.ended_by) == ("cancelled", "remote")


def test_no_cancel_before_a_provisional_response():
    """RFC 3261 9.1: no CANCEL until a provisional came. The echo's 100 and 180 are lost; the 200 comes
    after the CANCEL was due: it is ACKed and the call hung up at once."""
    drop = lambda p: "drop" if p.src == ECHO and p.msg.status in (100, 180) else None  # noqa: E731
    net, call = place(EchoPolicy(ring=2.0), drop, cancel_after=0.5)
    assert sent_by(net, CALLER, "CANCEL") == []
    assert [label for _, label in net.labels(dropped=False)] == [
        "INVITE", "INVITE", "INVITE", "200 OK (INVITE)", "ACK", "BYE", "200 OK (BYE)"]
    assert call.status == 200 and call.ended_by == "local" and call.codec is None  # no media started


def test_the_200_crossing_the_cancel():
    """The echo answers at 1.01 s, the CANCEL leaves at 1.005 s: each crosses the other on the wire.
    The CANCEL gets 200 and changes nothing (9.2); the caller ACKs the 200 and hangs up at once."""
    net, call = place(EchoPolicy(ring=1.0), cancel_after=1.005)
    assert [label for _, label in net.labels()] == [
        "INVITE", "100 Trying (INVITE)", "180 Ringing (INVITE)", "CANCEL", "200 OK (INVITE)", "200 OK (CANCEL)",
        "ACK", "BYE", "200 OK (BYE)"]
    assert call.status == 200 and call.cancel_status == 200 and call.ended_by == "local"
    assert steps(call)[-2:] == ["<- 200 OK (CANCEL)", "<- 200 OK (BYE)"]  # the BYE's answer ends the call
    (uas,) = echo_calls(net)
    assert (uas.outcome, uas.ended_by) == ("ended", "remote")


def test_the_487_before_the_200():
    """The CANCEL arrives first: 487, and the answer due at the same moment never goes."""
    net, call = place(EchoPolicy(ring=1.0), cancel_after=0.99)
    assert "200 OK (INVITE)" not in [label for _, label in net.labels()]
    assert call.status == 487 and call.cancel_status == 200


@pytest.mark.parametrize("password, ok", [("pw", True), ("wrong", False)])
def test_digest_401(password, ok):
    net, call = place(EchoPolicy(auth=Authenticator("siptool", {"alice": "pw"})), user="alice", password=password)
    labels = [label for _, label in net.labels()]
    assert labels[:4] == ["INVITE", "100 Trying (INVITE)", "401 Unauthorized (INVITE)", "ACK"]
    second = next(p.msg for p in net.wire[4:] if p.label == "INVITE")
    assert second.cseq == (2, "INVITE") and second.get("authorization").startswith("Digest username=\"alice\"")
    assert second.call_id == net.wire[0].msg.call_id and second.from_tag == net.wire[0].msg.from_tag
    assert second.branch != net.wire[0].msg.branch  # a new transaction (8.1.3.5)
    if ok:
        assert call.status == 200 and call.auth == "401" and not call.error
    else:
        assert call.status == 401 and labels[-2:] == ["401 Unauthorized (INVITE)", "ACK"]
        assert call.error == ("authentication failed: 401 Unauthorized again after sending credentials for user "
                              "'alice' (wrong user or password?)")


def proxy_challenge(core: EchoCore, auth: Authenticator):
    """A proxy in front of the echo agent: INVITEs without the right Proxy-Authorization get 407."""
    def on_request(txn, msg, addr, now):
        if msg.method == "INVITE" and auth.check("INVITE", msg.get("proxy-authorization")) != "ok":
            hdrs = [("proxy-authenticate", c) for c in auth.challenges()]
            core.ep.respond(txn, build.response(msg, 407, headers=hdrs), now)
        else:
            core.on_request(txn, msg, addr, now)
    return on_request


@pytest.mark.parametrize("password, ok", [("pw", True), ("wrong", False)])
def test_digest_407(password, ok):
    net, call, core = setup(user="alice", password=password)
    core.ep.on_request = proxy_challenge(core, Authenticator("proxy", {"alice": "pw"}))
    call.start(net.now)
    net.run(until=lambda: call.ended)
    second = [p.msg for p in net.wire if p.label == "INVITE"][1]
    assert second.get("proxy-authorization").startswith('Digest username="alice", realm="proxy"')
    if ok:
        assert call.status == 200 and call.auth == "407" and "<- 407 Proxy Authentication Required" in steps(call)
    else:
        assert call.status == 407 and call.error.startswith("authentication failed: 407")


def test_hold_and_resume_by_reinvite():
    net, call = place(duration=3.0, hold=True)
    assert call.hold_status == call.resume_status == 200 and call.ended_by == "local"
    invites = [p for p in net.wire if p.label == "INVITE"]
    oks = [p for p in net.wire if p.label == "200 OK (INVITE)"]
    assert len(invites) == len(oks) == 3
    offers = [sdplib.audio_in_force(sdplib.parse(p.msg.body)) for p in invites]
    answers = [sdplib.audio_in_force(sdplib.parse(p.msg.body)) for p in oks]
    assert [o.direction for o in offers] == ["sendrecv", "sendonly", "sendrecv"]
    assert [a.direction for a in answers] == ["sendrecv", "recvonly", "sendrecv"]  # RFC 3264 8.4
    assert [int(sdplib.parse(p.msg.body).origin.split()[2]) for p in invites] == [1, 2, 3]  # o= version goes up
    assert [int(sdplib.parse(p.msg.body).origin.split()[2]) for p in oks] == [1, 2, 3]
    assert [p.msg.cseq[0] for p in invites] == [1, 2, 3] and all(p.msg.to_tag for p in invites[1:])
    assert [t for t, label in net.labels(CALLER) if label == "INVITE"] == [0.0, 1.02, 2.04]  # at 1/3, then 1/3 later
    assert len(sent_by(net, CALLER, "ACK")) == 3
    assert "-> INVITE (sendonly)" in steps(call) and "-> INVITE (sendrecv)" in steps(call)


def test_bye_from_the_far_end():
    net, call = place(EchoPolicy(hangup_after=1.0), duration=5.0)
    assert call.ended_by == "remote" and sent_by(net, CALLER, "BYE") == []
    assert sent_by(net, ECHO, "BYE") == [1.01]  # 1 s after its 200 OK
    assert steps(call)[-2:] == ["<- BYE", "-> 200 OK"]
    (uas,) = echo_calls(net)
    assert (uas.outcome, uas.ended_by) == ("ended", "local")


def test_timer_b_retransmits_the_invite_then_gives_up():
    net, call, _ = setup()
    net.unplug(net.nodes[ECHO])
    call.start(net.now)
    net.run(until=lambda: call.ended)
    assert sent_by(net, CALLER, "INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # timer A doubles (17.1.1.2)
    assert net.now - net.wire[0].time == 32.0  # timer B = 64*T1
    assert call.status is None and "timer B" in call.error and steps(call)[-1] == "timeout (timer B)"


def test_timer_f_when_the_bye_is_never_answered():
    net, call, _ = setup(duration=1.0)
    call.start(net.now)
    net.run(until=lambda: call.state is State.CONFIRMED)
    net.unplug(net.nodes[ECHO])
    net.run(until=lambda: call.ended)
    byes = sent_by(net, CALLER, "BYE")
    assert [round(b - byes[0], 3) for b in byes] == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5,
                                                     31.5]  # timer E doubles, capped at T2
    assert round(net.now - net.wire[0].time - byes[0], 3) == 32.0  # timer F = 64*T1
    assert call.problems == ["BYE got no answer: no response to BYE from 10.0.0.2:5060 within 32 s (timer F, "
                             "RFC 3261 17.1): host unreachable or not a SIP server on that port/transport (UDP)"]
    assert steps(call)[-1] == "BYE got no answer"


def test_timer_h_when_the_ack_never_comes():
    """Every ACK is lost: the echo keeps sending its 200 (13.3.1.4), the caller ACKs each again
    (13.2.2.4), and at timer H the echo gives up and hangs up."""
    drop = lambda p: "drop" if p.label == "ACK" else None  # noqa: E731
    net, call = place(fault=drop, duration=60.0)
    oks = sent_by(net, ECHO, "200 OK (INVITE)")
    assert oks == [0.01, 0.51, 1.51, 3.51, 7.51, 11.51, 15.51, 19.51, 23.51, 27.51, 31.51]  # G, capped at T2
    assert len(sent_by(net, CALLER, "ACK")) == len(oks)  # one ACK for each 200
    assert sent_by(net, ECHO, "BYE") == [32.01]  # timer H = 64*T1
    (uas,) = echo_calls(net)
    assert (uas.outcome, uas.ended_by) == ("ended", "local (no ACK)")
    assert call.ended_by == "remote"


def test_lost_invite_200_and_bye_are_each_retransmitted():
    """Each lost once: the INVITE goes again at T1 (timer A), the 200 OK at T1 after it (the UAS core,
    13.3.1.4), the BYE at T1 (timer E); the call goes on as if nothing was lost."""
    lost: set[str] = set()

    def once(p):
        if p.label in ("INVITE", "200 OK (INVITE)", "BYE") and p.label not in lost:
            lost.add(p.label)
            return "drop"
        return None

    net, call = place(fault=once)
    assert [label for _, label in net.labels()] == [
        "INVITE [lost]", "INVITE", "100 Trying (INVITE)", "180 Ringing (INVITE)", "200 OK (INVITE) [lost]",
        "200 OK (INVITE)", "ACK", "BYE [lost]", "BYE", "200 OK (BYE)"]
    assert sent_by(net, CALLER, "INVITE") == [0.0, 0.5]
    assert sent_by(net, ECHO, "200 OK (INVITE)") == [0.51, 1.01]
    byes = sent_by(net, CALLER, "BYE")
    assert round(byes[1] - byes[0], 3) == 0.5
    assert call.status == 200 and call.ended_by == "local" and not call.problems


def test_duplicated_packets_are_absorbed():
    """Every packet arrives twice: transactions absorb the copies (a request's copy gets the last
    response again, a 2xx's copy the ACK again); one call, answered and hung up once."""
    net, call = place(fault=lambda p: "dup")
    assert call.status == 200 and call.ended_by == "local"
    assert len(sent_by(net, CALLER, "INVITE")) == 1 and len(sent_by(net, CALLER, "BYE")) == 1
    assert len(echo_calls(net)) == 1
    answered = [e for _, o, e in net.events if o is call and isinstance(e, Received) and e.status == 200
                and e.method == "INVITE"]
    assert len(answered) == 1
    assert [s for s in steps(call) if s.startswith("->")] == ["-> INVITE", "-> ACK", "-> BYE"]
    # each 200 that arrives (two sent, each twice) is ACKed (13.2.2.4); the echo answered its INVITE's copy
    # with the last response again (17.2.1)
    assert len(sent_by(net, ECHO, "200 OK (INVITE)")) == 2
    assert len(sent_by(net, CALLER, "ACK")) == 4
    assert not [e for e in call.log if isinstance(e, Note)]


def test_register_digest_refresh_and_unregister():
    """A registration (sans-I/O, agent/registration.py) against the echo agent's registrar: challenged
    once, granted 60 s, refreshed at half of it (RFC 3261 10.2.4: one Call-ID, CSeq going up), and
    removed with Expires: 0 (10.2.2)."""
    from siptool.agent.registration import RegisterSession

    net = Network()
    client, echo = net.endpoint(*CALLER), net.endpoint(*ECHO)
    EchoCore(echo, EchoPolicy(auth=Authenticator("siptool", {"alice": "pw"})), open_media=lambda s: 0)
    reg = RegisterSession(client, "sip:10.0.0.2", "sip:alice@10.0.0.2", "alice", "pw", ECHO, expires=60)
    reg.register(net.now, 60)
    net.run(until=lambda: len(reg.history) == 3)  # the registration and two refreshes
    first = reg.history[0]
    assert (first.status, first.challenged, first.expires) == (200, "401", 60) and reg.refreshes == 2
    assert first.bindings == ["<sip:alice@10.0.0.1:5060>;expires=60"]
    assert sent_by(net, CALLER, "REGISTER") == [0.0, 0.02, 30.04, 60.06]  # each refresh answered at once
    registers = [p.msg for p in net.wire if p.label == "REGISTER"]
    assert {m.call_id for m in registers} == {reg.call_id} and [m.cseq[0] for m in registers] == [1, 2, 3, 4]
    assert reg.stop(net.now)
    net.run(until=lambda: len(reg.history) == 4)
    last = reg.history[-1]
    assert last.status == 200 and last.bindings == [] and last.expires is None
    assert [p.msg for p in net.wire if p.label == "REGISTER"][-1].get("expires") == "0"
    net.run()
    assert len(reg.history) == 4  # no refresh after the unregistration
