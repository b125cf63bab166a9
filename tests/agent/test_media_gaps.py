"""Media that stops or freezes while the call is up fails the call, with when and how long.

The far end is `siptool echo` as a process: killed (SIGKILL, so it sends no BYE) or frozen (SIGSTOP,
then SIGCONT) in the middle of the call. The verdicts are checked against what the test did to it."""

from __future__ import annotations

import asyncio
import os
import signal

from siptool.agent import CallOptions, place_call
from siptool.report.agent_view import event_text


async def _call_while(port: int, duration: float, action) -> object:
    task = asyncio.ensure_future(place_call(CallOptions(uri=f"sip:100@127.0.0.1:{port}", duration=duration)))
    await action()
    return await task


def test_far_end_killed_mid_call_counts_as_lost_and_media_timeout(echo_proc):
    echo, port = echo_proc()

    async def kill():
        await asyncio.sleep(2.0)
        os.kill(echo.pid, signal.SIGKILL)

    res = asyncio.run(_call_while(port, 5.0, kill))
    assert res.status == 200 and not res.ok and res.ended_by == "local"
    assert len(res.media_gaps) == 1
    start, end = res.media_gaps[0]
    assert 1.5 < start < 2.6 and end > 4.5  # from the kill to the end of our sending
    # every packet due after the last one is lost: RFC 3550 alone would say 0 %
    assert res.rx.missing_at_end >= int((end - start - 0.1) / 0.02)
    assert res.rx.lost == res.rx.missing_at_end and res.rx.loss_pct > 40 and res.rx.mos < 3.5
    text = "\n".join(res.problems)
    assert f"no media from the far end for {end - start:.1f} s at {start:.1f}-{end:.1f} s (until the end of the call)" in text
    assert f"({res.rx.missing_at_end} due after the far end's media stopped)" in text
    # the BYE goes to a dead port: ICMP says so at once, no 32 s wait for timer F
    assert f"BYE got no answer: nothing listens on 127.0.0.1:{port} (ICMP port unreachable)" in text


def test_far_end_frozen_mid_call_fails_with_the_gap(echo_proc):
    echo, port = echo_proc()

    async def freeze():
        await asyncio.sleep(1.0)
        os.kill(echo.pid, signal.SIGSTOP)
        await asyncio.sleep(3.0)
        os.kill(echo.pid, signal.SIGCONT)

    res = asyncio.run(_call_while(port, 6.0, freeze))
    assert res.status == 200 and not res.ok and res.rx.packets > 200
    assert len(res.media_gaps) == 1
    start, end = res.media_gaps[0]
    assert 0.5 < start < 1.6 and 2.5 < end - start < 3.6  # the 3 s the far end was stopped
    assert any(p == f"no media from the far end for {end - start:.1f} s at {start:.1f}-{end:.1f} s"
               for p in res.problems), res.problems
    events = [event_text(e) for e in res.events]
    assert "no RTP from the far end for 2 s" in events and "RTP from the far end again" in events
    assert events.index("no RTP from the far end for 2 s") < events.index("RTP from the far end again") \
        < events.index("-> BYE")  # said while the call ran, not only at the end


def test_clean_call_has_no_gaps_and_nothing_missing(echo_proc):
    _, port = echo_proc()
    res = asyncio.run(place_call(CallOptions(uri=f"sip:100@127.0.0.1:{port}", duration=2.5)))
    assert res.ok, res.problems
    assert res.media_gaps == [] and res.rx.missing_at_end == 0 and res.rx.lost == 0
