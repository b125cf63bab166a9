"""RFC 3581: a response's received/rport tells the agent its public address; its Contact follows."""

from __future__ import annotations

import asyncio

from siptool.sip import build
from siptool.agent.ua import UserAgent
from siptool.sip.message import parse

RESPONSE = ("SIP/2.0 401 Unauthorized\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKx;rport={rport};received=198.51.100.20\r\n"
            "From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>;tag=2\r\nCall-ID: c1\r\n"
            "CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


def test_public_address_from_top_via():
    resp = parse(RESPONSE.format(port=5060, rport=40123).encode())
    assert build.public_address(resp) == ("198.51.100.20", 40123)
    plain = parse(RESPONSE.replace(";rport={rport};received=198.51.100.20", "").format(port=5060).encode())
    assert build.public_address(plain) is None


def test_a_response_outside_our_transactions_teaches_nothing():
    """Learning from responses to our own requests: tests/agent/test_hostile_input.py."""
    async def run():
        async with UserAgent("udp", "127.0.0.1", 0) as ua:
            host, port = ua.local
            before = ua.contact("alice")
            ua._received(RESPONSE.format(port=port, rport=port).replace("198.51.100.20", host).encode(),
                         ("127.0.0.1", 5060))
            same = ua.contact("alice")  # received/rport equal to the local address: no NAT
            ua._received(RESPONSE.format(port=port, rport=40123).encode(), ("127.0.0.1", 5060))
            return before, same, ua.contact("alice"), ua.via(), (host, port)

    before, same, after, via, (host, port) = asyncio.run(run())
    assert before == same == after == f"<sip:alice@{host}:{port}>"  # issue 14: a stray 200 rewrote it
    assert f"{host}:{port}" in via and via.endswith(";rport")  # Via keeps the local sent-by (RFC 3581 4)
