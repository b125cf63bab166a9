"""RFC 3261 17 transaction state machines driven by a fake clock (sans-I/O)."""

from __future__ import annotations

import pytest

from siptool.sip import build
from siptool.sip.transaction import (ClientTransaction, Deliver, Send, ServerTransaction, Terminated, Timeout,
                                       Timers)
from siptool.sip.message import parse

T = Timers(t1=0.5, t2=4.0, t4=5.0)


def invite(method="INVITE"):
    return build.request(method, "sip:100@example.org", via_value="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc",
                          from_value="<sip:a@x>;tag=f1", to_value="<sip:100@example.org>", call_id="c1", cseq=1,
                          routes=["<sip:proxy.example.org;lr>"])


def run_until(txn, until, step=0.01, start=0.0):
    """Advance the fake clock, calling tick at each deadline; returns [(time, event)]."""
    out, now = [], start
    while now <= until and not txn.terminated:
        d = txn.deadline
        if d is None or d > until:
            break
        now = d
        out += [(round(now, 3), e) for e in txn.tick(now)]
    return out


def test_invite_client_timer_a_doubles_and_b_times_out():
    req = invite()
    txn = ClientTransaction(req, reliable=False, timers=T)
    assert isinstance(txn.start(0.0)[0], Send)
    evs = run_until(txn, 100)
    sends = [t for t, e in evs if isinstance(e, Send)]
    assert sends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # A: T1, 2T1, 4T1 ... (17.1.1.2)
    assert isinstance(evs[-2][1], Timeout) and evs[-2][1].timer == "B" and evs[-2][0] == 32.0
    assert isinstance(evs[-1][1], Terminated)


def test_invite_client_reliable_has_no_retransmissions():
    txn = ClientTransaction(invite(), reliable=True, timers=Timers(t1=0.1))
    txn.start(0.0)
    evs = run_until(txn, 100)
    assert [type(e) for _, e in evs] == [Timeout, Terminated]
    assert evs[0][0] == 6.4  # B = 64*T1


def test_invite_client_provisional_stops_a_then_486_acked_and_retransmission_absorbed():
    req = invite()
    txn = ClientTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    ringing = build.response(req, 180, to_tag="t9")
    assert [type(e) for e in txn.receive(ringing, 0.2)] == [Deliver]
    assert txn.state == "proceeding" and txn.deadline is None  # A and B stopped
    busy = parse(build.response(req, 486, to_tag="t9").serialise())
    evs = txn.receive(busy, 1.0)
    assert isinstance(evs[0], Send) and isinstance(evs[1], Deliver)
    ack = evs[0].msg
    assert ack.method == "ACK" and ack.uri == req.uri and ack.cseq == (1, "ACK")
    assert ack.branch == req.branch and ack.to_tag == "t9" and ack.get_all("route") == req.get_all("route")
    again = txn.receive(busy, 1.2)
    assert [type(e) for e in again] == [Send] and again[0].msg is ack  # ACK per retransmitted final
    assert txn.deadline == 1.0 + 32.0  # timer D >= 32 s on UDP
    assert [type(e) for _, e in run_until(txn, 40, start=1.2)] == [Terminated]


def test_invite_client_2xx_terminates_for_tu_ack():
    req = invite()
    txn = ClientTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    evs = txn.receive(build.response(req, 200, to_tag="t"), 0.1)
    assert [type(e) for e in evs] == [Deliver, Terminated]


def test_non_invite_client_e_capped_at_t2_then_f():
    req = invite("OPTIONS")
    txn = ClientTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    evs = run_until(txn, 100)
    sends = [t for t, e in evs if isinstance(e, Send)]
    assert sends[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]  # E doubles up to T2 = 4 s (17.1.2.2)
    assert all(b - a == 4.0 for a, b in zip(sends[3:], sends[4:]))
    assert isinstance(evs[-2][1], Timeout) and evs[-2][1].timer == "F" and evs[-2][0] == 32.0


def test_non_invite_client_proceeding_uses_t2_and_k():
    req = invite("BYE")
    txn = ClientTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    txn.receive(build.response(req, 100), 0.1)
    evs = run_until(txn, 0.6)
    assert [t for t, e in evs if isinstance(e, Send)] == [0.5]
    assert txn.deadline == 0.5 + 4.0  # in Proceeding E = T2
    txn.receive(build.response(req, 200), 1.0)
    assert txn.state == "completed" and txn.deadline == 1.0 + 5.0  # timer K = T4
    assert txn.receive(build.response(req, 200), 2.0) == []  # retransmission absorbed


