"""SRTP between siptool call and siptool echo over real loopback sockets: every suite, the echo's
port per call and its shared port (whose thread decrypts and protects again), sources it must claim
by key (NAT), what the echo refuses, and the TLS key logs both write (mode 0600, never printed)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess

import pytest
from agent.helpers import siptool

from siptool.agent import CallOptions, EchoServer, Thresholds, place_call, place_calls
from siptool.report.agent_view import echo_line

GCM, SHA80, SHA32 = "AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"
LENIENT = Thresholds.from_limits(mos=1.0, jitter_ms=1000.0)  # these tests judge SRTP, not the machine's load


def call(*args, env=None):
    """`siptool call ARGS` with limits that judge what these tests test, not the machine's load."""
    return siptool("call", *args, "--mos", "1", "--jitter", "1000", "--loss", "20", env=env)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def codes(res: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in res["findings"]}


@pytest.mark.parametrize("suite, media_port", [(GCM, 0), (SHA80, None), (SHA32, 0)])
def test_srtp_call_to_the_echo(suite, media_port):
    """The call offers the three suites, the echo accepts `suite` only and answers with it; RFC 4733
    digits go both ways inside the SRTP."""
    async def go():
        lines = []
        async with EchoServer(("127.0.0.1", 0), media_port=media_port, srtp_suites=(suite,),
                              on_call=lambda c: lines.append(echo_line(c))) as echo:
            res = await place_call(CallOptions(uri=f"sip:echo@127.0.0.1:{echo.port}", duration=1.5,
                                               srtp="mandatory", dtmf="5", thresholds=LENIENT))
        return res, lines, echo
    res, lines, echo = run(go())
    assert res.ok, (res.error, res.problems)
    assert res.call.agent.srtp.suite == suite and res.call.agent.srtp.authenticated == res.rx.packets > 60
    assert res.rx.loss_pct == 0 and res.rx.srtp_dropped == 0 and res.rtt_ms is not None and res.dtmf_sent == "5"
    assert [s.srtp.suite for s in res.call.streams] == [suite, suite]
    assert all(s.srtp.authenticated == s.packets for s in res.call.streams)
    assert res.call.streams[0].dtmf == res.call.streams[1].dtmf == "5"  # read from the decrypted packets
    (record,) = echo.finished
    assert record.packets_echoed == res.rx.packets and record.protection.rx.counts.ok == res.tx.packets
    assert f"SRTP {suite}" in lines[0] and "dropped" not in lines[0]
    # SRTCP both ways: each side's context authenticated the other's reports
    assert record.protection.rx_rtcp.rtcp_counts.ok > 0 and record.protection.rx_rtcp.rtcp_counts.auth_failed == 0


def test_the_shared_port_claims_each_srtp_source_by_its_key():
    """Two SRTP calls and a plain one at once, all announcing an address their packets do not come
    from (as behind NAT): the shared port's thread gives each SRTP source to the call whose key
    authenticates it, never by guessing, and echoes the plain call as it is."""
    async def go():
        async with EchoServer(("127.0.0.1", 0), media_port=0) as echo:
            o = dict(uri=f"sip:echo@127.0.0.1:{echo.port}", duration=2.0, public_ip="127.0.0.9", thresholds=LENIENT)
            secure = place_calls(CallOptions(**o, srtp="mandatory"), 2, 20.0)
            plain = place_call(CallOptions(**o))
            return await asyncio.gather(secure, plain), echo
    (summary, plain), echo = run(go())
    for res in [*summary.results, plain]:
        assert res.ok, (res.error, res.problems)
        assert res.rx.packets >= 95 and res.rx.loss_pct == 0 and res.rtt_ms is not None
    assert [r.call.agent.srtp.suite for r in summary.results] == [GCM, GCM] and plain.call.agent.srtp is None
    secure = [r for r in echo.finished if r.protection is not None]
    assert len(secure) == 2 and all(r.protection.rx.counts.auth_failed == 0 for r in secure)
    assert all(r.protection.rx_rtcp.rtcp_counts.ok > 0 for r in secure)  # SRTCP from the port after a claimed one
    assert echo.shared.unmatched == 0


