"""The agent against hostile peers, in-process over loopback sockets: each class of the issue (a send
error, a stray response, a malformed request, a handler fault, a flood, a caller's headers naming a
third party, an INVITE never ACKed, too many calls, a connection flood) and what must hold."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from siptool.agent import EchoServer
from siptool.agent.limits import SourceLimiter
from siptool.sip.transaction import Timers
from siptool.agent.transport import MAX_PER_HOST, TransportError, UdpTransport, sendable
from siptool.agent.ua import UserAgent
from siptool.sip import build
from siptool.sip.message import parse


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def _request(method: str, port: int, me: int, *, via: str | None = None, extra: str = "", body: str = "",
             drop: str = "", call_id: str | None = None, cseq: str | None = None) -> bytes:
    via = via or f"SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{time.monotonic_ns():x};rport"
    lines = [f"{method} sip:echo@127.0.0.1:{port} SIP/2.0", f"Via: {via}", "Max-Forwards: 70",
             "From: <sip:a@127.0.0.1>;tag=1", "To: <sip:echo@127.0.0.1>",
             f"Call-ID: {call_id or time.monotonic_ns()}@x", f"CSeq: {cseq or '1 ' + method}",
             f"Contact: <sip:a@127.0.0.1:{me}>"]
    lines = [ln for ln in lines if not (drop and ln.lower().startswith(drop.lower() + ":"))]
    lines += [x for x in extra.split("\r\n") if x]
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode("utf-8")


def _sdp(host: str = "127.0.0.1", port: int = 40000) -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Peer:
    """A raw UDP socket on loopback that sends bytes and reads what comes back."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    async def ask(self, data: bytes, to: tuple[str, int], wait: float = 1.0, want: int = 1) -> list[bytes]:
        self.sock.sendto(data, to)
        return await self.read(wait, want)

    async def read(self, wait: float, want: int = 1) -> list[bytes]:
        got, end = [], time.monotonic() + wait
        while time.monotonic() < end and len(got) < want:
            try:
                got.append(self.sock.recv(70000))
            except BlockingIOError:
                await asyncio.sleep(0.01)
        return got


def test_sendable_addresses():
    assert sendable(("127.0.0.1", 5060)) and sendable(("::1", 1), ("::", 0))
    for bad in [("127.0.0.1", 99999), ("127.0.0.1", 0), ("127.0.0.1", -1), ("evil.example", 5060), ("", 5060),
                ("224.0.0.1", 5060), ("0.0.0.0", 5060), ("127.0.0.1", True), ("127.0.0.1", "5060"), None, ("x",)]:
        assert not sendable(bad), bad
    assert not sendable(("::1", 5060), ("127.0.0.1", 5060))  # not of the socket's family


def test_a_send_error_never_closes_the_socket():
    async def go():
        got = []
        t = await UdpTransport(lambda d, a, now: got.append(d)).open("127.0.0.1", 0)
        peer = Peer()
        for bad in [("127.0.0.1", 99999), ("127.0.0.1", 0), ("no.such.host", 5060), ("224.0.0.1", 5060)]:
            with pytest.raises(TransportError):
                await t.send(b"x", bad)
        await t.send(b"still here", ("127.0.0.1", peer.port))
        heard = await peer.read(1.0)
        await t.close()
        return heard, t.sock.is_closing()

    heard, _ = run(go())
    assert heard == [b"still here"]


@pytest.mark.parametrize("kw,status,reason", [
    ({"drop": "Call-ID"}, 400, "Missing Call-ID header field"),
    ({"drop": "CSeq"}, 400, "Missing CSeq header field"),
    ({"drop": "From"}, 400, "Missing From header field"),
    ({"drop": "To"}, 400, "Missing To header field"),
    ({"cseq": "1 INVITE"}, 400, "CSeq method INVITE does not match the request method"),
    ({"cseq": "\u00b9\u00b2 OPTIONS"}, 400, "Malformed CSeq header field"),
    ({"cseq": "9" * 40 + " OPTIONS"}, 400, "Malformed CSeq header field"),
    ({"extra": "Contact: <sip:a@127.0.0.1:5\u2460>"}, 400, "Malformed Contact header field"),
    ({"extra": "Max-Forwards: lots"}, 400, "Malformed Max-Forwards header field"),
    ({"extra": "X-Big: " + "a" * 20000}, 513, "Message Too Large (over 16 KB)"),
])
def test_malformed_requests_get_a_status_with_the_reason(kw, status, reason):
    async def go():
        async with EchoServer(("127.0.0.1", 0)) as echo:
            peer = Peer()
            if "extra" in kw and kw["extra"].startswith("Max-Forwards"):
                data = _request("OPTIONS", echo.port, peer.port).replace(b"Max-Forwards: 70", b"Max-Forwards: lots")
            elif "extra" in kw and kw["extra"].startswith("Contact"):
                data = _request("OPTIONS", echo.port, peer.port).replace(
                    f"Contact: <sip:a@127.0.0.1:{peer.port}>".encode(), kw["extra"].encode())
            else:
                data = _request("OPTIONS", echo.port, peer.port, **kw)
            got = await peer.ask(data, ("127.0.0.1", echo.port))
            return got, len(echo.ua.servers)

    got, held = run(go())
    assert got and got[0].split(b"\r\n")[0].decode() == f"SIP/2.0 {status} {reason}"
    assert held == 0  # answered statelessly: nothing kept for it


