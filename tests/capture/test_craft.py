"""Crafted IP fragments of a SIP INVITE (capture/craft.py): checked by scapy, by tshark and by our own
reassembly, and sent to a real SIP peer, which answers them unless the path drops fragments."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings, strategies as st
from support import REPO, require_binary

from siptool.capture import Decoder
from siptool.capture.craft import fragment_udp, udp_datagram
from siptool.capture.writer import PcapWriter
from siptool.errors import SiptoolError

LINKTYPE_RAW = 101


def invite(host: str, port: int, sport: int, size: int = 1400, call_id: str = "frag-1") -> bytes:
    """An INVITE padded to `size` bytes (as a long SDP or many Via/Record-Route headers make one)."""
    where = f"[{host}]" if ":" in host else host
    head = (f"INVITE sip:echo@{where}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {where}:{sport};branch=z9hG4bK{call_id}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:frag@{where}>;tag=f1\r\nTo: <sip:echo@{where}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:frag@{where}:{sport}>\r\n")
    pad = size - len(head) - len("X-Pad: \r\nContent-Length: 0\r\n\r\n")
    return (head + "X-Pad: " + "p" * pad + "\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.parametrize("src,dst", [("192.0.2.1", "198.51.100.7"), ("2001:db8::1", "2001:db8::7")])
def test_fragments_reassemble_to_the_invite(src, dst, tmp_path):
    data = invite(dst, 5060, 5062)
    packets = fragment_udp(src, 5062, dst, 5060, data, size=576)
    assert len(packets) == 3 and all(len(p) <= 576 for p in packets)
    # our own decoder holds the pieces and gives back the datagram once the last one comes
    decoder = Decoder()
    out = [decoder.decode(i + 1, 1.0 + i / 1000, LINKTYPE_RAW, p) for i, p in enumerate(packets)]
    assert out[:-1] == [None, None] and out[-1].payload == data
    assert (out[-1].src, out[-1].sport, out[-1].dst, out[-1].dport) == (src, 5062, dst, 5060)
    assert out[-1].frames == [1, 2, 3]
    # scapy reads each fragment's header as we meant it and reassembles a datagram with a good checksum
    from scapy.layers.inet import IP, UDP, defragment
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6

    if ":" in src:
        frags = [IPv6(p) for p in packets]
        assert [(f[IPv6ExtHdrFragment].offset * 8, f[IPv6ExtHdrFragment].m) for f in frags] == [(0, 1), (528, 1),
                                                                                                 (1056, 0)]
        whole = IPv6(bytes(defragment6(frags)))
    else:
        frags = [IP(p) for p in packets]
        assert [(f.frag * 8, int(f.flags.MF)) for f in frags] == [(0, 1), (552, 1), (1104, 0)]
        for f in frags:  # each header checksum as scapy computes it
            again = f.copy()
            del again.chksum
            assert IP(bytes(again)).chksum == f.chksum
        whole = defragment(frags)[0]
    assert bytes(whole[UDP].payload) == data
    carried = whole[UDP].chksum
    del whole[UDP].chksum
    assert whole.__class__(bytes(whole))[UDP].chksum == carried  # over the pseudo-header (RFC 768, 8200 8.1)
    # tshark reassembles the written pcap into one SIP INVITE
    tshark = require_binary("tshark")
    path = tmp_path / "frag.pcap"
    with PcapWriter(path, LINKTYPE_RAW) as w:
        for i, p in enumerate(packets):
            w.write(1_700_000_000, i * 1000, p, len(p))
    fields = subprocess.run([tshark, "-r", str(path), "-o", "ip.defragment:TRUE", "-o", "ipv6.defragment:TRUE",
                             "-Y", "sip", "-T", "fields", "-e", "sip.Method", "-e", "udp.checksum.status",
                             "-o", "udp.check_checksum:TRUE"], capture_output=True, text=True, timeout=60)
    assert fields.stdout.split() == ["INVITE", "1"]  # one INVITE, its UDP checksum "Good"


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=4000), size=st.integers(68, 1600), v6=st.booleans(), order=st.randoms())
def test_any_cut_reassembles(payload, size, v6, order):
    """Whatever the payload and fragment size, in whatever order the fragments arrive, our reassembly
    gives back the datagram: fragments are 8-byte aligned and none is larger than asked."""
    src, dst = ("2001:db8::1", "2001:db8::7") if v6 else ("192.0.2.1", "198.51.100.7")
    size = max(size, 56) if v6 else size  # IPv6 header and fragment header take 48 of them
    packets = fragment_udp(src, 40000, dst, 5060, payload, size=size)
    assert all(len(p) <= size for p in packets)
    order.shuffle(packets)
    decoder = Decoder()
    out = [decoder.decode(i + 1, 1.0, LINKTYPE_RAW, p) for i, p in enumerate(packets)]
    assert [o for o in out if o is not None][-1].payload == payload and out.count(None) == len(packets) - 1


def test_small_datagram_is_one_packet_and_bad_sizes_are_refused():
    (one,) = fragment_udp("192.0.2.1", 5062, "198.51.100.7", 5060, b"OPTIONS", size=1500)
    assert len(one) == 20 + 8 + 7 and one[6:8] == b"\0\0"  # no MF, offset 0
    with pytest.raises(SiptoolError, match="at least 68"):
        fragment_udp("192.0.2.1", 5062, "198.51.100.7", 5060, b"x" * 100, size=60)
    with pytest.raises(SiptoolError, match="at most"):
        udp_datagram("192.0.2.1", 1, "192.0.2.2", 2, b"x" * 70000)


SENDER = textwrap.dedent('''
    import socket, sys, time
    sys.path[:0] = [{repo!r}, {repo!r} + '/tests', {tests!r}]
    from siptool.capture.craft import fragment_udp, send_raw
    from test_craft import invite

    host, port = "127.0.0.1", {port}
    answers = {{}}
    for name, size in (("whole", 1500), ("fragmented", 576)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            sport = s.getsockname()[1]
            s.settimeout(0.25)
            end = time.monotonic() + (10 if name == "whole" else 3)  # whole: until the peer is up
            attempt = 0
            while time.monotonic() < end and name not in answers:
                attempt += 1
                data = invite(host, port, sport, call_id=f"{{name}}-{{attempt}}")
                packets = fragment_udp(host, sport, host, port, data, size=size)
                assert (len(packets) > 1) == (name == "fragmented")
                send_raw(packets, host)
                try:
                    answers[name] = s.recv(65535).split(b"\\r\\n")[0].decode()
                except socket.timeout:
                    pass
    print(answers)
''')


def test_a_peer_answers_fragments_unless_the_path_drops_them(tmp_path):
    """SIPp answers the fragmented INVITE; behind a firewall that drops fragments (iptables -f) it
    answers only the unfragmented one. What a `check` of the path's fragment handling looks for."""
    if os.geteuid() != 0:
        pytest.skip("raw sockets and network namespaces need root")
    sipp, ip, iptables = require_binary("sipp"), require_binary("ip"), require_binary("iptables")
    script = tmp_path / "send.py"
    results = {}
    for blocked in (False, True):
        ns = f"siptool-{os.getpid()}-frag{int(blocked)}"
        subprocess.run([ip, "netns", "add", ns], check=True)
        uas = None
        try:
            run = [ip, "netns", "exec", ns]
            subprocess.run(run + [ip, "link", "set", "lo", "up"], check=True)
            if blocked:  # non-first fragments dropped before reassembly (INPUT sees only whole datagrams)
                subprocess.run(run + [iptables, "-t", "raw", "-A", "PREROUTING", "-f", "-j", "DROP"], check=True)
            port = 5070
            uas = subprocess.Popen(run + [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-nostdin",
                                          "-timeout", "30"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            script.write_text(SENDER.format(repo=str(REPO), tests=str(REPO / "tests" / "capture"), port=port))
            out = subprocess.run(run + [sys.executable, str(script)], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            results[blocked] = eval(out.stdout.strip())  # noqa: S307 - our own script's dict
        finally:
            if uas is not None:
                uas.kill()
                uas.wait()
            subprocess.run([ip, "netns", "del", ns])
    assert results[False].keys() == {"whole", "fragmented"}
    assert results[False]["fragmented"].startswith("SIP/2.0 1") or results[False]["fragmented"].startswith("SIP/2.0 2")
    assert results[True].keys() == {"whole"}  # the firewall ate the fragments; the peer never saw the INVITE


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_the_kernel_reassembles_what_send_raw_sends(host):
    """Sent through a raw socket from a UDP socket's own address, the fragments come back whole to the
    receiving socket, and an answer would reach the sender's socket (the source port is its own)."""
    import socket

    from siptool.capture.craft import send_raw

    if os.geteuid() != 0:
        pytest.skip("raw sockets need root")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as rx, socket.socket(family, socket.SOCK_DGRAM) as tx:
        rx.bind((host, 0))
        tx.bind((host, 0))
        rx.settimeout(5)
        port, sport = rx.getsockname()[1], tx.getsockname()[1]
        data = invite(host, port, sport, size=3000)
        packets = fragment_udp(host, sport, host, port, data, size=1280)
        assert len(packets) == 3
        send_raw(packets, host)
        got, sender = rx.recvfrom(65535)
    assert got == data and sender[1] == sport


def test_the_agent_tap_writes_its_packets_through_craft(tmp_path):
    """The agent's --pcap (agent/tap.py) builds each IP packet with craft.ip_packet: tshark finds the
    IPv4 header checksum and the UDP checksums good (IPv6 UDP must carry one, RFC 8200 8.1), and
    reads back the addresses, ports and payloads that went in."""
    from siptool.agent.tap import AgentTap

    tshark = require_binary("tshark")
    path = tmp_path / "tap.pcap"
    tap = AgentTap(str(path), analyse=False)
    sent = [("out", ("192.0.2.1", 5062), ("198.51.100.7", 5060), b"OPTIONS sip:a@b SIP/2.0\r\n\r\n", "udp"),
            ("in", ("2001:db8::1", 40000), ("2001:db8::7", 40002), b"\x80\x00" + b"r" * 170, "udp"),
            ("out", ("192.0.2.1", 40001), ("198.51.100.7", 5061), b"BYE sip:a@b SIP/2.0\r\n\r\n", "tcp")]
    for i, (direction, local, remote, data, kind) in enumerate(sent):
        tap(direction, local, remote, data, kind, 1_700_000_000.0 + i)
    tap.close()
    out = subprocess.run([tshark, "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                          "-T", "fields", "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "ipv6.src",
                          "-e", "ip.src", "-e", "udp.srcport", "-e", "tcp.srcport", "-e", "data.len", "-e", "tcp.len",
                          "-e", "udp.length"], capture_output=True, text=True, timeout=60).stdout.splitlines()
    rows = [line.split("\t") for line in out]
    assert [r[:2] for r in rows] == [["1", "1"], ["", "1"], ["1", ""]]  # 1: "Good"
    assert [r[2] or r[3] for r in rows] == ["192.0.2.1", "2001:db8::7", "192.0.2.1"]  # "in": the far end sent it
    assert [r[4] or r[5] for r in rows] == ["5062", "40002", "40001"]
    assert rows[2][7] == str(len(sent[2][3])) and rows[1][8] == str(8 + len(sent[1][3]))
