"""JUnit XML for CI (the Ant/Jenkins format that GitHub, GitLab and Jenkins read).

One <testsuite> per suite run, one <testcase> per check. A failed check has <failure message type> whose
text holds the figures, the findings and the signalling ladder; a check that could not run has <error>;
a skipped one (it could not judge the target) has <skipped message> and is counted in the testsuite's
`skipped`, never as passed, with its ladder in <system-out>. The <testsuites> root takes no `skipped`
in the Jenkins schema (tests/check/junit.xsd), so its `tests` counts every check and the per-status
counts are the testsuite's.
"""

from __future__ import annotations

import datetime as dt
import socket
import xml.etree.ElementTree as ET

from .result import ERROR, FAIL, SKIPPED, CheckResult, SuiteResult


_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _clean(text: str) -> str:
    """XML 1.0 cannot carry control characters (a malformed SIP message may hold some)."""
    return text.translate(_CONTROL)


def details(r: CheckResult) -> str:
    """Figures, findings and ladder of one check as plain text (failure body and system-out)."""
    parts = []
    if r.message:
        parts.append(r.message)
    if r.figures:
        parts.append("figures:\n" + "\n".join(f"  {k} = {v}" for k, v in r.figures.items()))
    if r.findings:
        parts.append("findings:\n" + "\n".join(f"  [{f.severity}] {f.code}: {f.title}"
                                                + (f"\n      fix: {f.fix}" if f.fix else "") for f in r.findings))
    if r.ladder:
        parts.append("ladder:\n" + r.ladder)
    return _clean("\n\n".join(parts))


def to_xml(result: SuiteResult) -> ET.Element:
    failures, errors, skipped = result.count(FAIL), result.count(ERROR), result.count(SKIPPED)
    root = ET.Element("testsuites", name="siptool check", tests=str(len(result.results)),
                      failures=str(failures), errors=str(errors), time=f"{result.duration_s:.3f}")
    suite = ET.SubElement(root, "testsuite", {
        "name": result.name, "tests": str(len(result.results)), "failures": str(failures),
        "errors": str(errors), "skipped": str(skipped), "time": f"{result.duration_s:.3f}",
        "timestamp": dt.datetime.fromtimestamp(result.started, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": socket.gethostname() or "localhost", "id": "0", "package": "siptool.check"})
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="target", value=result.target)
    for r in result.results:
        case = ET.SubElement(suite, "testcase", name=r.name, classname=f"siptool.check.{r.type}",
                             time=f"{r.duration_s:.3f}")
        if r.status == FAIL:
            ET.SubElement(case, "failure", message=_clean(r.message or "failed"), type=r.type).text = details(r)
        elif r.status == ERROR:
            ET.SubElement(case, "error", message=_clean(r.message or "error"), type=r.type).text = details(r)
        elif r.status == SKIPPED:
            ET.SubElement(case, "skipped", message=_clean(r.message or "skipped"))
            if details(r):
                ET.SubElement(case, "system-out").text = details(r)
        else:
            ET.SubElement(case, "system-out").text = details(r)
    return root


def dumps(result: SuiteResult) -> str:
    root = to_xml(result)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(result: SuiteResult, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(dumps(result))
