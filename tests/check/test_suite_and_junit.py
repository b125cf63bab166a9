"""Suite files (loading, validation, --init) and the JUnit/JSON/terminal outputs of results."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import xmlschema
from rich.console import Console
from support import REPO

from siptool.check import junit, output
from siptool.check.builtin import CHECKS
from siptool.check.result import ERROR, FAIL, PASS, SKIPPED, CheckResult, SuiteResult, ladder_text
from siptool.check.suite import EXAMPLE, load_suite, parse_suite
from siptool.errors import SiptoolError
from siptool.report.model import Finding, LadderStep

XSD = Path(__file__).with_name("junit.xsd")
BUILTIN = {"options", "register", "call", "dtmf", "hold", "cancel", "long_call", "tls", "wrong_password",
           "concurrent", "fragments"}


def test_every_builtin_check_is_registered():
    assert BUILTIN <= set(CHECKS)


def test_example_suite_loads_and_covers_the_builtins(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(EXAMPLE)
    suite = load_suite(path)
    assert suite.name == "carrier-interop"
    assert suite.target.uri == "sip:echo@127.0.0.1:5060" and suite.target.password_env == "SIPTOOL_PASSWORD"
    assert suite.thresholds.mos == 4.0 and suite.thresholds.pdd_ms == 3000
    kinds = {c.type for c in suite.checks}
    assert BUILTIN - {"tls", "fragments"} <= kinds  # commented out in the example: tls needs a certificate,
    # fragments raw sockets
    calls = {c.name: c for c in suite.checks}
    assert calls["call-pcma"].get("codec") == "PCMA" and calls["long_call"].get("duration") == 35
    assert calls["concurrent"].get("calls") == 10 and calls["options"].timeout == CHECKS["options"].timeout


def test_one_thresholds_object_for_analyze_call_and_suites():
    from siptool.agent.options import CallOptions
    from siptool.analysis.thresholds import DEFAULT, Thresholds

    data = tomllib.loads(EXAMPLE)
    data["thresholds"] = {"mos_min": 3.9, "loss_pct": 2, "media_gap_s": 1.5}  # mos_min: the older name
    th = parse_suite(data).thresholds
    assert isinstance(th, Thresholds) and (th.mos, th.loss_pct, th.media_gap_s, th.jitter_ms) == (3.9, 2.0, 1.5, 30.0)
    assert CallOptions(uri="sip:a@127.0.0.1").thresholds == DEFAULT  # one set of defaults
    assert not DEFAULT.too_lossy(0.0) and Thresholds.from_limits(loss_pct=0).too_lossy(0.1)
    assert DEFAULT.too_lossy(1.0) and DEFAULT.too_jittery(30.0) and DEFAULT.too_low(3.59) and not DEFAULT.too_low(3.6)
    data["thresholds"] = {"mos": "high"}
    with pytest.raises(SiptoolError, match="threshold mos must be a number"):
        parse_suite(data)


def test_password_comes_from_the_environment(monkeypatch):
    suite = parse_suite(tomllib.loads(EXAMPLE))
    monkeypatch.delenv("SIPTOOL_PASSWORD", raising=False)
    with pytest.raises(SiptoolError, match=r"\$SIPTOOL_PASSWORD"):
        suite.target.password
    monkeypatch.setenv("SIPTOOL_PASSWORD", "s3cret")
    assert suite.target.password == "s3cret"


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["target"].update(password="x"), "never put a password"),
    (lambda d: d["target"].update(transport="sctp"), "transport must be"),
    (lambda d: d["target"].update(uri="tel:+4930"), "must start with sip"),
    (lambda d: d["target"].update(colour="blue"), "unknown \\[target\\] key 'colour'"),
    (lambda d: d["thresholds"].update(mos_max=3), "unknown threshold 'mos_max'"),
    (lambda d: d["check"].append({"type": "fax"}), "unknown type 'fax'"),
    (lambda d: d["check"].append({"type": "call", "codec": "G729", "name": "x", "bitrate": 8}),
     "unknown option 'bitrate'"),
    (lambda d: d["check"].append({"type": "options"}), "two checks are named 'options'"),
    (lambda d: d.update(check=[]), "no \\[\\[check\\]\\]"),
    (lambda d: d.pop("target"), "needs uri"),
])
def test_bad_suites_name_the_problem(mutate, message):
    data = tomllib.loads(EXAMPLE)
    mutate(data)
    with pytest.raises(SiptoolError, match=message):
        parse_suite(data)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(SiptoolError, match="--init"):
        load_suite(tmp_path / "none.toml")
    (tmp_path / "bad.toml").write_text("[target\nuri=")
    with pytest.raises(SiptoolError, match="not valid TOML"):
        load_suite(tmp_path / "bad.toml")


def test_init_writes_the_example_and_refuses_to_overwrite(tmp_path):
    cmd = [sys.executable, "-m", "siptool", "check", "--init", str(tmp_path / "suite.toml")]
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "suite.toml").read_text() == EXAMPLE
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not overwriting" in again.stderr


def sample_result() -> SuiteResult:
    steps = [LadderStep(1, 100.0, "127.0.0.1:5062", "127.0.0.1:5060", "UDP", "INVITE", "INVITE", None, 1, sdp=True),
             LadderStep(2, 100.2, "127.0.0.1:5060", "127.0.0.1:5062", "UDP", "200 OK", "INVITE", 200, 1,
                        sdp=True, summary="PCMA"),
             LadderStep(3, 100.4, "127.0.0.1:5060", "127.0.0.1:5062", "UDP", "200 OK", "INVITE", 200, 1,
                        retransmission=True)]
    ok = CheckResult("options", "options", PASS, duration_s=0.01, figures={"rtt_ms": 1.2})
    bad = CheckResult("call-pcmu", "call", duration_s=5.2, figures={"codec": "PCMA", "pdd_ms": 200.0},
                      ladder=ladder_text(steps))
    bad.fail("negotiated PCMA instead of PCMU")
    bad.fail("no RTP received")
    bad.findings.append(Finding("check.codec", "error", "PCMU was not negotiated", "only PCMA <&> \x01 here",
                                fix="enable PCMU"))
    err = CheckResult("tls", "tls", ERROR, "ConnectionRefusedError: [Errno 111] refused", 0.1)
    skip = CheckResult("cancel", "cancel", SKIPPED, "answered before the CANCEL")
    return SuiteResult("carrier", "sip:echo@127.0.0.1:5060", [ok, bad, err, skip], started=1_790_000_000.0,
                       duration_s=5.4)


def test_junit_validates_and_carries_figures_findings_ladder(tmp_path):
    result = sample_result()
    path = tmp_path / "r.xml"
    junit.write(result, path)
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(path)
    doc = schema.to_dict(path)
    suite = doc["testsuite"][0]
    assert (suite["@tests"], suite["@failures"], suite["@errors"], suite["@skipped"]) == (4, 1, 1, 1)
    cases = {c["@name"]: c for c in suite["testcase"]}
    failure = cases["call-pcmu"]["failure"][0]
    assert failure["@message"] == "negotiated PCMA instead of PCMU; no RTP received"
    text = failure["$"]
    assert "codec = PCMA" in text and "[error] check.codec: PCMU was not negotiated" in text
    assert "127.0.0.1:5062 -> 127.0.0.1:5060  INVITE (SDP)" in text and "(retransmission)" in text
    assert "+   0.200s" in text
    assert "error" in cases["tls"] and "skipped" in cases["cancel"] and "failure" not in cases["options"]


def test_junit_rejected_by_schema_when_broken(tmp_path):
    """The schema is strict enough to catch a malformed report (the validation can fail)."""
    xml = junit.dumps(sample_result()).replace('tests="4" failures="1"', 'failures="1"', 1)
    xml = xml.replace("<testsuite ", "<testsuite ", 1).replace(' tests="4"', "", 1)
    path = tmp_path / "broken.xml"
    path.write_text(xml)
    assert not xmlschema.XMLSchema(XSD).is_valid(path)


def test_json_and_terminal_outputs():
    result = sample_result()
    data = json.loads(output.dumps(result))
    assert data["passed"] is False and [c["status"] for c in data["checks"]] == ["pass", "fail", "error", "skipped"]
    assert data["counts"] == {"pass": 1, "fail": 1, "error": 1, "skipped": 1} and data["exit_status"] == 1
    assert data["checks"][1]["findings"][0]["code"] == "check.codec"
    screen = Console(file=io.StringIO(), width=150)
    output.render(result, screen)
    text = screen.file.getvalue()
    # a skipped check is not a pass (this said "2/4 checks passed", counting the skip)
    assert "1 passed, 1 failed, 1 error, 1 skipped of 4" in text and "/4" not in text
    assert "call-pcmu: fail" in text and "INVITE (SDP)" in text and "cancel: skipped" in text
    assert FAIL in output.line(result.results[1]).plain.lower()


def _results(*statuses) -> SuiteResult:
    return SuiteResult("s", "sip:x@127.0.0.1", [CheckResult(f"c{i}", "call", st) for i, st in enumerate(statuses)])


@pytest.mark.parametrize("statuses,summary,strict,allowed", [
    ((PASS,) * 3, "all 3 checks passed", 0, 0),
    ((PASS, SKIPPED), "1 passed, 1 skipped of 2", 1, 0),
    ((SKIPPED,), "0 passed, 1 skipped of 1", 1, 0),
    ((PASS, FAIL, SKIPPED), "1 passed, 1 failed, 1 skipped of 3", 1, 1),
    ((PASS, ERROR, ERROR), "1 passed, 2 errors of 3", 1, 1),
    ((PASS,) * 7 + (FAIL, SKIPPED, SKIPPED), "7 passed, 1 failed, 2 skipped of 10", 1, 1),
    ((), "0 passed of 0", 1, 1),  # nothing ran: never a green run
])
def test_verdict_a_skip_is_not_a_pass(statuses, summary, strict, allowed):
    r = _results(*statuses)
    assert r.summary() == summary
    assert r.exit_status() == strict and r.exit_status(allow_skipped=True) == allowed
    assert r.passed == (summary.startswith("all"))


def test_skip_never_hides_a_failure():
    r = CheckResult("cancel", "cancel")
    r.fail("CANCEL answered 500")
    r.skip("answered first")
    assert r.status == FAIL and r.message == "CANCEL answered 500"
    ok = CheckResult("cancel", "cancel")
    ok.skip("answered first")
    assert ok.status == SKIPPED and not ok.passed


def test_only_selects_by_name_or_type_and_refuses_unknown_names():
    suite = parse_suite(tomllib.loads(EXAMPLE), "s.toml")
    assert [c.name for c in suite.select(None)] == [c.name for c in suite.checks]
    assert [c.name for c in suite.select(["call", "options"])] == ["options", "call-pcmu", "call-pcma"]
    with pytest.raises(SiptoolError, match=r"--only nosuch: no such check in s.toml; its checks: options, "
                                           r"register, call-pcmu, .*\(types: call\)") as exc:
        suite.select(["options", "nosuch"])
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("number,message", [
    ("ring me", "number must be the user part"),
    ("a@b", "number must be the user part"),
    (5, "number must be the user part"),
])
def test_bad_numbers_are_refused(number, message):
    data = tomllib.loads(EXAMPLE)
    data["check"].append({"type": "call", "name": "n", "number": number})
    with pytest.raises(SiptoolError, match=message):
        parse_suite(data)
    data["check"][-1] = {"type": "call", "name": "n", "number": "ring", "uri": "sip:ring@127.0.0.1"}
    with pytest.raises(SiptoolError, match="uri or number, not both"):
        parse_suite(data)


def test_number_replaces_the_user_of_the_target():
    from siptool.check.suite import with_user

    assert with_user("sip:echo@127.0.0.1:5060", "ring") == "sip:ring@127.0.0.1:5060"
    assert with_user("sips:pbx.example.com;transport=tls", "+4930123") == "sips:+4930123@pbx.example.com;transport=tls"
    assert with_user("sip:[::1]:5080", "ring") == "sip:ring@[::1]:5080"
    cancel = next(c for c in parse_suite(tomllib.loads(EXAMPLE)).checks if c.type == "cancel")
    assert cancel.get("number") == "ring" and not cancel.get("uri")


def test_skipped_check_in_junit_has_its_ladder(tmp_path):
    r = sample_result()
    r.results[3].ladder = "+   0.000s  127.0.0.1:5062 -> 127.0.0.1:5060  INVITE (SDP)"
    path = tmp_path / "r.xml"
    junit.write(r, path)
    schema = xmlschema.XMLSchema(XSD)
    schema.validate(path)
    case = {c["@name"]: c for c in schema.to_dict(path)["testsuite"][0]["testcase"]}["cancel"]
    assert case["skipped"][0]["@message"] == "answered before the CANCEL"
    assert "INVITE (SDP)" in case["system-out"][0] and "failure" not in case