def test_no_common_suite_is_refused_and_said(echo_proc):
    _, port = echo_proc("--srtp-suites", GCM)
    proc = call(f"sip:echo@127.0.0.1:{port}", "--srtp", "mandatory", "--srtp-suites", SHA32, "--json")
    res = json.loads(proc.stdout)
    assert proc.returncode == 1 and res["status"] == 488 and not res["ok"]
    assert codes(res)["srtp.refused"] == "error" and "codec.no_common" not in codes(res)  # said once
    assert res["problems"] == ["SRTP offer refused (488): no crypto suite, or no codec, in common"]
    refused = next(f for f in res["findings"] if f["code"] == "srtp.refused")
    assert refused["evidence"]["suites"] == [SHA32] and refused["evidence"]["protocol"] == "RTP/SAVP"
    plain = call(f"sip:echo@127.0.0.1:{port}", "-d", "1", "--json")  # plain RTP still answered
    assert json.loads(plain.stdout)["ok"]


def test_an_echo_without_srtp_refuses_rtp_savp_and_declines_best_effort(echo_proc):
    _, port = echo_proc("--srtp", "off")
    res = json.loads(call(f"sip:echo@127.0.0.1:{port}", "--srtp", "mandatory", "--json").stdout)
    assert res["status"] == 488 and "srtp.refused" in codes(res)
    res = json.loads(call(f"sip:echo@127.0.0.1:{port}", "--srtp", "optional", "-d", "1.5",
                             "--json").stdout)
    assert res["ok"] and res["call"]["agent"]["srtp"] is None  # best effort declined: plain RTP
    assert [s["srtp"] for s in res["call"]["streams"]] == [None, None]
    assert res["call"]["sdp"][0]["crypto"] == [GCM, SHA80, SHA32] and res["call"]["sdp"][1]["crypto"] == []


def test_an_echo_requiring_srtp_refuses_plain_rtp(echo_proc):
    _, port = echo_proc("--srtp", "mandatory")
    res = json.loads(call(f"sip:echo@127.0.0.1:{port}", "--json").stdout)
    assert res["status"] == 488 and "codec.no_common" in codes(res)  # a plain offer: refused as such
    res = json.loads(call(f"sip:echo@127.0.0.1:{port}", "--srtp", "optional", "-d", "1.5",
                             "--json").stdout)
    assert res["ok"] and res["call"]["agent"]["srtp"]["suite"] == GCM  # best effort taken: SRTP on RTP/AVP


# --- TLS key logs ----------------------------------------------------------------------------------

def _certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def _keylog_lines(path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]


def test_call_and_echo_write_tls_key_logs_readable_by_their_owner_only(tmp_path, echo_proc):
    """`echo --tls-keylog` and `call --tls-keylog` each append their TLS sessions' secrets (NSS key
    log: TLS 1.3 traffic secrets by client random); both files are mode 0600, even under a lax
    umask, and the secrets are printed nowhere."""
    cert, key = _certificate(tmp_path)
    echo_keys, call_keys = tmp_path / "echo.keys", tmp_path / "call.keys"
    old = os.umask(0o022)
    try:
        echo, port = echo_proc("-t", "tls", "--cert", cert, "--key", key, "--tls-keylog", echo_keys,
                               tls=True)
        proc = call(f"sips:echo@127.0.0.1:{port}", "--ca-file", cert, "--srtp", "mandatory", "-d", "1.5",
                       "--tls-keylog", call_keys)
    finally:
        os.umask(old)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for path in (echo_keys, call_keys):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ours, theirs = _keylog_lines(call_keys), _keylog_lines(echo_keys)
    labels = {ln.split()[0] for ln in ours}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0"} <= labels
    assert sorted(ours) == sorted(theirs)  # one session, seen from both ends
    secrets = {ln.split()[2] for ln in ours}
    echo.terminate()
    out, err = echo.communicate(timeout=10)
    for text in (proc.stdout, proc.stderr, out, err):
        assert not any(s in text for s in secrets)


def test_sslkeylogfile_is_the_default_key_log(tmp_path, echo_proc):
    cert, key = _certificate(tmp_path)
    path = tmp_path / "env.keys"
    path.write_text("")
    path.chmod(0o644)  # an existing file is made private before any key goes in
    _, port = echo_proc("-t", "tls", "--cert", cert, "--key", key, tls=True)
    proc = call(f"sips:echo@127.0.0.1:{port}", "--ca-file", cert, "-d", "1",
                   env={"SSLKEYLOGFILE": str(path)})
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(_keylog_lines(path)) >= 5
    bad = call("sip:1@127.0.0.1:9", "--tls-keylog", tmp_path / "k")
    assert bad.returncode == 2 and bad.stderr.strip() == ("siptool: --tls-keylog: the call uses UDP, not TLS: there "
                                                         "are no TLS keys to log")
