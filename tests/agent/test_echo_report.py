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


def _echoed_call(**echo_options):
    """One 1.5 s call from siptool call through an EchoServer; the echo's record of it."""
    from siptool.agent import CallOptions, place_call

    ended = []

    async def go():
        async with EchoServer(("127.0.0.1", 0), on_call=ended.append, **echo_options) as echo:
            res = await place_call(CallOptions(uri=f"sip:echo@127.0.0.1:{echo.port}", local_ip="127.0.0.1",
                                               duration=1.5))
            for _ in range(250):
                if ended:
                    break
                await asyncio.sleep(0.02)
            return res

    res = asyncio.run(asyncio.wait_for(go(), 30))
    assert res.status == 200, res.error  # (its media figures are not the point: the machine may be busy)
    (record,) = ended
    return res, record


def test_the_echos_analysis_starts_at_the_invite():
    """The INVITE and its 100 Trying pass before the echo's call exists; they are the call's too, so
    its analysis has the whole signalling (post-dial delay, the caller), as the caller's has."""
    res, record = _echoed_call()
    call = record.call
    assert [s.label.split()[0] for s in call.ladder] == ["INVITE", "100", "180", "200", "ACK", "BYE", "200"]
    assert call.messages == res.call.messages == 7 and call.pdd_ms is not None
    assert call.caller == res.call.caller and call.streams == []  # SIP only: the echo's media is not fed


def test_echo_pcap_writes_every_packet_and_analyses_each_call_in_full(tmp_path):
    """echo --pcap: every packet the echo sends and receives goes to the file, and each call's own
    packets through an Analyzer as they pass: the call's line carries its media, as `analyze` reads
    the file (the echo sends the caller's SSRC back: each direction its own stream and reports)."""
    from siptool.drivers.files import analyze_file
    from siptool.report.jsonout import call_dict

    path = tmp_path / "echo.pcap"
    res, record = _echoed_call(pcap=str(path), media_port=0)  # --pcap: a port pair per call, not the shared one
    call = record.call
    assert record.media.echoed > 50 and record.driver.shared is None
    assert len(call.streams) == 2 and all(s.packets > 50 for s in call.streams)
    assert {s.ssrc for s in call.streams} == {s.ssrc for s in res.call.streams}
    (file,) = analyze_file(path).calls
    memory, written = call_dict(call), call_dict(file)
    assert memory.pop("agent")["role"] == "callee" and written.pop("agent") is None  # the echo's own facts
    assert memory == written
    lines = echo_line(record).splitlines()
    assert [line.split()[0] for line in lines[1:3]] == ["RTP", "RTP"]
    assert [line.rsplit(" ", 1)[1] for line in lines[1:3]] == [str(s.mos) for s in call.streams]
