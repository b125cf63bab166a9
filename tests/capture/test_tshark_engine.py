"""`--engine tshark` against the native decoder: same captures, same calls, streams and findings.

tshark (through pyshark) decodes links, tunnels, IP and defragments; siptool's Analyzer does the rest
in both engines, so any difference here is a difference between the two capture layers.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest
from support import FIXTURES, require_binary

from siptool.drivers.files import analyze_file
from siptool.drivers.files import tshark_report
from siptool.errors import SiptoolError

FIXTURE_PCAPS = sorted(FIXTURES.glob("*.pcap"))
# ../shared/pcaps: what each one exercises in the decoder
SHARED_CASES = [
    "sngrep_ipv6frag.pcap",  # Linux cooked (SLL) link, SIP over IPv6 in IPv6 fragments
    "heplify_erspan_sip_ipv4_udp.pcapng",  # pcapng, SIP mirrored through GRE (outer + inner IPv4)
    "sngrep_ipip.pcap",  # IP-in-IP tunnel, SIP over TCP
    "heplify_sip_ipv4_tcp_retrans.pcap",  # SLL, TCP retransmissions, VRRP and ARP to skip
    "pkts_fragmented_udp_sip.pcap",  # IPv4 fragments whose last piece is missing
    "heplify_sip_ipv6_udp.pcap",  # IPv6 UDP
    "zeek_sip-long-request-response-paths.pcap",  # raw IPv4 link type
    "wsc_MagicJack+_short_call.pcap",  # ICMP errors quoting UDP (not traffic), RTP
    "voipshark_SIP-RTP-Normal_Call_two_parties.pcap",  # 5,651 packets, 10 calls, RTP
]


@pytest.fixture(scope="module", autouse=True)
def tshark():
    require_binary("tshark")
    pytest.importorskip("pyshark")


def facts(report) -> dict:
    """What the two engines must agree on."""
    streams = [*report.streams, *(s for c in report.calls for s in c.streams)]
    return {
        "calls": sorted((c.call_id, c.final_status, c.messages, c.retransmissions, c.pdd_ms) for c in report.calls),
        "streams": sorted((s.src, s.dst, s.ssrc, s.packets, s.lost, s.mean_jitter_ms, s.max_jitter_ms)
                          for s in streams),
        "findings": sorted((f.code, tuple(f.frames or ())) for f in report.all_findings()),
        "packets": (report.capture.packets, report.capture.sip_packets, sum(report.capture.skipped.values())),
        "time": (report.capture.first_time, report.capture.last_time),
    }


@pytest.mark.parametrize("path", FIXTURE_PCAPS, ids=lambda p: p.name)
def test_fixture_reports_agree(path):
    native, tshark = analyze_file(path), tshark_report(path)
    assert facts(tshark) == facts(native)
    # every fixture holds a call, or (TLS without its keys, a refused WebSocket) a finding saying why
    # not: an empty == empty would prove nothing
    assert native.calls or native.findings


KEYLOG = FIXTURES / "tls_calls.keys"


def test_tls_keylog_reports_agree():
    """tls_calls.pcap with its key log: the native and tshark engines read the same decrypted SIP."""
    path = FIXTURES / "tls_calls.pcap"
    native, tshark = analyze_file(path, tls_keylog=str(KEYLOG)), tshark_report(path, tls_keylog=str(KEYLOG))
    assert facts(tshark) == facts(native)
    assert len(native.calls) == 3


def tshark_sip(path, *options) -> list[tuple[int, str, str]]:
    """(frame, method or status, Call-ID) of every SIP message tshark's own dissectors find, with its
    own TCP, WebSocket, SCTP and TLS reassembly (an independent reading of the transports)."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), *options, "-Y", "sip", "-T", "fields", "-E", "aggregator=|",
                          "-e", "frame.number", "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID"],
                         capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        frame, methods, codes, call_ids = line.split("\t")
        for what, call_id in zip((methods or codes).split("|"), call_ids.split("|")):
            found.append((int(frame), what, call_id))
    return sorted(found)


def siptool_sip(report) -> list[tuple[int, str, str]]:
    return sorted((s.frame, s.method if s.status is None else str(s.status), c.call_id)
                  for c in report.calls for s in c.ladder)


