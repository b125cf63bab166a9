"""HEP in a live run (drivers/hep.py): many agents into one LiveRun over real sockets (each agent's
calls analysed apart, a pcap rebuilt from what HEP carries), datagrams the kernel dropped, a packet
the analysis fails on, and a captured source's SIP sent on as HEP."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from drivers.test_live_driver import Replay
from interop.peers import free_port
from support import FIXTURES

from siptool.analysis.points import CapturePoints
from siptool.analysis.session import Analyzer, _media_tracker
from siptool.capture import open_capture
from siptool.capture.hep import HepReceiver, encode, from_packet
from siptool.capture.hep_listen import HepListener
from siptool.capture.hep_send import HepSender
from siptool.drivers.files import analyze_file
from siptool.drivers.hep import HepForward, HepSource
from siptool.drivers.live import LiveRun
from siptool.sip.message import looks_like_sip


def sip_of(name):
    with open_capture(FIXTURES / name) as source:
        return [p for p in source if p.payload and looks_like_sip(p.payload)]


def facts(call):
    """What a call is, whichever way its packets came (frame numbers aside)."""
    return (call.call_id, call.kind, call.final_status, call.state, call.messages, call.retransmissions,
            call.pdd_ms, call.duration_s, call.transport, [(s.time, s.src, s.dst, s.label) for s in call.ladder])


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def until(predicate, timeout=20.0):
    """A stop condition for HepListener.run that also gives up after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    return lambda: predicate() or time.monotonic() > deadline


def running(live):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("report", live.run()))
    thread.start()
    return thread, out


def test_two_agents_into_one_live_run_and_a_pcap(tmp_path):
    """An SBC sends a capture's UDP calls as HEP over UDP, a proxy another capture's TCP call over TCP,
    with the collector's key: each agent's calls are the file's, at its capture point; the pcap the
    collector wrote holds both, and analyze finds the same calls in it."""
    udp, tcp = sip_of("calls_mixed.pcap"), sip_of("call_tcp.pcap")
    port = free_port()
    pcap = tmp_path / "hep.pcap"
    source = HepSource(f"127.0.0.1:{port}", b"k3y", str(pcap))
    assert source.label == f"HEP on udp+tcp 127.0.0.1:{port}"
    live = LiveRun(source, CapturePoints())
    thread, out = running(live)
    try:
        with HepSender(f"udp:127.0.0.1:{port}", agent_name="sbc", auth_key=b"k3y") as sbc, \
                HepSender(f"tcp:127.0.0.1:{port}", agent_id=7, auth_key=b"k3y") as proxy:
            assert all(sbc.send(p) for p in udp) and all(proxy.send(p) for p in tcp)
            wait_for(lambda: source.listener.receiver.messages == len(udp) + len(tcp))
        wait_for(lambda: live.snapshot().sip_packets == len(udp) + len(tcp))
        board = live.snapshot()  # what the live board shows: every agent's calls
        assert board.failed_total == 3 and board.packets == len(udp) + len(tcp) and board.kernel_drops == 0
    finally:
        live.stop()
        thread.join(20)
    report = out["report"]
    assert report.capture.file == f"hep:127.0.0.1:{port}" and report.capture.format == "hep"
    for point, name in (("sbc", "calls_mixed.pcap"), ("7", "call_tcp.pcap")):
        mine = [c for c in report.calls if c.capture_point == point]
        assert [facts(c) for c in mine] == [facts(c) for c in analyze_file(FIXTURES / name).calls], point
    assert not [f for f in report.findings if f.code.startswith("hep.")]
    from siptool.report.terminal import sources_lines

    grouping, *points = sources_lines(report)  # what the calls table's "at" column ([1], [2]) stands for
    assert grouping == "[dim]2 HEP capture agent(s), each analysed apart[/]"
    assert sorted(points) == ["  [1] 7", "  [2] sbc"]  # in the order of their first calls
    back = analyze_file(pcap)
    assert back.capture.link_types == ["rawip"] and back.capture.packets == len(udp) + len(tcp)
    assert sorted(facts(c) for c in back.calls) == sorted(facts(c) for c in report.calls)


