"""The project's own captures (fixtures/pcaps): siptool's calls equal what tshark sees, run live."""

from __future__ import annotations

import subprocess

import pytest
from support import FIXTURES, require_binary

from siptool.drivers.files import analyze_file

PCAPS = sorted(FIXTURES.glob("*.pcap"))


def tshark_calls(path) -> dict[str, dict]:
    """Per Call-ID: message count and the INVITE's final status by the reference rule
    (first 2xx if any, else the last final response), from tshark's own SIP dissection."""
    tshark = require_binary("tshark")
    out = subprocess.run(
        [tshark, "-r", str(path), "-Y", "sip", "-T", "fields", "-E", "separator=|",
         "-e", "sip.Call-ID", "-e", "sip.Status-Code", "-e", "sip.CSeq.method", "-e", "sip.Method"],
        capture_output=True, text=True, timeout=120, check=True).stdout
    calls: dict[str, dict] = {}
    for line in out.splitlines():
        call_id, status, cseq_method, method = (line.split("|") + ["", "", "", ""])[:4]
        for cid in call_id.split(","):  # several messages in one TCP segment
            c = calls.setdefault(cid, {"messages": 0, "finals": [], "first_method": None, "invite": False})
            c["messages"] += 1
            if method and c["first_method"] is None:
                c["first_method"] = method.split(",")[0]
            if "INVITE" in cseq_method:
                c["invite"] = True
            if status and "INVITE" in cseq_method and int(status.split(",")[0]) >= 200:
                c["finals"].append(int(status.split(",")[0]))
    for c in calls.values():
        c["final"] = next((s for s in c["finals"] if 200 <= s < 300), c["finals"][-1] if c["finals"] else None)
    return calls


@pytest.mark.skipif(not PCAPS, reason="fixtures/pcaps is empty")
@pytest.mark.parametrize("path", PCAPS, ids=lambda p: p.name)
def test_fixture_calls_equal_tshark(path):
    theirs = tshark_calls(path)
    report = analyze_file(path)
    ours = {c.call_id: c for c in report.calls}
    assert sorted(ours) == sorted(theirs)
    for call_id, t in theirs.items():
        if t["invite"]:
            assert ours[call_id].final_status == t["final"], call_id
        assert ours[call_id].messages == t["messages"], call_id