@pytest.mark.parametrize("name,transports", [("ws_calls.pcap", {"WS"}), ("sctp_calls.pcap", {"SCTP"}),
                                             ("tls_calls.pcap", {"TLS", "WSS"})])
def test_transports_read_as_tshark_reads_them(name, transports):
    """SIP over WebSocket (a fragmented INVITE, a frame over two segments), over SCTP (fragmented
    and bundled DATA chunks) and over TLS and WSS (with the key log): every message, in the frame
    that completes it, as tshark's WebSocket, SCTP and TLS dissectors find it."""
    path = FIXTURES / name
    options = ["-o", f"tls.keylog_file:{KEYLOG}", "-d", "tls.port==5061,sip"] if name.startswith("tls") else []
    report = analyze_file(path, tls_keylog=str(KEYLOG) if options else None)
    assert {s.transport for c in report.calls for s in c.ladder} == transports
    assert siptool_sip(report) == tshark_sip(path, *options) and len(siptool_sip(report)) >= 7


@pytest.mark.shared
@pytest.mark.parametrize("name", SHARED_CASES)
def test_shared_reports_agree(shared_pcaps, name):
    path = shared_pcaps / name
    native, tshark = analyze_file(path), tshark_report(path)
    assert facts(tshark) == facts(native)


def test_fragmented_invite_is_fed_once_with_its_frames():
    """frag_udp.pcap: 3 IPv4 fragments (frames 1-3) -> one INVITE, frames 1 and 2 held, as natively."""
    report = tshark_report(FIXTURES / "frag_udp.pcap")
    (call,) = report.calls
    assert call.messages == 7 and call.final_status == 200
    assert report.capture.skipped == {"IP fragment (held for reassembly)": 2}


@pytest.mark.shared
def test_incomplete_fragments_found_by_both(shared_pcaps):
    path = shared_pcaps / "pkts_fragmented_udp_sip.pcap"
    for report in (analyze_file(path), tshark_report(path)):
        found = [f.frames for f in report.findings if f.code == "ip.fragments_incomplete"]
        assert found == [[1]]


def test_vlan_tags_agree(tmp_path):
    """802.1Q and QinQ (802.1ad) tags pushed onto every frame of a TCP call: both decoders strip them."""
    from scapy.all import Dot1AD, Dot1Q, Ether, rdpcap, wrpcap

    out = tmp_path / "qinq.pcap"
    frames = []
    for pkt in rdpcap(str(FIXTURES / "call_tcp.pcap")):
        tagged = Ether(src=pkt.src, dst=pkt.dst) / Dot1AD(vlan=100) / Dot1Q(vlan=200, type=pkt.type) / pkt.payload
        tagged.time = pkt.time
        frames.append(tagged)
    wrpcap(str(out), frames)
    native, tshark = analyze_file(out), tshark_report(out)
    assert len(native.calls) == 2
    assert facts(tshark) == facts(native)


def test_vxlan_is_a_legitimate_difference(tmp_path):
    """SIP inside VXLAN (UDP 4789): tshark decodes the tunnel, the native decoder does not (it follows
    IP-in-IP, GRE and ERSPAN only), so only the tshark engine sees the call, with the inner addresses."""
    from scapy.all import IP, UDP, VXLAN, Ether, rdpcap, wrpcap

    out = tmp_path / "vxlan.pcap"
    frames = []
    for pkt in rdpcap(str(FIXTURES / "call_ok.pcap")):
        outer = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # set: no ARP lookup
                 / IP(src="192.0.2.1", dst="192.0.2.2")
                 / UDP(sport=40000, dport=4789) / VXLAN(vni=42) / pkt)
        outer.time = pkt.time
        frames.append(outer)
    wrpcap(str(out), frames)
    native, tshark = analyze_file(out), tshark_report(out)
    assert native.calls == []
    (call,) = tshark.calls
    assert call.final_status == 200 and call.messages == 7
    assert {(h.src, h.dst) for h in call.ladder} == {("127.0.0.1:5060", "127.0.0.2:5060"),
                                                     ("127.0.0.2:5060", "127.0.0.1:5060")}


