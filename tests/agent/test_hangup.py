"""An answered call is always ended with a BYE: after a failure, an internal error, Ctrl-C or SIGTERM.

The far end is siptool's echo agent (in-process, or `siptool echo` as a process); each test checks on
the far end's side that the BYE arrived, not just that the caller meant to send one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from support import REPO

from siptool.agent import CallOptions, EchoServer, place_call
from siptool.agent.caller import AgentError
from siptool.agent.rtpsession import RtpSession
from siptool.report.agent_view import event_text
from siptool.status import ExitStatus


def _inject(monkeypatch, exc: BaseException) -> None:
    """Make the media start (right after the 200 OK and the ACK) fail with `exc`."""
    def start(self, *args, **kwargs):
        raise exc
    monkeypatch.setattr(RtpSession, "start", start)


async def _call_and_fail(**kw):
    async with EchoServer(("127.0.0.1", 0)) as echo:
        try:
            res = await place_call(CallOptions(uri=f"sip:100@127.0.0.1:{echo.port}", duration=3.0, **kw))
        except RuntimeError as exc:
            res = exc
        for _ in range(50):  # the echo handles the BYE on the same loop
            if echo.finished:
                break
            await asyncio.sleep(0.02)
        return res, echo.finished


def test_internal_error_after_answer_still_sends_bye(monkeypatch):
    _inject(monkeypatch, RuntimeError("injected after the 200 OK"))
    res, finished = asyncio.run(_call_and_fail())
    assert isinstance(res, RuntimeError)  # still an internal error for the CLI (exit 3) ...
    assert len(finished) == 1 and finished[0].state == "ended" and finished[0].ended_by == "remote"  # ... after BYE


def test_call_failure_after_answer_sends_bye_and_says_why(monkeypatch):
    _inject(monkeypatch, AgentError("injected failure"))
    res, finished = asyncio.run(_call_and_fail())
    assert not res.ok and res.status == 200 and res.error == "injected failure" and res.ended_by == "local"
    events = [event_text(e) for e in res.events]
    assert events[-2:] == ["-> BYE", "<- 200 OK (BYE)"]
    assert finished[0].ended_by == "remote"


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, ExitStatus.INTERRUPTED), (signal.SIGTERM, ExitStatus.INTERRUPTED)])
def test_ctrl_c_and_sigterm_during_the_call_hang_up(echo_proc, sig, code):
    echo, port = echo_proc()
    call = subprocess.Popen([sys.executable, "-m", "siptool", "call", f"sip:100@127.0.0.1:{port}", "--duration", "30"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in call.stdout:  # wait until media flows
            if "media PCMU" in line:
                break
        call.send_signal(sig)
        out, err = call.communicate(timeout=15)
    finally:
        if call.poll() is None:
            call.kill()
    assert call.returncode == code and err.strip() == "siptool: interrupted", err
    assert "-> BYE" in out and "<- 200 OK (BYE)" in out
    echo.send_signal(signal.SIGINT)
    lines, _ = echo.communicate(timeout=10)
    assert "ended by remote" in lines and "shutdown" not in lines, lines
