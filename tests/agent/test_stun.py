"""STUN Binding client (RFC 5389): the codec against RFC 5769's vectors, the client against coturn."""

from __future__ import annotations

import asyncio
import struct

import pytest
from interop.peers import free_port

from siptool.agent import stun
from siptool.agent.media import RtpDriver
from siptool.agent.rtpsession import RtpSession
from siptool.agent.transport import UdpTransport

# RFC 5769 2.2/2.3: transaction id, and XOR-MAPPED-ADDRESS of 192.0.2.1:32853 / 2001:db8:1234:5678:11:2233:4455:6677
TID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
XOR_V4 = bytes.fromhex("0001a147e112a643")
XOR_V6 = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")


def _response(mtype: int, attrs: list[tuple[int, bytes]], tid: bytes = TID) -> bytes:
    body = b"".join(struct.pack("!HH", t, len(v)) + v + b"\0" * (-len(v) % 4) for t, v in attrs)
    return struct.pack("!HHI", mtype, len(body), stun.MAGIC_COOKIE) + tid + body


def test_binding_request_is_a_bare_header():
    msg, tid = stun.binding_request(TID)
    assert msg == bytes.fromhex("000100002112a442") + TID and tid == TID and stun.is_stun(msg)


@pytest.mark.parametrize("value, mapped", [(XOR_V4, ("192.0.2.1", 32853)),
                                           (XOR_V6, ("2001:db8:1234:5678:11:2233:4455:6677", 32853))])
def test_xor_mapped_address_of_rfc5769(value, mapped):
    software = (0x8022, b"test vector")  # padded to 12 bytes, as in the RFC's samples
    resp = stun.parse(_response(stun.BINDING_SUCCESS, [software, (stun.XOR_MAPPED_ADDRESS, value)]))
    assert resp.transaction_id == TID and resp.mapped == mapped and resp.error is None


def test_mapped_address_of_old_servers_and_error_responses():
    plain = bytes.fromhex("00011f90") + bytes([198, 51, 100, 7])  # MAPPED-ADDRESS 198.51.100.7:8080, not XORed
    assert stun.parse(_response(stun.BINDING_SUCCESS, [(stun.MAPPED_ADDRESS, plain)])).mapped == ("198.51.100.7", 8080)
    err = stun.parse(_response(stun.BINDING_ERROR, [(stun.ERROR_CODE, bytes([0, 0, 4, 20]) + b"Unknown Attribute")]))
    assert err.mapped is None and err.error == "420 Unknown Attribute"


def test_rtp_and_sip_are_not_stun():
    rtp = bytes([0x80, 0x00]) + bytes(10) + bytes(160)
    assert not stun.is_stun(rtp) and not stun.is_stun(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    with pytest.raises(stun.StunError):
        stun.parse(rtp)


def test_sip_and_rtp_sockets_ask_coturn(stun_server):
    port = free_port()
    stun_server("127.0.0.1", port)

    async def go():
        sip = await UdpTransport(lambda data, addr, now: None).open("127.0.0.1")
        rtp = await RtpDriver("127.0.0.1", RtpSession()).open()
        try:
            for _ in range(20):  # until coturn listens
                try:
                    seen_sip = await sip.stun_query(("127.0.0.1", port), rto=0.1)
                    break
                except stun.StunError:
                    await asyncio.sleep(0.2)
            seen_rtp = await rtp.stun_query(("127.0.0.1", port), rto=0.1)
            return sip.local, seen_sip, ("127.0.0.1", rtp.port), seen_rtp
        finally:
            await sip.close()
            rtp.close()

    local_sip, seen_sip, local_rtp, seen_rtp = asyncio.run(go())
    assert seen_sip == local_sip and seen_rtp == local_rtp  # no NAT on loopback: it sees us as we are


def test_no_stun_server_is_a_clear_failure():
    with pytest.raises(stun.StunError, match=r"no STUN response from 127\.0\.0\.1:\d+ within 0\.7 s"):
        async def go():
            sip = await UdpTransport(lambda data, addr, now: None).open("127.0.0.1")
            try:
                import socket
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
                    silent.bind(("127.0.0.1", 0))
                    await sip.stun_query(silent.getsockname(), rto=0.1, tries=3)
            finally:
                await sip.close()
        asyncio.run(go())
