"""The echo agent's REGISTER handling (RFC 3261 10.3) and its number that rings unanswered: the location
service in memory (agent/registrar.py), then siptool's REGISTER client and caller against EchoServer
over loopback sockets."""

from __future__ import annotations

import asyncio

import pytest

from siptool.agent import CallOptions, EchoServer, place_call
from siptool.agent.echo import RING_LIMIT, rings_unanswered
from siptool.agent.register import Registration
from siptool.agent.registrar import MAX_EXPIRES, Bindings, aor_of

TO = "<sip:alice@Example.com:5060;transport=udp>"


def test_aor_is_canonical():
    assert aor_of(TO) == "sip:alice@example.com"
    assert aor_of('"Alice" <sips:alice@h>;tag=1') == "sips:alice@h"


def test_bind_refresh_query_and_remove():
    b = Bindings()
    v = b.update(TO, ["<sip:alice@10.0.0.1:5062>;expires=120", "<sip:alice@10.0.0.2>"], "60", now=0.0)
    assert (v.status, v.granted) == (200, 120)
    assert v.bindings == (("sip:alice@10.0.0.1:5062", 120), ("sip:alice@10.0.0.2", 60))
    # no Contact: a query (10.3 step 8)
    assert b.update(TO, [], None, now=30.0).bindings == (("sip:alice@10.0.0.1:5062", 90), ("sip:alice@10.0.0.2", 30))
    # the 60 s one lapses; the request's expires parameter beats the Expires header
    assert b.update(TO, [], None, now=61.0).bindings == (("sip:alice@10.0.0.1:5062", 59),)
    # Expires: 0 removes one contact; '*' with Expires: 0 removes all
    assert b.update(TO, ["<sip:alice@10.0.0.1:5062>"], "0", now=62.0).bindings == ()
    b.update(TO, ["<sip:alice@10.0.0.3>"], None, now=63.0)
    assert b.update(TO, ["*"], "0", now=64.0).status == 200 and len(b) == 0


def test_expiry_defaults_and_is_capped():
    b = Bindings()
    assert b.update(TO, ["<sip:alice@10.0.0.1>"], None, now=0.0).granted == 3600  # RFC 3261 10.2.1.1
    assert b.update(TO, ["<sip:alice@10.0.0.1>;expires=86400"], None, now=0.0).granted == MAX_EXPIRES


@pytest.mark.parametrize("to,contacts,expires,status", [
    (TO, ["*"], "300", 400),  # a wildcard needs Expires: 0 (10.3 step 6)
    (TO, ["*", "<sip:alice@10.0.0.1>"], "0", 400),
    (TO, ["<tel:+4930123>"], None, 400),
    ("garbage", ["<sip:alice@10.0.0.1>"], None, 400),
])
def test_bad_registers_get_400(to, contacts, expires, status):
    assert Bindings().update(to, contacts, expires, now=0.0).status == status


def test_memory_is_bounded():
    b = Bindings(max_aors=5, max_contacts=3)
    for i in range(50):
        b.update(f"<sip:u{i}@h>", [f"<sip:u{i}@10.0.0.{j}>" for j in range(10)], "300", now=float(i))
    assert len(b._aors) == 5 and len(b) == 15
    assert set(b._aors) == {f"sip:u{i}@h" for i in range(45, 50)}  # the newest records stay
    assert [u for u, _ in b.current("sip:u49@h", 49.0)] == [f"sip:u49@10.0.0.{j}" for j in (7, 8, 9)]


def test_ring_number():
    assert rings_unanswered("sip:ring@127.0.0.1:5060") and rings_unanswered("sip:ring-forever@h")
    assert rings_unanswered("sip:RING@h;transport=udp")
    assert not rings_unanswered("sip:echo@h") and not rings_unanswered("sip:ringo@h")
    assert not rings_unanswered(None) and RING_LIMIT >= 30


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _register(echo_kw: dict, password: str | None, expires: int = 120, unregister: bool = True):
    async with EchoServer(("127.0.0.1", 0), **echo_kw) as echo:
        reg = Registration(f"sip:127.0.0.1:{echo.port}", "sip:alice@127.0.0.1", "alice", password, expires)
        first = await reg.start()
        held = len(echo.bindings)
        await reg.stop(unregister=unregister)
        return first, reg.history, held, len(echo.bindings)


def test_register_with_digest_then_unregister():
    first, history, held, left = run(_register({"user": "alice", "password": "pw"}, "pw"))
    assert (first.status, first.challenged, first.algorithm, first.expires) == (200, "401", "SHA-256", 120)
    assert any("expires=120" in c for c in first.bindings) and held == 1
    assert history[-1].status == 200 and left == 0  # Expires: 0 removed the binding (10.2.2)


def test_wrong_password_is_forbidden():
    first, history, held, left = run(_register({"user": "alice", "password": "pw"}, "not-pw"))
    assert (first.status, first.challenged) == (403, "401") and held == 0 and len(history) == 1


def test_no_credentials_configured_accepts_register():
    first, _, held, _ = run(_register({}, None, expires=60, unregister=False))
    assert (first.status, first.challenged, first.expires, held) == (200, None, 60, 1)


def test_call_to_ring_is_never_answered_and_cancel_gets_487():
    async def go():
        async with EchoServer(("127.0.0.1", 0)) as echo:
            return await place_call(CallOptions(uri=f"sip:ring@127.0.0.1:{echo.port}", cancel_after=1.0,
                                                duration=1.0)), echo
    res, echo = run(go())
    assert res.status == 487 and res.cancel_status == 200
    assert echo.finished[-1].state == "cancelled" and echo.finished[-1].answered is None
