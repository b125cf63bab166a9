"""`siptool check` against real peers on loopback: kamailio (digest auth, routing by user) in front of
`siptool echo` agents. A good suite passes; broken targets make the right checks fail with the right findings;
the JUnit file validates against junit.xsd with the ladder in the failure text."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib

import xmlschema
from support import REPO

from siptool.agent import EchoServer
from siptool.check.suite import parse_suite

from check.lab import PASSWORD, XSD, run_in_process


def _suite(lab, checks: str, name: str = "interop") -> str:
    k, t = lab["ports"]["kamailio"], lab["ports"]["tls"]
    return f'''name = "{name}"

[target]
uri = "sip:echo@127.0.0.1:{k}"
transport = "udp"
user = "alice"
password_env = "SIPTOOL_CHECK_TEST_PW"
tls_uri = "sips:echo@127.0.0.1:{t}"
insecure = true

[thresholds]
pdd_ms = 2000
mos_min = 4.0
loss_pct = 1.0
jitter_ms = 50
''' + checks.replace("@K@", str(k))


def _run(lab, tmp_path, suite_text: str, password: str = PASSWORD, *extra):
    path = tmp_path / "suite.toml"
    path.write_text(suite_text)
    junit = tmp_path / "results.xml"
    env = {**os.environ, "SIPTOOL_CHECK_TEST_PW": password}
    proc = subprocess.run([sys.executable, "-m", "siptool", "check", str(path), "--junit", str(junit), "--json",
                           *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return proc, {c["name"]: c for c in data["checks"]}, junit


GOOD = '''
[[check]]
type = "options"

[[check]]
type = "register"
expires = 120

[[check]]
type = "call"
name = "call-pcmu"
codec = "PCMU"
duration = 1.5

[[check]]
type = "call"
name = "call-pcma"
codec = "PCMA"
duration = 1.5

[[check]]
type = "dtmf"
digits = "159#"
duration = 2.5

[[check]]
type = "hold"
duration = 2.4

[[check]]
type = "cancel"
after = 0.4
uri = "sip:ring@127.0.0.1:@K@"

[[check]]
type = "long_call"
duration = 3

[[check]]
type = "tls"
duration = 1.5

[[check]]
type = "srtp"
duration = 1.5

[[check]]
type = "srtp"
name = "srtp-tls"
tls = true
suites = ["AES_CM_128_HMAC_SHA1_80"]
duration = 1.5

[[check]]
type = "wrong_password"

[[check]]
type = "concurrent"
calls = 5
duration = 2
rate = 20
'''


def test_suite_against_kamailio_and_echo_passes(lab, tmp_path):
    proc, checks, junit = _run(lab, tmp_path, _suite(lab, GOOD))
    failed = {n: (c["status"], c["message"], c["ladder"][-1500:]) for n, c in checks.items() if c["status"] != "pass"}
    assert not failed and proc.returncode == 0, (failed, proc.stderr[-2000:])
    assert set(checks) == {"options", "register", "call-pcmu", "call-pcma", "dtmf", "hold", "cancel", "long_call",
                           "tls", "srtp", "srtp-tls", "wrong_password", "concurrent"}
    fig = {n: c["figures"] for n, c in checks.items()}
    assert fig["options"]["rtt_ms"] >= 0 and checks["options"]["ladder"].count("OPTIONS") == 1
    assert fig["register"]["challenge"] == "401" and fig["register"]["expires"] == 120
    assert "401 Unauthorized" in checks["register"]["ladder"] and "REGISTER" in checks["register"]["ladder"]
    for name, codec in (("call-pcmu", "PCMU"), ("call-pcma", "PCMA")):
        f = fig[name]
        assert f["codec"] == codec and f["challenge"] == "407"
        assert f["packets_tx"] > 50 and f["packets_rx"] > 50 and f["mos_rx"] >= 4.0 and f["loss_pct_rx"] <= 1.0
        assert f["rtt_ms"] is not None and f["pdd_ms"] <= 2000
        ladder = checks[name]["ladder"]
        assert "407 Proxy Authentication Required" in ladder and "-> 127.0.0.1" in ladder and "ACK" in ladder
        assert ladder.index("200 OK (SDP") < ladder.index("BYE")
    assert fig["dtmf"]["dtmf_sent"] == "159#" and fig["dtmf"]["dtmf_rx"] == "159#" and fig["dtmf"]["telephone_event"]
    assert fig["hold"]["hold_status"] == 200 and fig["hold"]["resume_status"] == 200
    assert fig["hold"]["hold_answer_direction"] == "recvonly"
    assert fig["cancel"]["cancel_status"] == 200 and "487" in checks["cancel"]["ladder"]
    assert fig["long_call"]["ended_by"] == "local" and fig["long_call"]["duration_s"] >= 2.9
    assert "ok_retransmissions" not in fig["long_call"]
    assert fig["tls"]["codec"] == "PCMU" and fig["tls"]["packets_rx"] > 40
    for name, suite in (("srtp", "AEAD_AES_128_GCM"), ("srtp-tls", "AES_CM_128_HMAC_SHA1_80")):
        f = fig[name]
        assert f["srtp_suite"] == suite and f["srtp_auth_failures_rx"] == 0 and f["packets_rx"] > 40
        assert f["rtt_ms"] is not None and "RTP/SAVP" not in checks[name]["message"]
    assert "security.srtp_keys_cleartext" in {f["code"] for f in checks["srtp"]["findings"]}  # UDP: keys in clear
    assert checks["srtp-tls"]["findings"] == []  # over TLS they are not
    assert fig["concurrent"]["answered_ok"] == 5 and fig["concurrent"]["peak_concurrent"] == 5
    xmlschema.XMLSchema(XSD).validate(junit)


BROKEN = '''
[[check]]
type = "call"
name = "pcmu-to-pcma-only"
codec = "PCMU"
duration = 1.5
uri = "sip:pcma@127.0.0.1:@K@"

[[check]]
type = "call"
name = "pcma-to-pcma-only"
codec = "PCMA"
duration = 1.5
uri = "sip:pcma@127.0.0.1:@K@"

[[check]]
type = "long_call"
duration = 3
uri = "sip:noack@127.0.0.1:@K@"

[[check]]
type = "srtp"
name = "srtp-to-pcma-only"
duration = 1.5
uri = "sip:pcma@127.0.0.1:@K@"
'''


def test_broken_targets_fail_the_right_checks(lab, tmp_path):
    pcaps = tmp_path / "pcaps"
    proc, checks, junit = _run(lab, tmp_path, _suite(lab, BROKEN, "broken"), PASSWORD, "--pcap-dir", str(pcaps))
    assert proc.returncode == 1, proc.stderr[-2000:]
    # each check's packets in a file named after the check (it was NNN-call.pcap for any call check)
    assert sorted(p.name for p in pcaps.iterdir()) == ["001-pcmu-to-pcma-only.pcap", "002-pcma-to-pcma-only.pcap",
                                                       "003-long_call.pcap", "004-srtp-to-pcma-only.pcap"]
    pcmu, pcma, long_call = checks["pcmu-to-pcma-only"], checks["pcma-to-pcma-only"], checks["long_call"]
    assert pcmu["status"] == "fail" and "488" in pcmu["message"]
    assert "sip.failed.488" in {f["code"] for f in pcmu["findings"]}
    assert pcma["status"] == "pass" and pcma["figures"]["codec"] == "PCMA", pcma["message"]
    assert long_call["status"] == "fail" and "ACK is not arriving" in long_call["message"]
    ack = [f for f in long_call["findings"] if f["code"] == "check.ack_missing"]
    assert ack and long_call["figures"]["ok_retransmissions"] >= 1
    assert "200 OK (SDP, retransmission" in long_call["ladder"] or "(retransmission)" in long_call["ladder"]
    srtp = checks["srtp-to-pcma-only"]  # an SRTP offer refused: the suites or the codec, said as one finding
    assert srtp["status"] == "fail" and "488" in srtp["message"]
    assert {"srtp.refused", "sip.failed.488"} <= {f["code"] for f in srtp["findings"]}
    # JUnit: valid, two failures, the ladder and findings in the failure text
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(junit)
    suite = schema.to_dict(junit)["testsuite"][0]
    assert (suite["@tests"], suite["@failures"], suite["@errors"]) == (4, 3, 0)
    cases = {c["@name"]: c for c in suite["testcase"]}
    text = cases["long_call"]["failure"][0]["$"]
    assert "ladder:" in text and "INVITE (SDP)" in text and "check.ack_missing" in text and "ACK" in text
    assert "488" in cases["pcmu-to-pcma-only"]["failure"][0]["$"] and "failure" not in cases["pcma-to-pcma-only"]


WRONG = '''
[[check]]
type = "register"

[[check]]
type = "call"
duration = 1

[[check]]
type = "wrong_password"
'''


def test_wrong_password_fails_the_auth_checks_clearly(lab, tmp_path):
    proc, checks, junit = _run(lab, tmp_path, _suite(lab, WRONG, "wrong-password"), "not-" + PASSWORD)
    assert proc.returncode == 1
    reg, call = checks["register"], checks["call"]
    assert reg["status"] == "fail" and "wrong user or password" in reg["message"], reg["message"]
    assert reg["ladder"].count("401 Unauthorized") == 2  # challenged, answered, refused
    assert call["status"] == "fail" and "authentication failed" in call["message"] and "407" in call["message"]
    assert checks["wrong_password"]["status"] == "pass"  # still refused, as it must be
    assert "not-" + PASSWORD not in proc.stdout and "not-" + PASSWORD not in junit.read_text()
    xmlschema.XMLSchema(XSD).validate(junit)


def test_driver_in_process_far_end_hangs_up_and_busy():
    """No Debian peer needed: the Driver against in-process echo agents. A far end that hangs up early fails
    long_call with check.dropped; a busy far end fails the call with the analyser's sip.failed.486; an
    at-once answer makes the CANCEL check skipped."""
    async def go():
        async with EchoServer(("127.0.0.1", 0), hangup_after=0.8) as early, \
                EchoServer(("127.0.0.1", 0), reject=486) as busy:
            suite = parse_suite(tomllib.loads(f'''
[target]
uri = "sip:echo@127.0.0.1:{early.port}"
[[check]]
type = "long_call"
duration = 5
[[check]]
type = "call"
uri = "sip:busy@127.0.0.1:{busy.port}"
duration = 1
[[check]]
type = "options"
[[check]]
type = "cancel"
after = 0.3
'''))
            return await run_in_process(suite)
    result = asyncio.run(asyncio.wait_for(go(), 60))
    r = {c.name: c for c in result.results}
    assert r["long_call"].status == "fail" and "far end hung up" in r["long_call"].message
    assert "check.dropped" in {f.code for f in r["long_call"].findings}
    assert r["long_call"].figures["ended_by"] == "remote" and r["long_call"].figures["duration_s"] < 4.5
    ladder = r["long_call"].ladder
    bye = ladder.index("-> 127.0.0.1:", ladder.index("BYE") - 60)
    assert "BYE" in ladder and "200 OK" in ladder[bye:], ladder
    assert r["call"].status == "fail" and "486" in r["call"].message
    assert "sip.failed.486" in {f.code for f in r["call"].findings}
    assert r["options"].status == "pass" and r["options"].figures["rtt_ms"] >= 0
    # an echo answers at once: the CANCEL check cannot judge it and says so (and hangs up at once)
    assert r["cancel"].status == "skipped" and "rings" in r["cancel"].message
    assert r["cancel"].figures["answered_before_cancel"] and r["cancel"].figures["duration_s"] < 2
