"""The echo agent's shared media port: two calls on one RTP port, one of them behind a NAT (RTP from a
port its SDP did not announce). Every packet goes back to its own source; each call's count and
latched address are its own; RTCP multiplexed on the RTP port is not echoed."""

from __future__ import annotations

import asyncio
import socket
import struct

from siptool.agent import EchoServer, sdp
from siptool.sip import build
from siptool.sip.dialog import Dialog
from siptool.agent.ua import UserAgent


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


async def _invite(ua: UserAgent, target, announced_port: int):
    host = ua.local[0]
    uri = f"sip:echo@{target[0]}:{target[1]}"
    inv = build.request("INVITE", uri, via_value=ua.via(), from_value=f"<sip:t@{host}>;tag={build.new_tag()}",
                         to_value=f"<{uri}>", call_id=build.new_call_id(host), cseq=1, contact=ua.contact(),
                         body=sdp.build("127.0.0.1", announced_port, [0], dtmf_pt=None))
    resp = await ua.request(inv, target)
    assert resp.status == 200
    dialog = Dialog.uac(inv, resp)
    await ua.request(dialog.ack(1, ua.via()), target)
    return dialog, sdp.parse(resp.body).port


def test_two_calls_share_the_port_and_keep_their_own_counts():
    direct, natted, unused = _udp(), _udp(), _udp()

    async def run():
        async with EchoServer(("127.0.0.1", 0), media_port=0) as echo:
            target = ("127.0.0.1", echo.port)
            async with UserAgent("udp", "127.0.0.1", 0) as ua:
                d1, port1 = await _invite(ua, target, direct.getsockname()[1])
                d2, port2 = await _invite(ua, target, unused.getsockname()[1])  # sends from `natted`
                assert port1 == port2 == echo.shared.port
                dest = ("127.0.0.1", port1)
                for k in range(30):
                    for sock, ssrc, count in ((direct, 1, 30), (natted, 2, 20)):
                        if k < count:
                            sock.sendto(struct.pack("!BBHII", 0x80, 0, k, 160 * k, ssrc) + bytes(160), dest)
                    await asyncio.sleep(0.002)
                # RTCP (receiver report) on the RTP port: handed to the call, not echoed
                direct.sendto(struct.pack("!BBHI", 0x80, 201, 1, 1), dest)
                got = {}
                for sock, n in ((direct, 30), (natted, 20)):
                    got[sock] = [struct.unpack_from("!I", sock.recv(2048), 8)[0] for _ in range(n)]
                direct.settimeout(0.3)
                try:
                    extra = direct.recv(2048)
                except socket.timeout:
                    extra = None
                await asyncio.sleep(0.4)  # a tally
                calls = sorted(echo.calls.values(), key=lambda c: c.started)
                media = [(c.media.echoed, c.media.remote, c.media.rtcp_rx) for c in calls]
                for d in (d1, d2):
                    await ua.request(d.request("BYE", ua.via()), target)
                return got, extra, media, list(echo.finished)

    got, extra, media, finished = asyncio.run(asyncio.wait_for(run(), 30))
    assert got[direct] == [1] * 30 and got[natted] == [2] * 20  # each source got its own packets back
    assert extra is None  # the RTCP packet was not echoed
    assert media[0] == (30, direct.getsockname(), 1)
    assert media[1][:2] == (20, natted.getsockname())  # latched to where its packets came from
    assert sorted(c.packets_echoed for c in finished) == [20, 30]
    for s in (direct, natted, unused):
        s.close()
