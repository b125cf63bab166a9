"""The fast batch path (RTP in bulk per batch) gives the same report as feeding packets one by one."""

from __future__ import annotations

import pytest
from support import FIXTURES, SHARED

from siptool.analysis import session
from siptool.report.jsonout import report_dict

CAPTURES = sorted(FIXTURES.glob("*.pcap"))
if SHARED.is_dir():
    CAPTURES += [SHARED / n for n in ("voipshark_SIP-RTP-Normal_Call_two_parties.pcap", "wsc_SIP_CALL_RTP_G711.pcap",
                                      "wsc_SIP_DTMF2.cap", "rtpproxy_weird_o.pcap", "heplify_sip_ipv4_tcp.pcap")]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_batch_path_equals_packet_path(path, monkeypatch):
    fast = report_dict(session.analyze_file(path))
    monkeypatch.setattr(session, "batches_supported", lambda capture: False)
    slow = report_dict(session.analyze_file(path))
    assert fast == slow
