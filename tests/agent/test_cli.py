"""`siptool call` and `siptool echo` as a user runs them (subprocesses, loopback)."""

from __future__ import annotations

import json
import signal

from agent.helpers import siptool
from interop.peers import free_port


def test_call_echo_json_and_ctrl_c(echo_proc, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    proc, port = echo_proc("--user", "alice", "--password-file", pw)
    r = siptool("call", f"sip:100@127.0.0.1:{port}", "--user", "alice", "--password-env", "TEST_PW", "--duration", "1",
                "--dtmf", "9", "--json", "--record", tmp_path / "heard.wav", env={"TEST_PW": "s3cret"})
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads(r.stdout)
    assert d["ok"] and d["status"] == 200 and d["auth"] == "401" and d["rx"]["packets"] > 30
    assert d["rtt_ms"] is not None and d["dtmf_sent"] == "9" and "s3cret" not in r.stdout
    assert (tmp_path / "heard.wav").stat().st_size > 8000
    r = siptool("call", f"sip:100@127.0.0.1:{port}", "--user", "alice", "--password-env", "TEST_PW", "--duration", "1",
                env={"TEST_PW": "nope"})
    assert r.returncode == 1 and "authentication failed" in r.stdout and "nope" not in r.stdout + r.stderr
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "call(s) handled" in err and "Traceback" not in err
    assert len(out.splitlines()) == 1 and " ended " in out and "PCMU" in out  # one line per answered call (the failed one had no line)


def test_call_errors_exit_codes(tmp_path):
    r = siptool("call", "sip:1@127.0.0.1:9", "--codec", "G729")
    assert r.returncode == 2 and "pcmu, pcma, g722, opus" in r.stderr
    r = siptool("call", "sip:1@127.0.0.1:9", "--user", "a", "--password-env", "SURELY_UNSET_VAR_X")
    assert r.returncode == 2 and "SURELY_UNSET_VAR_X" in r.stderr
    port = free_port()
    r = siptool("call", f"sip:1@127.0.0.1:{port}", "--t1", "0.02", "--json")  # ICMP port unreachable
    assert r.returncode == 1 and json.loads(r.stdout)["error"] == f"nothing listens on 127.0.0.1:{port} (ICMP port unreachable)"


def test_many_calls_summary(echo_proc):
    _, port = echo_proc()
    r = siptool("call", f"sip:1@127.0.0.1:{port}", "--calls", "4", "--rate", "10", "--duration", "1", "--json")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    d = json.loads(r.stdout)
    assert d["attempted"] == 4 and d["succeeded"] == 4 and d["setup_ratio"] == 1.0 and d["pdd_ms"]["p99"] > 0


def test_many_calls_log_lines_and_live_board(echo_proc):
    _, port = echo_proc()
    r = siptool("call", f"sip:1@127.0.0.1:{port}", "--calls", "6", "--rate", "20", "--duration", "1", "--no-color")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == 6 and lines[-1].startswith("[6/6]") and all(ln.endswith("ok") for ln in lines)
    assert "calls 6, answered 6, passed 6, setup success 100.0%" in r.stdout

    from rich.console import Console

    from siptool.agent.caller import CallResult
    from siptool.agent.events import Received, Sent
    from siptool.agent.tally import Tally
    from siptool.report.agent_view import board

    tally = Tally(3)
    for i, (status, pdd, mos) in enumerate([(200, 10.0, 4.4), (200, 30.0, 4.0), (503, None, None)]):
        tally.event(Sent(f"c{i}", 0.0, method="INVITE", initial=True))
        if status == 200:
            tally.event(Received(f"c{i}", 5.0, method="INVITE", status=200, reason="OK"))
        res = CallResult(call_id=f"c{i}", status=status, pdd_ms=pdd)
        res.rx.mos = mos
        tally.finished(res)
    console = Console(width=150, record=True, no_color=True)
    console.print(board(tally.figures()))
    text = console.export_text()
    assert "3/3 done" in text and "answered 2" in text and "failed 1" in text and "setup 66.7%" in text
    assert "PDD p50 20 ms" in text and "MOS min 4.00, median 4.20" in text


def test_echo_pcap_file_and_full_lines(echo_proc, tmp_path):
    """`siptool echo --pcap FILE`: the call's packets in FILE for analyze, its media in its line."""
    from siptool.drivers.files import analyze_file

    proc, port = echo_proc("--pcap", tmp_path / "echo.pcap")
    r = siptool("call", f"sip:100@127.0.0.1:{port}", "--duration", "1", "--json")
    assert json.loads(r.stdout)["status"] == 200, r.stdout + r.stderr
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err
    line, *rtp = out.splitlines()[:3]
    assert " ended " in line and [x.split()[0] for x in rtp] == ["RTP", "RTP"]
    calls = analyze_file(tmp_path / "echo.pcap").calls  # the OPTIONS pings of the fixture's start, then the call
    (call,) = [c for c in calls if c.kind == "call"]
    assert call.final_status == 200 and len(call.streams) == 2 and all(s.packets > 30 for s in call.streams)
    assert [f"RTP {s.src} > {s.dst}" for s in call.streams] == [" ".join(x.split()[:4]) for x in rtp]