@pytest.mark.parametrize("via", [";branch=x", "SIP/2.0/UDP 127.0.0.1:99999;branch=z9hG4bK1",
                                 "SIP/2.0/UDP 127.0.0.1:\u00b9\u00b25060;branch=z9hG4bK2", "SIP/2.0/UDP ;branch=z9hG4bK3",
                                 "SIP/2.0/UDP evil.example:5060;branch=z9hG4bK4"])
def test_no_trusted_reply_address_means_no_reply_and_the_agent_stays_up(via):
    async def go():
        async with EchoServer(("127.0.0.1", 0)) as echo:
            peer = Peer()
            first = await peer.ask(_request("OPTIONS", echo.port, peer.port, via=via), ("127.0.0.1", echo.port), 0.3)
            after = await peer.ask(_request("OPTIONS", echo.port, peer.port), ("127.0.0.1", echo.port))
            return first, after

    first, after = run(go())
    assert first == [] and after and after[0].startswith(b"SIP/2.0 200 OK")


def test_a_stray_response_cannot_rewrite_the_contact():
    async def go():
        async with EchoServer(("127.0.0.1", 0)) as echo:
            peer = Peer()
            before = echo.ua.contact("echo")
            stray = (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{echo.port};branch=z9hG4bKnotours;"
                     "received=127.0.0.1;rport=5860\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\n"
                     "Call-ID: stray\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
            await peer.ask(stray, ("127.0.0.1", echo.port), 0.3)
            bad_via = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP host:abc;received=1.2.3.4\r\nCSeq: 1 INVITE\r\n\r\n"
            await peer.ask(bad_via, ("127.0.0.1", echo.port), 0.3)
            return before, echo.ua.contact("echo"), echo.ua.public, echo.port

    before, after, public, port = run(go())
    assert before == after == f"<sip:echo@127.0.0.1:{port}>" and public is None


def test_a_response_to_our_own_request_teaches_the_public_address():
    async def go():
        peer = Peer()
        async with UserAgent("udp", "127.0.0.1", 0) as ua:
            req = build.request("OPTIONS", f"sip:127.0.0.1:{peer.port}", via_value=ua.via(),
                                 from_value="<sip:a@127.0.0.1>;tag=1", to_value="<sip:b@127.0.0.1>",
                                 call_id="c1@x", cseq=1)
            task = asyncio.ensure_future(ua.request(req, ("127.0.0.1", peer.port)))
            (data,) = await peer.read(2.0)
            msg = parse(data)
            via = msg.get("via").replace(";rport", "") + ";received=198.51.100.9;rport=40000"
            resp = build.response(msg, 200)
            build.set_header(resp, "via", via)
            peer.sock.sendto(resp.serialise(), ("127.0.0.1", ua.port))
            await task
            return ua.public, ua.contact("x")

    public, contact = run(go())
    assert public == ("198.51.100.9", 40000) and contact == "<sip:x@198.51.100.9:40000>"


def test_a_handler_fault_is_a_500_and_the_agent_goes_on():
    errors = []

    def handler(ua, txn, msg, addr):
        if msg.method == "MESSAGE":
            raise IndexError("boom")
        ua.respond(txn, build.response(msg, 200))

    async def go():
        async with UserAgent("udp", "127.0.0.1", 0, handler=handler, on_error=errors.append) as ua:
            peer = Peer()
            bad = await peer.ask(_request("MESSAGE", ua.port, peer.port), ("127.0.0.1", ua.port))
            good = await peer.ask(_request("OPTIONS", ua.port, peer.port), ("127.0.0.1", ua.port))
            return bad, good

    bad, good = run(go())
    assert bad[0].startswith(b"SIP/2.0 500") and good[0].startswith(b"SIP/2.0 200")
    assert len(errors) == 1 and "IndexError: boom" in errors[0] and "MESSAGE" in errors[0]


def test_source_limiter_budget_and_memory():
    lim = SourceLimiter(rate=10, burst=20, sources=3)
    assert sum(lim.allow("a", 0.0) for _ in range(50)) == 20  # the burst, then nothing
    assert lim.allow("b", 0.0)  # another source is not affected
    assert sum(lim.allow("a", 1.0) for _ in range(50)) == 10  # a second refills `rate`
    lim.charge("a", 1000)
    assert not lim.allow("a", 2.0) and lim.buckets["a"].tokens < 0  # garbage costs more: a longer wait
    for host in "cdefgh":
        lim.allow(host, 3.0)
    assert len(lim.buckets) == 3  # bounded, whoever sends


def test_a_flood_from_one_source_leaves_room_for_another():
    async def go():
        async with EchoServer(("127.0.0.1", 0), rate=50) as echo:
            attacker, caller = Peer("127.0.0.1"), Peer("127.0.0.2")
            start = time.monotonic()
            for k in range(2000):  # in batches the agent (on this loop) reads between
                attacker.sock.sendto(_request("OPTIONS", echo.port, attacker.port), ("127.0.0.1", echo.port))
                if k % 20 == 19:
                    await asyncio.sleep(0.002)
            elapsed = time.monotonic() - start
            flood_answers = await attacker.read(1.0, want=10**6)
            mine = _request("OPTIONS", echo.port, caller.port).replace(b"127.0.0.1:%d" % caller.port,
                                                                      b"127.0.0.2:%d" % caller.port)
            got = await caller.ask(mine, ("127.0.0.1", echo.port))
            return len(flood_answers), elapsed, got, echo.ua.limiter.dropped

    answered, elapsed, got, dropped = run(go())
    assert answered <= 200 + 50 * (elapsed + 1.5)  # the burst (4 x rate) and what refilled meanwhile
    assert dropped > 1000 and got and got[0].startswith(b"SIP/2.0 200")


def test_bye_goes_where_the_invite_came_from_and_rtcp_only_after_media():
    """A caller's Contact, Record-Route and SDP name a third party (here a second socket): the agent
    sends nothing there; its BYE goes to the INVITE's source."""
    async def go():
        async with EchoServer(("127.0.0.1", 0), hangup_after=1.0) as echo:
            peer, third = Peer(), Peer()
            extra = f"Record-Route: <sip:127.0.0.1:{third.port};lr>\r\nContent-Type: application/sdp"
            invite = _request("INVITE", echo.port, peer.port, extra=extra, body=_sdp("127.0.0.1", third.port),
                              call_id="hostile").replace(f"<sip:a@127.0.0.1:{peer.port}>".encode(),
                                                         f"<sip:a@127.0.0.1:{third.port}>".encode())
            got = await peer.ask(invite, ("127.0.0.1", echo.port), 2.0, want=3)
            ok = next(m for m in got if m.startswith(b"SIP/2.0 200"))
            resp = parse(ok)
            ack = (f"ACK sip:echo@127.0.0.1:{echo.port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{peer.port};"
                   f"branch=z9hG4bKack;rport\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: {resp.get('to')}\r\n"
                   f"Call-ID: hostile@x\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode()
            peer.sock.sendto(ack, ("127.0.0.1", echo.port))
            bye = await peer.read(3.0)
            heard_by_third = await third.read(0.5, want=100)
            return bye, heard_by_third

    bye, third = run(go())
    assert bye and bye[0].startswith(b"BYE ")
    assert third == []  # no BYE via Record-Route/Contact, no RTCP to the SDP's address before media came


def test_an_invite_never_acked_is_ended():
    async def go():
        async with EchoServer(("127.0.0.1", 0), timers=Timers(t1=0.02)) as echo:
            peer = Peer()
            invite = _request("INVITE", echo.port, peer.port, extra="Content-Type: application/sdp", body=_sdp())
            got = await peer.ask(invite, ("127.0.0.1", echo.port), 4.0, want=100)
            return got, len(echo.calls), [c.ended_by for c in echo.finished]

    got, left, ended = run(go())
    assert any(m.startswith(b"BYE ") for m in got) and left == 0 and ended == ["local (no ACK)"]


def test_too_many_calls_get_503():
    async def go():
        async with EchoServer(("127.0.0.1", 0), max_calls=2) as echo:
            peer = Peer()
            for k in range(3):
                invite = _request("INVITE", echo.port, peer.port, extra="Content-Type: application/sdp", body=_sdp(),
                                  call_id=f"c{k}")
                peer.sock.sendto(invite, ("127.0.0.1", echo.port))
                await asyncio.sleep(0.1)
            finals = {}
            for m in await peer.read(1.0, want=100):
                resp = parse(m)
                if resp.status and resp.status >= 200:
                    finals[resp.call_id] = resp.status
            return finals

    assert run(go()) == {"c0@x": 200, "c1@x": 200, "c2@x": 503}


def test_one_host_cannot_hold_every_connection():
    async def go():
        async with EchoServer(("127.0.0.1", 0), transport="tcp") as echo:
            loop = asyncio.get_running_loop()
            held = []
            for _ in range(MAX_PER_HOST + 5):
                s = socket.socket()
                s.setblocking(False)
                await loop.sock_connect(s, ("127.0.0.1", echo.port))
                held.append(s)
            await asyncio.sleep(0.3)
            open_now = len(echo.ua.transport.conns)
            s = socket.create_connection(("127.0.0.1", echo.port), 2, source_address=("127.0.0.2", 0))
            me = s.getsockname()[1]
            via = f"SIP/2.0/TCP 127.0.0.2:{me};branch=z9hG4bKtcp"
            s.sendall(_request("OPTIONS", echo.port, me, via=via))
            s.setblocking(False)
            reply = b""
            for _ in range(100):
                try:
                    reply += s.recv(65536)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.02)
            for x in held + [s]:
                x.close()
            return open_now, reply

    open_now, reply = run(go())
    assert open_now == MAX_PER_HOST and reply.startswith(b"SIP/2.0 200")
