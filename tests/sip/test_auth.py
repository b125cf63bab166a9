"""Digest authentication against RFC 7616 3.9.1 and the server-side verifier."""

from __future__ import annotations

import pytest

from siptool.sip.auth import (Authenticator, Challenge, Credentials, parse_authorization, pick_challenge,
                                response_value)

RFC = dict(user="Mufasa", realm="http-auth@example.org", password="Circle of Life", method="GET",
           uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc="00000001",
           cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop="auth")


def test_rfc7616_example_md5_and_sha256():
    assert response_value("MD5", **RFC) == "8ca523f5e9506fed4657c9700eebdbec"
    assert response_value("SHA-256", **RFC) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_authorization_header_matches_rfc_example():
    ch = Challenge.parse('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
                         'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
                         'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    value = Credentials("Mufasa", "Circle of Life").authorization(ch, "GET", "/dir/index.html",
                                                                  cnonce=RFC["cnonce"])
    p = parse_authorization(value)
    assert p["response"] == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    assert p["nc"] == "00000001" and p["qop"] == "auth" and p["opaque"].startswith("FQhe")


def test_nc_increments_per_nonce_and_password_hidden():
    c = Credentials("alice", "secret-pw")
    ch = Challenge(realm="r", nonce="n1", qop=["auth"])
    ncs = [parse_authorization(c.authorization(ch, "INVITE", "sip:x"))["nc"] for _ in range(3)]
    assert ncs == ["00000001", "00000002", "00000003"]
    assert "secret-pw" not in repr(c) and "secret-pw" not in c.authorization(ch, "INVITE", "sip:x")


def test_no_qop_uses_rfc2617_form():
    c = Credentials("u", "p")
    p = parse_authorization(c.authorization(Challenge(realm="r", nonce="n"), "INVITE", "sip:a@b"))
    assert "qop" not in p and p["response"] == response_value("MD5", "u", "r", "p", "INVITE", "sip:a@b", "n")


def test_pick_strongest_and_stale():
    values = ['Digest realm="r", nonce="a", algorithm=MD5, qop="auth"',
              'Digest realm="r", nonce="b", algorithm=SHA-256, qop="auth", stale=TRUE',
              'Basic realm="r"']
    ch = pick_challenge(values, proxy=True)
    assert ch.algorithm == "SHA-256" and ch.nonce == "b" and ch.stale and ch.proxy


def test_authenticator_round_trip():
    auth = Authenticator("siptool", {"alice": "pw"})
    for value in auth.challenges():
        ch = Challenge.parse(value)
        good = Credentials("alice", "pw").authorization(ch, "INVITE", "sip:1@h")
        bad = Credentials("alice", "nope").authorization(ch, "INVITE", "sip:1@h")
        assert auth.check("INVITE", good) == "ok"
        assert auth.check("INVITE", bad) == "fail"
        assert auth.check("BYE", good) == "fail"  # method is part of HA2
    forged = Challenge(realm="siptool", nonce="123.deadbeef", qop=["auth"])
    assert auth.check("INVITE", Credentials("alice", "pw").authorization(forged, "INVITE", "sip:1@h")) == "fail"
    auth.nonce_ttl = -1
    ch = Challenge.parse(auth.challenges()[0])
    assert auth.check("INVITE", Credentials("alice", "pw").authorization(ch, "INVITE", "sip:1@h")) == "stale"


def test_digest_answer_loop_is_one_sans_io_object():
    """INVITE and REGISTER answer challenges through one DigestAnswer (issue 15)."""
    from siptool.sip import build
    from siptool.sip.auth import Authenticator, Credentials, DigestAnswer, DigestRefused
    from siptool.sip.message import parse

    server = Authenticator("siptool", {"alice": "pw"})
    req = parse(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
                b"From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n")

    def challenge(status=401, stale=False, nonce=None):
        name = "www-authenticate" if status == 401 else "proxy-authenticate"
        values = server.challenges(stale=stale) if nonce is None else \
            [f'Digest realm="siptool", nonce="{nonce}", qop="auth", algorithm=MD5' + (", stale=true" if stale else "")]
        return build.response(req, status, headers=[(name, c) for c in values])

    loop = DigestAnswer(Credentials("alice", "pw"), "REGISTER", "sip:127.0.0.1")
    name, value = loop.answer(challenge())
    assert name == "authorization" and server.check("REGISTER", value) == "ok" and loop.challenged == "401"
    assert loop.answer(challenge(nonce="n2", stale=True))[0] == "authorization"  # stale: answer again (RFC 7616 3.3)
    for again in (challenge(nonce="n3"), challenge(nonce="n2", stale=True)):  # a fresh nonce, or one tried
        with pytest.raises(DigestRefused) as refused:
            loop.answer(again)  # challenged again after our answer: the credentials are wrong
        assert refused.value.kind == "rejected"
    assert DigestAnswer(Credentials("alice", "pw"), "INVITE", "sip:x").answer(challenge(407))[0] == "proxy-authorization"
    with pytest.raises(DigestRefused) as refused:
        DigestAnswer(Credentials("a", "b"), "INVITE", "sip:x").answer(
            build.response(req, 401, headers=[("www-authenticate", 'Basic realm="x"')]))
    assert refused.value.kind == "unsupported"
