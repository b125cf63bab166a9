"""Failover between located servers (RFC 3263 4.3), in memory with a fake clock: a server that is
gone (timer B, or the per-server limit), one that answers 503 with Retry-After (RFC 3261 21.5.4),
and a dead trunk. Each INVITE after a failure is the same request with a new branch."""

from __future__ import annotations

from agent.memory import Network
from siptool.agent.echo_core import EchoCore, EchoPolicy
from siptool.agent.failover import Backoff, Failover
from siptool.agent.options import CallOptions
from siptool.agent.session import UacSession
from siptool.sip.locate import Server

CALLER = ("10.0.0.1", 5060)
A, B, C = ("10.0.0.2", 5060), ("10.0.0.3", 5060), ("10.0.0.4", 5060)


def servers(*addrs):
    return [Server(f"{'abc'[i]}.trunk.example", a[0], a[1], "udp", "SRV", 10, 10) for i, a in enumerate(addrs)]


def lab(policies: dict, **options):
    """The caller and an echo agent at each address that has a policy (None: nothing there)."""
    net = Network()
    caller = net.endpoint(*CALLER)
    for addr, policy in policies.items():
        if policy is not None:
            EchoCore(net.endpoint(*addr), policy, open_media=lambda session: 40002)
    o = CallOptions(uri="sip:echo@trunk.example", **{"duration": 1.0, **options})
    return net, caller, o


def place(net, caller, o, order, backoff=None):
    call = UacSession(caller, o, order[0], ("10.0.0.1", 40000), Failover(servers(*order), backoff))
    call.start(net.now)
    net.run(until=lambda: call.ended)
    return call


def invites(net):
    return [p for p in net.wire if p.src == CALLER and p.label == "INVITE"]


def test_a_server_that_is_gone_times_out_and_the_next_takes_the_call():
    net, caller, o = lab({A: None, B: EchoPolicy()})
    call = place(net, caller, o, [A, B])
    assert call.status == 200 and call.target == B and not call.error
    tries = call.failover.tries
    assert [(t.address, t.outcome) for t in tries] == [("10.0.0.2", "timeout"), ("10.0.0.3", "served")]
    assert tries[0].ms == 32000.0 and "timer B" not in tries[0].detail  # 64*T1, said in words
    first, second = invites(net)[0].msg, invites(net)[-1].msg
    assert (first.call_id, first.cseq) == (second.call_id, second.cseq) and first.branch != second.branch
    assert {p.dst for p in invites(net)} == {A, B}


def test_the_per_server_limit_fails_over_sooner_than_timer_b():
    net, caller, o = lab({A: None, B: EchoPolicy()}, target_timeout=2.0)
    call = place(net, caller, o, [A, B])
    assert call.status == 200
    assert [(t.outcome, t.ms) for t in call.failover.tries][0] == ("timeout", 2000.0)
    assert [p.time - net.wire[0].time for p in invites(net) if p.dst == B] == [2.0]


def test_503_fails_over_and_its_retry_after_holds_the_server_for_later_calls():
    net, caller, o = lab({A: EchoPolicy(reject=503, retry_after=30), B: EchoPolicy()})
    backoff = Backoff()
    call = place(net, caller, o, [A, B], backoff)
    assert call.status == 200 and call.target == B
    refused, served = call.failover.tries
    assert (refused.outcome, refused.detail) == ("503", "503 Service Unavailable (Retry-After 30 s)")
    assert served.outcome == "served" and served.detail == "180 Ringing"
    later = place(net, caller, o, [A, B], backoff)  # within the 30 s: A is not sent anything
    assert [t.outcome for t in later.failover.tries] == ["skipped", "served"]
    assert later.failover.tries[0].ms is None
    assert [p.dst for p in invites(net)].count(A) == 1
    net.now += 31  # past the Retry-After: A is asked again
    again = place(net, caller, o, [A, B], backoff)
    assert [t.outcome for t in again.failover.tries] == ["503", "served"]


def test_a_dead_trunk_says_what_each_server_did():
    net, caller, o = lab({A: EchoPolicy(reject=503), B: None}, target_timeout=1.0)
    call = place(net, caller, o, [A, B])
    assert call.status is None or call.status == 503
    assert call.error.startswith("dead trunk: none of 2 servers took the call: a.trunk.example 10.0.0.2:5060 UDP: "
                                 "503 Service Unavailable; b.trunk.example 10.0.0.3:5060 UDP: no response")
    assert [t.outcome for t in call.failover.tries] == ["503", "timeout"]


def test_a_provisional_response_settles_the_server():
    """A 180 from the first server: it serves the call, and its 503 after that ends it there."""
    net, caller, o = lab({A: EchoPolicy(ring=1.0, reject=None), B: EchoPolicy()}, duration=0.5)
    call = place(net, caller, o, [A, B])
    assert call.status == 200 and call.target == A
    assert [t.outcome for t in call.failover.tries] == ["served"] and call.failover.tries[0].detail == "180 Ringing"


def test_every_server_held_sends_nothing():
    backoff = Backoff()
    backoff.hold(A, 1e12)
    net, caller, o = lab({A: EchoPolicy()})
    call = place(net, caller, o, [A], backoff)
    assert call.ended and not invites(net) and call.error.startswith("no server to send to: a.trunk.example")

