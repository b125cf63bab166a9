"""What the echo agent says of each call is what `analyze` says of its signalling (issue 15): the
call's SIP messages go through the Analyzer when it ends, and its line carries the Analyzer's
figures and findings with the echo's own facts (packets echoed, who ended it and why)."""

from __future__ import annotations

import asyncio

from agent.test_hostile_input import Peer, _request, _sdp

from siptool.agent import EchoServer
from siptool.report.agent_view import echo_line
from siptool.sip import build
from siptool.sip.message import parse
from siptool.sip.transaction import Timers


def test_a_caller_that_never_acks_is_hung_up_and_the_line_says_why():
    """T1 = 50 ms: the echo sends its 200 OK again and again, gives up at timer H (64*T1 = 3.2 s), hangs
    up; the Analyzer finds the missing ACK (sip.ack_missing) in the call's own messages."""
    ended = []

    async def go():
        async with EchoServer(("127.0.0.1", 0), timers=Timers(t1=0.05), on_call=ended.append) as echo:
            peer = Peer()
            got = await peer.ask(_request("INVITE", echo.port, peer.port, body=_sdp(port=peer.port + 2),
                                          extra="Content-Type: application/sdp"), ("127.0.0.1", echo.port))
            while not got[-1].startswith(b"BYE ") and len(got) < 50:  # until the echo gives up (timer H)
                got += await peer.read(5.0)
            bye = parse(got[-1])
            peer.sock.sendto(build.response(bye, 200).serialise(), ("127.0.0.1", echo.port))
            for _ in range(100):
                if ended:
                    break
                await asyncio.sleep(0.02)
            return got

    got = asyncio.run(asyncio.wait_for(go(), 30))
    oks = [d for d in got if d.startswith(b"SIP/2.0 200 OK")]
    assert len(oks) > 5  # sent again until timer H
    (record,) = ended
    call = record.call
    assert call.final_status == 200 and call.ack_missing and call.ok_retransmissions == len(oks) - 1
    assert call.agent.role == "callee" and call.agent.ended_by == "local (no ACK)" and call.agent.outcome == "ended"
    assert "sip.ack_missing" in [f.code for f in call.findings]
    line, *findings = echo_line(record).splitlines()
    assert " ended " in line and "ended by local (no ACK)" in line and f"call-id {call.call_id}" in line
    assert any("[sip.ack_missing]" in f and f.strip().startswith(("ERROR", "WARNING")) for f in findings)
