"""The suite `siptool check --init` writes goes green against `siptool echo` (a newcomer's first demo),
through the real CLI in subprocesses; and a skipped check is never counted as a pass.

The first test runs the example suite as written (35 s long_call, 10 concurrent calls of 5 s, ...):
about 70 s. Shortening it here would test another suite than the one users get."""

from __future__ import annotations

import json
import subprocess
import sys

import xmlschema
from interop.peers import free_port
from support import REPO

from siptool.check.suite import load_suite

from check.lab import XSD, _echo, _wait_sip

PW_ENV = "SIPTOOL_PASSWORD"  # the variable the example suite names
TARGET = 'uri = "sip:echo@127.0.0.1:5060"'


def _siptool(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "siptool", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_init_suite_passes_against_echo_with_credentials(tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv(PW_ENV, "demo-secret")  # the echo agent and siptool check both read it
    echo = _echo(port, "--user", "alice", "--password-env", PW_ENV)
    try:
        _wait_sip(port)
        suite = tmp_path / "suite.toml"
        init = _siptool("check", "--init", suite)
        assert init.returncode == 0, init.stderr
        text = suite.read_text()
        assert text.count(TARGET) == 1 and f'password_env = "{PW_ENV}"' in text
        suite.write_text(text.replace(TARGET, TARGET.replace("5060", str(port))))  # the only edit
        junit, pcaps = tmp_path / "results.xml", tmp_path / "pcaps"
        proc = _siptool("check", suite, "--json", "--junit", junit, "--pcap-dir", pcaps)
    finally:
        echo_out = echo.stop()
    assert proc.stdout.strip(), (proc.stderr[-2000:], echo_out[-2000:])
    data = json.loads(proc.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    not_passed = {n: (c["status"], c["message"], c["ladder"][-1200:]) for n, c in checks.items()
                  if c["status"] != "pass"}
    assert not not_passed and proc.returncode == 0, not_passed
    names = [c.name for c in load_suite(suite).checks]
    assert list(checks) == names and len(names) == 10
    assert data["counts"] == {"pass": 10, "fail": 0, "error": 0, "skipped": 0}
    assert data["passed"] is True and data["exit_status"] == 0 and data["summary"] == "all 10 checks passed"
    # what made them pass is what the suite asked for, not an accident
    reg, wrong, cancel = checks["register"], checks["wrong_password"], checks["cancel"]
    assert reg["figures"]["challenge"] == "401" and reg["figures"]["expires"] == 300
    assert "401 Unauthorized" in reg["ladder"] and "200 OK" in reg["ladder"]
    assert "403 Forbidden" in wrong["ladder"] and "200 OK" not in wrong["ladder"]
    assert cancel["figures"]["cancel_status"] == 200 and not cancel["figures"]["answered_before_cancel"]
    assert "487 Request Terminated" in cancel["ladder"] and "180 Ringing" in cancel["ladder"]
    assert checks["long_call"]["figures"]["duration_s"] >= 34.5
    assert checks["dtmf"]["figures"]["dtmf_rx"] == "123#"
    assert checks["concurrent"]["figures"]["answered_ok"] == 10
    # JUnit: valid, nothing failed or skipped
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(junit)
    ts = schema.to_dict(junit)["testsuite"][0]
    assert (ts["@tests"], ts["@failures"], ts["@errors"], ts["@skipped"]) == (10, 0, 0, 0)
    # --pcap-dir: one file per check, named after it
    assert sorted(p.name for p in pcaps.iterdir()) == [f"{i:03d}-{n}.pcap" for i, n in enumerate(names, 1)]


SKIPPY = '''name = "skippy"
[target]
uri = "sip:echo@127.0.0.1:{port}"
[[check]]
type = "options"
[[check]]
type = "cancel"          # no number that rings: the echo answers at once, nothing is tested
after = 0.3
[[check]]
type = "call"
duration = 1
'''


def test_a_skipped_check_is_not_a_pass(tmp_path):
    port = free_port()
    echo = _echo(port)
    try:
        _wait_sip(port)
        suite = tmp_path / "suite.toml"
        suite.write_text(SKIPPY.format(port=port))
        junit = tmp_path / "r.xml"
        strict = _siptool("check", suite, "--only", "options", "--only", "cancel", "--junit", junit)
        allowed = _siptool("check", suite, "--only", "options", "--only", "cancel", "--allow-skipped", "--json")
        typo = _siptool("check", suite, "--only", "options", "--only", "cancle")
    finally:
        echo.stop()
    # a skip fails the run by default, and the summary says what happened
    assert strict.returncode == 1, strict.stdout[-2000:] + strict.stderr[-2000:]
    assert "1 passed, 1 skipped of 2" in strict.stdout and "all" not in strict.stdout.lower().replace("allow", "")
    assert "2/2" not in strict.stdout and "fails the run" in strict.stdout
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(junit)
    ts = schema.to_dict(junit)["testsuite"][0]
    assert (ts["@tests"], ts["@failures"], ts["@errors"], ts["@skipped"]) == (2, 0, 0, 1)
    cases = {c["@name"]: c for c in ts["testcase"]}
    assert "rings" in cases["cancel"]["skipped"][0]["@message"] and "skipped" not in cases["options"]
    assert "INVITE" in cases["cancel"]["system-out"][0]  # the ladder shows why it could not judge
    # --allow-skipped: exit 0, the skip still reported
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    data = json.loads(allowed.stdout)
    assert data["passed"] is False and data["exit_status"] == 0
    assert data["counts"] == {"pass": 1, "fail": 0, "error": 0, "skipped": 1}
    assert data["summary"] == "1 passed, 1 skipped of 2"
    # a typo in --only: exit 2, the names that exist, no traffic and no traceback
    assert typo.returncode == 2 and typo.stdout == ""
    assert "--only cancle" in typo.stderr and "options, cancel, call" in typo.stderr
    assert "Traceback" not in typo.stderr and len(typo.stderr.strip().splitlines()) == 1
