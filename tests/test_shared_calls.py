"""siptool's call list against tshark's on every capture in ../shared/pcaps (skipped when absent).

tshark's reference groups SIP by Call-ID. siptool keeps a standalone exchange (REGISTER, OPTIONS...)
apart from an INVITE session that shares its Call-ID, so its records are summed per Call-ID here:
every message and retransmission must be counted once. For each Call-ID the final status must equal
tshark's `invite_final_response_code` when the Call-ID carried an INVITE (the INVITE session's), else
tshark's `final_response_code` for the first request method; the first method is the earliest
record's.
"""

from __future__ import annotations

import pytest

from siptool.drivers.files import analyze_file
from siptool.errors import SiptoolError

from support import SHARED, load_reference, shared_references

REFS = shared_references()
# Files tshark reads that siptool refuses on purpose, with the reason.
REFUSED = {
    # Microsoft NetMon 2.x, not pcap/pcapng: siptool reads pcap, pcapng and gzip of either and says
    # how to convert (editcap -F pcap); tshark reads NetMon natively. A clear error is the contract.
    "protos_c07-sip-r2.cap": "Network Monitor",
}


@pytest.mark.skipif(not REFS, reason="../shared/pcaps is not present")
@pytest.mark.parametrize("ref_path", REFS, ids=lambda p: p.name[:-5])
def test_calls_match_tshark(ref_path):
    ref = load_reference(ref_path)
    name = ref["file"]
    path = SHARED / name
    if ref.get("error") or name in REFUSED:
        with pytest.raises(SiptoolError) as err:
            analyze_file(path)
        assert "\n" not in str(err.value)
        if name in REFUSED:
            assert REFUSED[name] in str(err.value)
        return
    report = analyze_file(path)
    assert report.capture.packets == ref["packet_count"]
    ours: dict[str, list] = {}
    for c in report.calls:
        ours.setdefault(c.call_id, []).append(c)
    theirs = {d["call_id"]: d for d in ref["sip_dialogs"]}
    assert sorted(ours) == sorted(theirs)
    for call_id, d in theirs.items():
        records = sorted(ours[call_id], key=lambda c: c.ladder[0].frame)
        invite = d["invite_final_response_code"] if "INVITE" in d["request_counts"] or any(
            r.endswith(" INVITE") for r in d["responses"]) else None
        if invite is not None or any(c.kind == "call" for c in records):
            (call,) = [c for c in records if c.kind == "call"]
            assert call.final_status == invite, call_id
        else:
            assert len(records) == 1, call_id
            assert records[0].final_status == d["final_response_code"], call_id
        assert sum(c.messages for c in records) == d["sip_message_count"], call_id
        assert sum(c.retransmissions for c in records) == d["retransmissions"], call_id
        assert records[0].method == d["first_request_method"], call_id
        if len(records) > 1:  # a REGISTER and an INVITE on one Call-ID: each record has its own parties
            (call,) = [c for c in records if c.kind == "call"]
            assert call.method == "INVITE" and call.requests.get("REGISTER") is None, call_id
