"""A placed call is judged by the Analyzer that judges a captured one (issue 15): the agent's own
packets go into it in memory as they are sent and received, and what it reports equals what
`analyze` reports on the pcap of that same call, findings and figures alike (IPv4 and IPv6)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from siptool.agent import CallOptions, EchoServer, place_call
from siptool.agent.tap import AgentTap
from siptool.analysis.content import ContentOptions
from siptool.drivers.files import analyze_file
from siptool.report.jsonout import report_dict


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _place(host: str, path, **kw):
    """A call through the echo agent, its pcap written; the result carries the Report the call's
    own Analyzer made of it in memory."""
    async def go():
        async with EchoServer((host, 0)) as echo:
            where = f"[{host}]" if ":" in host else host
            return await place_call(CallOptions(uri=f"sip:echo@{where}:{echo.port}", local_ip=host,
                                                pcap=str(path), **kw))
    return asyncio.run(asyncio.wait_for(go(), 60))


def _judged(report) -> dict:
    """Everything the Analyzer concluded, without the capture section (file name, format, size) and
    the agent's own facts (call.agent: what the agent alone knows, set beside the Analyzer's figures)."""
    data = json.loads(json.dumps(report_dict(report), default=str))
    data.pop("capture", None)
    data.pop("generated", None)
    for call in data["calls"]:
        call.pop("agent")
    return data


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=pytest.mark.skipif(
    not _has_ipv6_loopback(), reason="no IPv6 loopback"))])
def test_a_placed_call_is_judged_as_its_capture_is(tmp_path, host):
    path = tmp_path / "call.pcap"
    res = _place(host, path, duration=2.0, dtmf="12")
    assert res.ok, res.error
    memory, file = res.report, analyze_file(path, content=ContentOptions())  # a placed call's audio is analysed
    assert len(memory.calls) == 1 and memory.calls[0].call_id == res.call_id
    (call,) = memory.calls
    assert call.final_status == 200 and len(call.streams) == 2 and all(s.packets > 50 for s in call.streams)
    assert _judged(memory) == _judged(file)
    assert [(f.code, f.severity, f.title, f.frames) for f in memory.all_findings()] == \
           [(f.code, f.severity, f.title, f.frames) for f in file.all_findings()]


def test_each_direction_gets_its_own_receivers_report(tmp_path):
    """The echo sends our SSRC back: our report about what came back is the report on that stream,
    in memory and in the pcap alike, and no report is the echo's about ours (it sends none)."""
    from agent.helpers import check_reflected_reports

    path = tmp_path / "call.pcap"
    res = _place("127.0.0.1", path, duration=2.0)
    assert res.ok, res.error
    check_reflected_reports(path, analyze_file(path))
    check_reflected_reports(path, res.report)


def test_a_failed_call_is_judged_the_same_way(tmp_path):
    async def go():
        async with EchoServer(("127.0.0.1", 0), reject=486) as echo:
            return await place_call(CallOptions(uri=f"sip:echo@127.0.0.1:{echo.port}", local_ip="127.0.0.1",
                                                pcap=str(tmp_path / "busy.pcap")))

    res = asyncio.run(asyncio.wait_for(go(), 60))
    assert res.status == 486
    memory, file = res.report, analyze_file(tmp_path / "busy.pcap")
    assert [f.code for f in memory.all_findings()] == [f.code for f in file.all_findings()]
    assert "sip.failed.486" in [f.code for f in memory.all_findings()]
    assert _judged(memory) == _judged(file)
    # the call's result carries them: what analyze says of its pcap
    assert [(f.code, f.title) for f in res.findings] == [(f.code, f.title) for f in file.calls[0].findings]


def test_no_file_unless_asked(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(AgentTap, "close", lambda self: written.append(self.writer))

    async def go():
        async with EchoServer(("127.0.0.1", 0)) as echo:
            return await place_call(CallOptions(uri=f"sip:echo@127.0.0.1:{echo.port}", local_ip="127.0.0.1",
                                                duration=1.0))

    res = asyncio.run(asyncio.wait_for(go(), 60))
    assert res.ok and res.report.calls[0].final_status == 200 and written == [] and not list(tmp_path.iterdir())


def test_call_json_carries_the_analyzers_findings(tmp_path):
    """`siptool call --json` against an echo agent that takes no common codec: its findings are the
    Analyzer's, as `analyze --json` gives them for the call's own pcap."""
    import os
    import subprocess
    import sys

    from interop.peers import free_port
    from support import REPO

    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "siptool", "echo", "--listen", f"127.0.0.1:{port}", "--codec", "PCMU"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        env = dict(os.environ, NO_COLOR="1")
        for _ in range(50):
            out = subprocess.run([sys.executable, "-m", "siptool", "call", f"sip:echo@127.0.0.1:{port}", "--codec", "PCMA",
                                  "--json", "--pcap", str(tmp_path / "c.pcap")], capture_output=True, text=True,
                                 env=env, cwd=REPO, timeout=60)
            if out.stdout.strip():
                data = json.loads(out.stdout)
                if data["status"] is not None:
                    break
        assert data["schema"] == "siptool.call/1.4" and data["status"] == 488 and out.returncode == 1
        codes = [f["code"] for f in data["findings"]]
        assert codes == ["sip.failed.488", "codec.no_common"]
        analysed = json.loads(subprocess.run([sys.executable, "-m", "siptool", "analyze", str(tmp_path / "c.pcap"), "--json"],
                                             capture_output=True, text=True, cwd=REPO, timeout=60).stdout)
        assert codes == [f["code"] for f in analysed["calls"][0]["findings"]]
    finally:
        echo.terminate()
        echo.wait(10)