def test_invite_server_non2xx_g_h_and_ack_i():
    req = invite()
    txn = ServerTransaction(req, reliable=False, timers=T)
    assert isinstance(txn.start(0.0)[0], Deliver)
    busy = build.response(req, 486, to_tag="s1")
    assert isinstance(txn.respond(busy, 0.0)[0], Send)
    evs = run_until(txn, 5.0)
    assert [t for t, e in evs if isinstance(e, Send)] == [0.5, 1.5, 3.5]  # G: T1 doubling, capped T2
    assert txn.receive(invite(), 5.0)[0].msg is busy  # retransmitted INVITE -> last response
    ack = build.request("ACK", req.uri, via_value=req.get("via"), from_value=req.get("from"),
                         to_value="<sip:100@example.org>;tag=s1", call_id="c1", cseq=1)
    assert txn.receive(ack, 5.2) == [] and txn.state == "confirmed"
    assert txn.deadline == 5.2 + 5.0  # timer I = T4
    assert [type(e) for _, e in run_until(txn, 20, start=5.2)] == [Terminated]


def test_invite_server_no_ack_timer_h():
    req = invite()
    txn = ServerTransaction(req, reliable=True, timers=T)
    txn.start(0.0)
    txn.respond(build.response(req, 503, to_tag="s"), 0.0)
    evs = run_until(txn, 100)
    assert [(t, type(e)) for t, e in evs] == [(32.0, Timeout), (32.0, Terminated)]  # no G on TCP


def test_invite_server_2xx_retransmitted_until_ack():
    req = invite()
    txn = ServerTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    ok = build.response(req, 200, to_tag="s")
    txn.respond(ok, 0.0)
    evs = run_until(txn, 8.0)
    assert [t for t, e in evs if isinstance(e, Send)] == [0.5, 1.5, 3.5, 7.5]  # 13.3.1.4
    ack = build.request("ACK", req.uri, via_value="SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKnew", from_value=req.get("from"),
                         to_value="<sip:100@example.org>;tag=s", call_id="c1", cseq=1)
    evs = txn.receive(ack, 8.0)
    assert [type(e) for e in evs] == [Deliver, Terminated]


def test_non_invite_server_j_and_retransmission():
    req = invite("OPTIONS")
    txn = ServerTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    ok = build.response(req, 200)
    txn.respond(ok, 0.1)
    assert txn.receive(req, 1.0)[0].msg is ok
    assert txn.deadline == 0.1 + 32.0  # J = 64*T1
    rel = ServerTransaction(req, reliable=True, timers=T)
    rel.start(0.0)
    assert [type(e) for e in rel.respond(ok, 0.0)] == [Send, Terminated]  # J = 0 on TCP


def test_states_move_only_as_the_table_says():
    """States are an Enum moved through one table (h11's habit): a move the table does not allow is
    our bug, raised at once; a peer's out-of-place message is only absorbed."""
    from siptool.sip.transaction import TRANSITIONS, Kind, LocalProtocolError, State

    req = invite()
    txn = ServerTransaction(req, reliable=False, timers=T)
    txn.start(0.0)
    txn.respond(build.response(req, 486, to_tag="s"), 0.0)
    assert txn.state is State.COMPLETED and State.ACCEPTED not in TRANSITIONS[Kind.INVITE_SERVER][txn.state]
    with pytest.raises(LocalProtocolError, match="INVITE server transaction: completed -> accepted"):
        txn._go(State.ACCEPTED)
    assert txn.respond(build.response(req, 200, to_tag="s"), 0.1) == []  # a second final: dropped
    client = ClientTransaction(req, reliable=False, timers=T)
    client.start(0.0)
    assert client.receive(build.response(req, 200, to_tag="t"), 0.1)[-1] == Terminated()
    assert client.receive(build.response(req, 180, to_tag="t"), 0.2) == []  # after the end: absorbed
    for kind, table in TRANSITIONS.items():  # every state a transaction reaches is in its table
        reached = {s for targets in table.values() for s in targets}
        assert reached <= set(table), kind
