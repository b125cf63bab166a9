"""The RTCP receiver reports the agent sends carry its own measurement (issue 15): a far end on a
loopback socket sends a stream with losses, a reordered packet and uneven spacing; the reports read
off the wire must give the same cumulative loss, extended highest sequence and jitter as the
agent's StreamStats, and the fraction lost per interval as RFC 3550 A.3 defines it."""

from __future__ import annotations

import asyncio
import random
import socket
import time

from siptool.agent.media import RtpDriver
from siptool.agent.rtpsession import RtpSession
from siptool.rtp import codecs
from siptool.rtp.packet import RTCP_BYE, RTCP_RR, RTCP_SR, build_rtp, parse_rtcp

LOST = {7, 8, 30, 31, 32, 77}  # sequence offsets never sent
LATE = 50  # sent after 51


def test_receiver_reports_carry_the_agents_own_loss_and_jitter():
    async def go():
        far_rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        far_rtp.bind(("127.0.0.1", 0))
        far_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        far_rtcp.bind(("127.0.0.1", far_rtp.getsockname()[1] + 1))
        far_rtcp.setblocking(False)
        session = RtpSession(codecs.coder("PCMU"))
        driver = await RtpDriver("127.0.0.1", session).open()
        driver.set_remote("127.0.0.1", far_rtp.getsockname()[1], codecs.coder("PCMU"), 0, None)
        driver.start_rtcp()
        rng = random.Random(5)
        seq0, ts0, order = 65500, 1234, list(range(120))  # the sequence wraps at 65536 on the way
        order[LATE], order[LATE + 1] = order[LATE + 1], order[LATE]
        to = ("127.0.0.1", driver.port)
        for k in order:
            if k not in LOST:
                far_rtp.sendto(build_rtp(0, (seq0 + k) & 0xFFFF, ts0 + 160 * k, 0xABCDEF01, b"\xff" * 160), to)
            await asyncio.sleep(0.02 + rng.uniform(-0.008, 0.008))  # uneven spacing: jitter
        await asyncio.sleep(0.1)
        measured = session.stats.finish()
        driver.close()  # the last report, with an RTCP BYE
        await asyncio.sleep(0.1)
        reports = []
        while True:
            try:
                reports.append((time.time(), parse_rtcp(far_rtcp.recv(2048))))
            except BlockingIOError:
                break
        far_rtp.close()
        far_rtcp.close()
        return measured, reports

    m, reports = asyncio.run(go())
    assert len(reports) >= 2  # periodic ones (about 1 s apart) and the last one
    last = reports[-1][1]
    assert [p.packet_type for p in last][0] in (RTCP_RR, RTCP_SR) and last[-1].packet_type == RTCP_BYE
    block = last[0].reports[0]
    assert block.ssrc == 0xABCDEF01
    assert block.cumulative_lost == m.lost_rfc3550 == len(LOST)
    assert block.highest_seq == int(m.sequence.max()) == 65500 + 119  # extended: past the wrap
    assert block.jitter == round(m.last_jitter_ms * 8) and block.jitter > 8  # timestamp units, not 0
    # fraction lost per interval (A.3): the intervals add up to the cumulative loss
    blocks = [pkts[0].reports[0] for _, pkts in reports if pkts and pkts[0].reports]
    prior_expected, prior_lost = 0, 0
    for b in blocks:
        expected = b.highest_seq - 65500 + 1
        lost = b.cumulative_lost - prior_lost
        want = lost * 256 // (expected - prior_expected) if expected > prior_expected and lost > 0 else 0
        assert b.fraction_lost == want, (b, prior_expected, prior_lost)
        prior_expected, prior_lost = expected, b.cumulative_lost


def test_received_audio_skips_extension_and_padding():
    """The agent reads RTP through the one header parser: a header extension (RFC 3550 5.3.1) and
    padding are not taken for audio; a malformed header is not counted."""
    session = RtpSession(codecs.coder("PCMU"))
    audio = bytes(range(160))
    pkt = build_rtp(0, 1, 160, 0x1234, audio, extension=(0xBEDE, b"\x10\x01\x00\x00"), padding=4)
    session.receive_rtp(pkt, ("127.0.0.1", 4000), 1000.0)
    session.receive_rtp(b"\x90\x00" + bytes(10), ("127.0.0.1", 4000), 1000.02)  # says extension, has none: malformed
    assert session.rx_packets == 1 and session.rx_audio[0][3] == audio
