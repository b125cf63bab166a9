"""siptool's caller against siptool's echo agent over real loopback sockets (UDP, TCP, TLS)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from siptool.agent import CallOptions, EchoServer, TlsOptions, options_ping, place_call, place_calls
from siptool.agent.caller import AgentError
from siptool.report.agent_view import echo_line, event_text


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _call(transport="udp", echo_kw=None, **kw):
    lines = []
    async with EchoServer(("127.0.0.1", 0), transport=transport, on_call=lambda c: lines.append(echo_line(c)),
                          **(echo_kw or {})) as echo:
        scheme = "sips" if transport == "tls" else "sip"
        res = await place_call(CallOptions(uri=f"{scheme}:100@127.0.0.1:{echo.port}", transport=transport,
                                           **{"duration": 1.5, **kw}))
    return res, lines, echo


@pytest.mark.parametrize("transport, media_port", [("udp", None), ("tcp", None), ("udp", 0)])
def test_call_with_digest_media_dtmf_and_rtt(transport, media_port):
    """media_port 0: every call's media on one port pair, echoed in batches (as `siptool echo` does)."""
    res, lines, echo = run(_call(transport, {"user": "alice", "password": "pw", "media_port": media_port},
                                 user="alice", password="pw", dtmf="1#", codecs=("PCMA", "PCMU")))
    assert res.ok, (res.error, res.problems)
    assert res.status == 200 and res.auth == "401" and res.codec == "PCMA"
    assert res.rx.packets > 50 and res.rx.loss_pct == 0.0 and res.rx.mos >= 4.0
    assert res.tx.packets >= res.rx.packets  # DTMF end packets sent 3x; all echoed back
    assert res.dtmf_sent == "1#" and res.ended_by == "local"
    assert res.rtt_ms is not None and 0 <= res.rtt_ms < 500  # loopback echo
    assert res.pdd_ms is not None and res.answer_ms >= res.pdd_ms
    events = [event_text(e) for e in res.events]
    assert events[:2] == ["-> INVITE", "<- 100 Trying"] and "<- 401 Unauthorized" in events and "-> ACK" in events
    assert len(echo.finished) == 1 and echo.finished[0].packets_echoed == res.rx.packets
    assert "ended" in lines[0] and "PCMA" in lines[0]


def test_wrong_password_is_a_clear_failure():
    res, _, _ = run(_call("udp", {"user": "alice", "password": "pw"}, user="alice", password="wrong"))
    assert not res.ok and res.status == 401
    assert "authentication failed" in res.error and "wrong user or password" in res.error


def test_busy_and_unavailable():
    for code in (486, 503):
        res, _, _ = run(_call("udp", {"reject": code}))
        assert not res.ok and res.status == code and res.rx.packets == 0


def test_timer_b_on_silent_port():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # bound, never answers
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = run(place_call(CallOptions(uri=f"sip:1@127.0.0.1:{port}", t1=0.02)))
    assert not res.ok and res.status is None
    assert "timer B" in res.error and "no response to INVITE" in res.error
    with pytest.raises(AgentError, match="timer F"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            run(options_ping(f"sip:127.0.0.1:{s.getsockname()[1]}", t1=0.02))


def test_cancel_while_ringing():
    res, lines, echo = run(_call("udp", {"ring": 5.0}, cancel_after=0.3))
    assert res.status == 487 and res.cancel_status == 200 and not res.ok
    assert echo.finished[0].state == "cancelled" and "<- 180 Ringing" in [event_text(e) for e in res.events]


def test_far_end_hangs_up_and_hold_resume():
    res, _, _ = run(_call("udp", {"hangup_after": 0.8}, duration=5.0))
    assert res.ended_by == "remote" and res.duration_s < 4.0 and res.rx.packets > 20
    res, _, _ = run(_call("udp", None, duration=1.5, hold=True))
    assert res.hold_status == 200 and res.resume_status == 200 and res.ok


def test_concurrent_calls_summary():
    async def go():
        async with EchoServer(("127.0.0.1", 0)) as echo:
            return await place_calls(CallOptions(uri=f"sip:1@127.0.0.1:{echo.port}", duration=1.0), n=6, rate=20)
    s = run(go())
    assert s.attempted == 6 and s.answered == 6 and s.setup_ratio == 1.0
    assert set(s.pdd_ms) == {"p50", "p90", "p99", "max"} and s.mos["min"] >= 4.0
    assert len({r.call_id for r in s.results}) == 6


def test_options_ping():
    async def go():
        async with EchoServer(("127.0.0.1", 0), transport="tcp") as echo:
            return await options_ping(f"sip:127.0.0.1:{echo.port};transport=tcp")
    status, reason, rtt = run(go())
    assert status == 200 and rtt >= 0


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "key.pem", "-out",
                    d / "cert.pem", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return d


def test_tls_verification(certs):
    tls = {"tls": TlsOptions(cert_file=str(certs / "cert.pem"), key_file=str(certs / "key.pem"))}
    res, _, _ = run(_call("tls", tls, duration=1.0))
    assert not res.ok and "certificate" in res.error and "self-signed" in res.error and "--insecure" in res.error
    res, _, _ = run(_call("tls", tls, duration=1.0, ca_file=str(certs / "cert.pem")))
    assert res.ok and res.rx.packets > 30
    res, _, _ = run(_call("tls", tls, duration=1.0, ca_file=str(certs / "cert.pem"), sni="wrong.example"))
    assert not res.ok and "wrong.example" in res.error or "match" in res.error
    res, _, _ = run(_call("tls", tls, duration=1.0, insecure=True))
    assert res.ok


def test_pcap_of_own_call_reads_back(tmp_path):
    from siptool.drivers.files import analyze_file

    path = tmp_path / "call.pcap"
    res, _, _ = run(_call("udp", None, duration=1.0, pcap=str(path)))
    assert res.ok
    report = analyze_file(str(path))
    assert [c.call_id for c in report.calls] == [res.call_id]
    assert report.calls[0].final_status == 200


def test_echo_listening_on_all_interfaces_answers_with_a_reachable_address():
    """--listen 0.0.0.0: SDP and Contact carry the address the caller reaches us on, never 0.0.0.0
    (c=0.0.0.0 means hold to many SBCs)."""
    async def go():
        async with EchoServer(("0.0.0.0", 0), media_port=0) as echo:
            res = await place_call(CallOptions(uri=f"sip:100@127.0.0.1:{echo.port}", duration=0.5))
            return res, echo.answer_body
    res, body = run(go())
    assert res.ok, (res.error, res.problems)
    assert b"c=IN IP4 127.0.0.1" in body and b"0.0.0.0" not in body


def test_dtmf_cut_short_by_the_far_end_says_so():
    """The echo hangs up before the digits are all out: the verdict blames the early end, not the SDP."""
    res, _, _ = run(_call("udp", {"hangup_after": 1.2}, duration=4.0, dtmf="123456789"))
    assert res.ended_by == "remote" and 0 < len(res.dtmf_sent) < 9 and not res.ok
    assert f"DTMF: sent {res.dtmf_sent!r} of '123456789': the call ended after {res.duration_s:g} s, before all " \
           "digits were sent" in res.problems


def test_pdd_is_one_measurement():
    """The post-dial delay is the time of the first 18x in the step list, not a second clock reading."""
    res, _, _ = run(_call("udp", {"ring": 0.2}, duration=0.5))
    assert res.ok
    ringing = next(e.t_ms for e in res.events if event_text(e) == "<- 180 Ringing")
    answered = next(e.t_ms for e in res.events if event_text(e) == "<- 200 OK")
    assert res.pdd_ms == ringing and res.answer_ms == answered