def test_truncated_capture(tmp_path):
    """Cut inside a record: both engines analyse what is whole and report capture.truncated."""
    data = (FIXTURES / "media_ok.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:len(data) * 2 // 3])
    native, tshark = analyze_file(cut), tshark_report(cut)
    assert "cut short" in tshark.capture.truncated
    assert facts(tshark) == facts(native)
    assert "capture.truncated" in {f.code for f in tshark.findings}


def test_unreadable_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x02\x00\x04\x00" + bytes(16) + b"\xff" * 40)  # header, junk
    with pytest.raises(SiptoolError):
        tshark_report(bad)
    with pytest.raises(SiptoolError, match="no such file"):
        tshark_report(tmp_path / "missing.pcap")


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "siptool", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_engine_tshark_json_equals_native():
    path = FIXTURES / "example.pcap"
    native = run_cli("analyze", path, "--json")
    tshark = run_cli("analyze", path, "--json", "--engine", "tshark")
    assert tshark.returncode == native.returncode == 0, tshark.stderr
    assert json.loads(tshark.stdout) == json.loads(native.stdout)


def test_cli_bad_engine():
    r = run_cli("analyze", FIXTURES / "call_ok.pcap", "--engine", "wireshark")
    assert r.returncode == 2 and "native or tshark" in r.stderr


def test_cli_without_pyshark(tmp_path):
    """pyshark not installed: one line naming the extra, exit 2."""
    (tmp_path / "pyshark.py").write_text("raise ImportError('no pyshark here')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    r = run_cli("analyze", FIXTURES / "call_ok.pcap", "--engine", "tshark", env=env)
    assert r.returncode == 2
    assert r.stderr.strip() == "siptool: --engine tshark needs pyshark: pip install 'siptool[tshark]'"


def test_cli_without_tshark(tmp_path):
    (tmp_path / "python").symlink_to(sys.executable)
    r = run_cli("analyze", FIXTURES / "call_ok.pcap", "--engine", "tshark", env=dict(os.environ, PATH=str(tmp_path)))
    assert r.returncode == 2
    assert r.stderr.startswith("siptool: --engine tshark needs the tshark program")
    assert len(r.stderr.strip().splitlines()) == 1


def _sip(first: str, a: str, b: str, cseq: str, to_tag: str = "") -> bytes:
    return (f"{first}\r\nVia: SIP/2.0/UDP {a}:5060;branch=z9hG4bK-live1\r\nFrom: <sip:alice@{a}>;tag=1\r\n"
            f"To: <sip:bob@{b}>{to_tag}\r\nCall-ID: live-1@{a}\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def _exchange(a: str, b: str, delay: float) -> None:
    """INVITE / 180 / 486 / ACK over UDP on loopback, after `delay` seconds."""
    time.sleep(delay)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s1, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s2:
        s1.bind((a, 5060))
        s2.bind((b, 5060))
        for sock, msg, to in ((s1, _sip(f"INVITE sip:bob@{b} SIP/2.0", a, b, "1 INVITE"), b),
                              (s2, _sip("SIP/2.0 180 Ringing", a, b, "1 INVITE", ";tag=2"), a),
                              (s2, _sip("SIP/2.0 486 Busy Here", a, b, "1 INVITE", ";tag=2"), a),
                              (s1, _sip(f"ACK sip:bob@{b} SIP/2.0", a, b, "1 ACK", ";tag=2"), b)):
            sock.sendto(msg, (to, 5060))
            time.sleep(0.05)


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (CAP_NET_RAW)")
def test_live_interface():
    """-i lo --engine tshark: a call exchanged on a private 127.x address pair, filtered by BPF."""
    require_binary("dumpcap")
    net = f"127.{random.randint(100, 250)}.{random.randint(1, 250)}"
    a, b = f"{net}.5", f"{net}.6"
    sender = threading.Thread(target=_exchange, args=(a, b, 2.0))
    sender.start()
    try:
        report = tshark_report(interface="lo", bpf=f"udp and host {a}", duration=4)
    finally:
        sender.join()
    assert report.capture.packets == 4
    (call,) = report.calls
    assert (call.call_id, call.final_status, call.messages) == (f"live-1@{a}", 486, 4)


def test_works_after_asyncio_run():
    """asyncio.run() (siptool call/echo, other tests) leaves no current loop; pyshark needs one."""
    import asyncio

    async def nothing():
        return None

    asyncio.run(nothing())
    (call,) = tshark_report(FIXTURES / "call_ok.pcap").calls
    assert call.final_status == 200
