"""The fast batch path (RTP in bulk per batch) gives the same report as feeding packets one by one."""

from __future__ import annotations

import pytest
from support import FIXTURES, SHARED

from siptool.drivers import files
from siptool.report.jsonout import report_dict

CAPTURES = sorted(FIXTURES.glob("*.pcap"))
if SHARED.is_dir():
    CAPTURES += [SHARED / n for n in ("voipshark_SIP-RTP-Normal_Call_two_parties.pcap", "wsc_SIP_CALL_RTP_G711.pcap",
                                      "wsc_SIP_DTMF2.cap", "rtpproxy_weird_o.pcap", "heplify_sip_ipv4_tcp.pcap")]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_batch_path_equals_packet_path(path, monkeypatch):
    fast = report_dict(files.analyze_file(path))
    monkeypatch.setattr(files, "batches_supported", lambda capture: False)
    slow = report_dict(files.analyze_file(path))
    assert fast == slow


@pytest.mark.parametrize("path", [FIXTURES / n for n in ("calls_mixed.pcap", "media_ok.pcap", "media_impaired.pcap")],
                         ids=lambda p: p.name)
def test_flows_split_in_slices_change_nothing(path, monkeypatch):
    """The batch's flow grouping may split a flow in several slices (two flows whose hashes collide
    interleave): worst case, no grouping at all (capture order). The report stays the same."""
    import numpy as np

    from siptool.analysis import media

    grouped = report_dict(files.analyze_file(path))
    monkeypatch.setattr(media, "_flow_order", lambda a_end, b_end: np.arange(len(a_end)))
    assert report_dict(files.analyze_file(path)) == grouped


def test_uncommon_shapes_take_the_general_path(tmp_path, monkeypatch):
    """Records outside the common Ethernet/IPv4/UDP/RTP shape: 802.1Q tags, IPv4 options, RTCP shorter
    than an RTP header, a snaplen-cut record, a short last record at the very end of the file."""
    from scapy.all import IP, UDP, Dot1Q, Ether, IPOption_NOP, Raw, rdpcap, wrpcap

    frames = []
    for i, pkt in enumerate(rdpcap(str(FIXTURES / "media_ok.pcap"))):
        when = pkt.time
        if i % 3 == 1:
            pkt = Ether(src=pkt.src, dst=pkt.dst) / Dot1Q(vlan=7, type=pkt.type) / pkt.payload
        elif i % 5 == 2 and IP in pkt:
            ip = pkt[IP].copy()
            ip.options = [IPOption_NOP()] * 4
            del ip.ihl, ip.len, ip.chksum
            pkt = Ether(src=pkt.src, dst=pkt.dst) / ip
        pkt.time = when
        frames.append(pkt)
    last = float(frames[-1].time)
    short_rr = bytes([0x80, 201, 0, 1]) + (0x1234).to_bytes(4, "big")  # RTCP RR, no report blocks
    tail = Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=7001, dport=7003) / Raw(short_rr)
    tail.time = last + 0.01
    frames.append(tail)
    out = tmp_path / "shapes.pcap"
    wrpcap(str(out), frames)
    fast = report_dict(files.analyze_file(out))
    monkeypatch.setattr(files, "batches_supported", lambda capture: False)
    slow = report_dict(files.analyze_file(out))
    assert fast == slow
    assert sum(s["packets"] for c in fast["calls"] for s in c["streams"]) == 400  # every RTP packet of media_ok


def test_prefetch_hands_over_errors_and_stops_with_the_consumer():
    import threading

    from siptool.errors import SiptoolError

    def failing():
        yield 1
        raise SiptoolError("damaged: frame 2")

    got = []
    with pytest.raises(SiptoolError, match="frame 2"):
        for item in files._prefetched(failing()):
            got.append(item)
    assert got == [1]

    produced = []

    def endless():
        n = 0
        while True:
            n += 1
            produced.append(n)
            yield n

    for item in files._prefetched(endless()):
        if item == 3:
            break
    assert not any(t.name == "siptool-read" for t in threading.enumerate())  # the reader has ended
    assert len(produced) <= 5  # at most one ready and one in hand beyond what was taken
