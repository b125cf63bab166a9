"""siptool's call list against tshark's on every capture in ../shared/pcaps (skipped when absent).

tshark's reference groups SIP by Call-ID, as siptool does. For each Call-ID the final status must
equal tshark's `invite_final_response_code` when the Call-ID carried an INVITE (siptool reports an
INVITE session by its INVITE's outcome, even when a REGISTER shared the Call-ID), else tshark's
`final_response_code` for the first request method.
"""

from __future__ import annotations

import pytest

from siptool.analysis.session import analyze_file
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
    ours = {c.call_id: c for c in report.calls}
    theirs = {d["call_id"]: d for d in ref["sip_dialogs"]}
    assert sorted(ours) == sorted(theirs)
    for call_id, d in theirs.items():
        expected = d["invite_final_response_code"] if "INVITE" in d["request_counts"] or any(
            r.endswith(" INVITE") for r in d["responses"]) else d["final_response_code"]
        call = ours[call_id]
        assert call.final_status == expected, call_id
        assert call.messages == d["sip_message_count"], call_id
        assert call.retransmissions == d["retransmissions"], call_id
        first_method = d["first_request_method"]
        assert call.method == first_method, call_id