def test_datagrams_the_kernel_dropped_are_counted():
    """A burst into a full receive buffer: the socket's drop count plus the messages read is what was sent."""
    packet = encode(from_packet(sip_of("call_ok.pcap")[0], agent_id=1))
    with HepListener(f"udp:127.0.0.1:{free_port()}", rcvbuf=4096) as listener:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(500):  # nobody reads yet: the small buffer overflows
                s.sendto(packet, listener.address)
        got = []
        listener.run(got.append, until(lambda: len(got) + listener.drops >= 500))
    assert listener.drops > 0 and len(got) + listener.drops == 500
    from siptool.analysis.points import received

    finding = {f.code: f for f in received(listener.receiver, drops=listener.drops)[3]}["hep.dropped"]
    assert finding.evidence == {"received": len(got), "kernel_drops": listener.drops}


def test_a_sink_that_raises_is_counted_and_the_listener_goes_on():
    packets = sip_of("calls_mixed.pcap")
    with HepListener(f"udp:127.0.0.1:{free_port()}") as listener:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for p in packets:
                s.sendto(encode(from_packet(p, agent_id=1)), listener.address)
        got = []

        def sink(pkt):
            if pkt.frame == 3:
                raise RuntimeError("sink bug")
            got.append(pkt)
        listener.run(sink, until(lambda: len(got) + listener.sink_errors >= len(packets)))
    assert listener.sink_errors == 1 and listener.first_sink_error == "RuntimeError: sink bug"
    assert len(got) == len(packets) - 1


def test_a_packet_the_analysis_fails_on_is_left_out_and_reported():
    """A bug must not end a long-lived live run: that packet is counted, the run goes on, the report
    says so (capture.unanalysed) with its frame."""

    class Buggy(Analyzer):
        def feed(self, pkt):
            if pkt.frame == 5:
                raise ValueError("a bug")
            super().feed(pkt)

    report = LiveRun(Replay(FIXTURES / "calls_mixed.pcap"), Buggy(media=_media_tracker())).run()
    (found,) = [f for f in report.findings if f.code == "capture.unanalysed"]
    assert found.frames == [5] and found.evidence == {"packets": 1, "errors": ["ValueError: a bug"]}
    assert len([c for c in report.calls if c.kind == "call"]) == 8  # everything else analysed


@pytest.mark.parametrize("name", ["media_ok.pcap", "call_tcp.pcap"])
def test_forward_sends_the_sip_a_source_yields(name):
    """capture --hep's wrapper: the SIP of the packets a source yields goes out as HEP (RTP does not),
    the analysis still reads every packet."""
    with HepListener(f"udp:127.0.0.1:{free_port()}") as listener:
        sender = HepSender(f"udp:127.0.0.1:{listener.address[1]}", agent_id=9)
        report = LiveRun(HepForward(Replay(FIXTURES / name), sender), Analyzer(media=_media_tracker())).run()
        want = [p for p in open_capture(FIXTURES / name) if p.payload and p.transport != "udp"
                or looks_like_sip(p.payload)]
        got = []
        listener.run(got.append, until(lambda: len(got) >= len(want)))
    assert sender.sent == len(want) and sender.failed == 0
    assert [(p.payload, p.src, p.sport, p.point) for p in got] == [(p.payload, p.src, p.sport, "9") for p in want]
    assert report.capture.packets == analyze_file(FIXTURES / name).capture.packets
    assert not [f for f in report.findings if f.code == "hep.unsent"]


def test_forward_to_nobody_says_what_was_not_sent():
    sender = HepSender(f"tcp:127.0.0.1:{free_port()}")  # nothing listens
    report = LiveRun(HepForward(Replay(FIXTURES / "call_ok.pcap"), sender), Analyzer()).run()
    (unsent,) = [f for f in report.findings if f.code == "hep.unsent"]
    assert unsent.evidence["failed"] == len(sip_of("call_ok.pcap")) and unsent.evidence["sent"] == 0
    assert unsent.severity == "warning" and len(report.calls) == 1


def test_a_wrong_key_is_refused_and_said():
    port = free_port()
    source = HepSource(f"udp:127.0.0.1:{port}", b"right")
    live = LiveRun(source, CapturePoints())
    thread, out = running(live)
    try:
        with HepSender(f"udp:127.0.0.1:{port}", agent_id=1, auth_key=b"wrong") as sender:
            for p in sip_of("call_ok.pcap"):
                sender.send(p)
            wait_for(lambda: source.listener.receiver.refused == sender.sent)
    finally:
        live.stop()
        thread.join(20)
    report = out["report"]
    assert report.calls == [] and [f.code for f in report.findings] == ["hep.auth_refused"]
    assert "right" not in str(report.findings[0].evidence) + report.findings[0].explanation
