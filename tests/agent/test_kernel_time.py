"""The agent's RTP and RTCP sockets take each datagram's kernel receive time (SO_TIMESTAMPNS), so a
busy event loop (a loaded machine, many calls) is not measured as network jitter: a datagram that
waited in the socket's queue keeps the time it arrived. Ground truth: the sender's own send times on
loopback, while the loop is blocked for 300 ms in the middle of the stream."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from siptool.agent.media import KernelTimed, RtpDriver
from siptool.agent.rtpsession import RtpSession
from siptool.rtp import codecs
from siptool.rtp.packet import build_rtp

BLOCK_S = 0.3


def _send_paced(sock: socket.socket, to, count: int, sent: list) -> None:
    """`count` PCMU packets 20 ms apart on absolute deadlines; each send's (before, after) times."""
    start = time.time() + 0.05
    for k in range(count):
        time.sleep(max(0.0, start + 0.02 * k - time.time()))
        before = time.time()
        sock.sendto(build_rtp(0, k, 160 * k, 0x1234, b"\xff" * 160), to)
        sent.append((before, time.time()))


def _block_loop_during(thread: threading.Thread, sent: list, loop) -> list:
    """Block the loop for BLOCK_S once a third of the stream is out; the times it was blocked."""
    blocked = []

    def block():
        t0 = time.time()
        time.sleep(BLOCK_S)
        blocked.append((t0, time.time()))

    def when_ready():
        if len(sent) >= 10:
            block()
        elif thread.is_alive():
            loop.call_later(0.005, when_ready)

    loop.call_soon(when_ready)
    return blocked


def test_datagrams_keep_the_time_they_arrived_while_the_loop_is_blocked():
    async def go():
        loop = asyncio.get_running_loop()
        got = []
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        timed = KernelTimed(rx, lambda data, addr, now: got.append((now, time.time())))
        sent: list = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            thread = threading.Thread(target=_send_paced, args=(tx, rx.getsockname(), 40, sent))
            thread.start()
            blocked = _block_loop_during(thread, sent, loop)
            while thread.is_alive():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        timed.close()
        return timed.kernel_time, got, sent, blocked

    kernel_time, got, sent, blocked = asyncio.run(go())
    assert kernel_time and blocked and len(got) == len(sent) == 40
    waited = [read - arrived for arrived, read in got]
    assert max(waited) > BLOCK_S / 2  # the loop really was blocked while packets came
    for (arrived, _), (before, after) in zip(got, sent):
        assert before - 1e-4 <= arrived <= after + 0.05  # the kernel's time, not the loop's


def test_a_busy_loop_is_not_network_jitter():
    """A perfectly paced stream read by an RtpDriver whose loop stalls 300 ms: the session's RFC 3550
    jitter is the sender's own (a few ms at most), not the ~20 ms the stall would add."""
    async def go():
        loop = asyncio.get_running_loop()
        session = RtpSession(codecs.coder("PCMU"))
        driver = await RtpDriver("127.0.0.1", session).open()
        sent: list = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.bind(("127.0.0.1", 0))
            driver.set_remote("127.0.0.1", tx.getsockname()[1], codecs.coder("PCMU"), 0, None)
            thread = threading.Thread(target=_send_paced, args=(tx, ("127.0.0.1", driver.port), 60, sent))
            thread.start()
            blocked = _block_loop_during(thread, sent, loop)
            while thread.is_alive():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        measured = session.stats.finish()
        driver.close()
        return measured, sent, blocked

    m, sent, blocked = asyncio.run(go())
    assert blocked and m.packets == 60
    jitter = worst = 0.0  # RFC 3550 6.4.1 over the send times: the truth (loopback adds ~nothing)
    for k in range(1, len(sent)):
        d = (sent[k][0] - sent[k - 1][0]) - 0.02
        jitter += (abs(d) - jitter) / 16
        worst = max(worst, jitter)
    assert abs(m.max_jitter_ms - worst * 1000) < 3.0, (m.max_jitter_ms, worst * 1000)
