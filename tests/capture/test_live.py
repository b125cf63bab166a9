"""Live capture on loopback while SIPp places calls: the live report equals `analyze` of the written pcap.

Each test uses its own 127.0.0.x address and a BPF filter on it, so parallel traffic on `lo` is not seen.
Needs root (AF_PACKET); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from support import REPO, require_binary

from siptool.capture.reader import Capture
from siptool.drivers.files import analyze_file
from siptool.errors import SiptoolError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (CAP_NET_RAW)")


def free_address() -> tuple[str, int]:
    """A 127.0.0.x address (x random) with a free UDP port pair on it."""
    for _ in range(50):
        host = f"127.0.{random.randint(1, 250)}.{random.randint(2, 250)}"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port < 65000:
            return host, port
    raise RuntimeError("no free port")


def live_run(iface: str, bpf: str, method: str = "auto", write: str | None = None, duration: float | None = None,
             buffer_mb: int = 32, observers=()):
    """A LiveRun on an interface (drivers/live.py) and its source."""
    from siptool.analysis.session import Analyzer, _media_tracker
    from siptool.drivers.live import InterfaceSource, LiveRun

    source = InterfaceSource(iface, bpf, buffer_mb=buffer_mb, write=write, method=method)
    return LiveRun(source, Analyzer(media=_media_tracker()), observers, duration), source


def run_in_thread(run):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("report", run.run()))
    thread.start()
    return thread, out


def streams(report) -> list:
    """Per-stream figures of every stream, in and out of calls."""
    every = list(report.streams) + [s for c in report.calls for s in c.streams]
    return sorted((s.src, s.dst, s.ssrc, s.packets, s.lost, s.codec, s.max_jitter_ms, s.mos, s.call_id)
                  for s in every)


def summary(report) -> dict:
    return {
        "calls": sorted((c.call_id, c.final_status, c.state, c.messages, c.retransmissions,
                         tuple(sorted(c.requests.items())), tuple(sorted(c.responses.items())),
                         len(c.ladder)) for c in report.calls),
        "sip_packets": report.capture.sip_packets,
        "packets": report.capture.packets,
        "methods": report.metrics.methods,
        "final_codes": report.metrics.final_codes,
        "findings": sorted(f.code for f in report.all_findings()),
    }


def sipp_pcap() -> str:
    path = "/usr/share/sip-tester/g711a.pcap"
    if not os.path.exists(path):
        pytest.skip("SIPp's g711a.pcap is not installed")
    return path


@pytest.fixture
def sipp_calls(tmp_path):
    """start(n, uas_code) places n calls from a SIPp uac to a SIPp uas on a fresh loopback address."""
    sipp = require_binary("sipp")
    procs = []

    def start(n: int = 3, media: bool = False):
        host, port = free_address()
        echo = ["-rtp_echo", "-mp", str(port + 10)] if media else []
        uas = subprocess.Popen([sipp, "-sn", "uas", "-i", host, "-p", str(port), "-m", str(n), "-nostdin",
                                "-timeout", "30"] + echo, cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        scenario = "uac"
        if media:  # SIPp's uac_pcap plays 8 s of G.711 A-law and a DTMF event from ./pcap/
            os.symlink(os.path.dirname(sipp_pcap()), tmp_path / "pcap")
            scenario = "uac_pcap"
        procs.append(uas)

        def place():
            uac = subprocess.Popen([sipp, "-sn", scenario, f"{host}:{port}", "-i", host, "-p", str(port + 1),
                                    "-m", str(n), "-r", "10", "-d", "200", "-nostdin", "-timeout", "30"],
                                   cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(uac)
            assert uac.wait(timeout=40) == 0
            uas.wait(timeout=10)
        return host, place

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.parametrize("method", ["af_packet", "libpcap"])
def test_live_report_equals_analyze_of_written_pcap(sipp_calls, tmp_path, method):
    from siptool.report.live import board

    host, place = sipp_calls(2, media=True)
    pcap = tmp_path / "live.pcap"
    snapshots = []
    run, source = live_run("lo", f"host {host}", method, write=str(pcap), observers=[Recorder(snapshots)])
    assert source.cap.method == method
    thread, out = run_in_thread(run)
    place()
    time.sleep(0.3)  # the last BYE/200 reach the ring (blocks retire after 50 ms)
    view = board(run.snapshot())  # the live board renders a snapshot of the running state
    run.stop()
    thread.join(timeout=10)
    live = out["report"]
    assert pcap.exists() and not (tmp_path / "live.pcap.part").exists()
    offline = analyze_file(pcap)
    assert summary(live) == summary(offline)
    calls = [c for c in live.calls if c.kind == "call"]
    assert len(calls) == 2 and all(c.final_status == 200 and c.state == "completed" for c in calls)
    assert live.metrics.methods == {"INVITE": 2, "ACK": 2, "BYE": 2}
    assert live.capture.packets > 2 * 8 * 50  # 8 s of 20 ms RTP per call (and its echo)
    assert streams(live) == streams(offline)
    assert live.capture.file == "live:lo" and live.capture.link_types == ["ether"]
    assert source.cap.stats.drops == 0 and source.cap.stats.packets == live.capture.packets
    import io

    from rich.console import Console

    screen = Console(file=io.StringIO(), width=160)
    screen.print(view)
    text = screen.file.getvalue()
    assert "active calls" in text and "recent failures" in text and f"host {host}" in text
    assert snapshots and snapshots[0].packets == 0 and snapshots[-1] is not None
    assert Recorder.finished[-1] is live


class Recorder:
    """An observer of a live run that keeps what it is given."""

    finished: list = []

    def __init__(self, into: list) -> None:
        self.update = into.append

    def finish(self, report) -> None:
        Recorder.finished.append(report)


def test_cli_json_and_sigterm_closes_the_pcap(sipp_calls, tmp_path):
    host, place = sipp_calls(2)
    pcap = tmp_path / "cli.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "siptool", "capture", "-i", "lo", "-f", f"host {host}",
                             "--write", str(pcap), "--json"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (tmp_path / "cli.pcap.part").exists())
        place()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = json.loads(out)
    finals = sorted(c["final_status"] for c in report["calls"] if c["kind"] == "call")
    assert finals == [200, 200]
    assert pcap.exists() and not (tmp_path / "cli.pcap.part").exists()
    offline = analyze_file(pcap)
    assert sorted(c.call_id for c in offline.calls) == sorted(c["call_id"] for c in report["calls"])
    assert offline.capture.packets == report["capture"]["packets"] == 2 * 6


def test_killed_capture_leaves_a_readable_part(tmp_path):
    host, port = free_address()
    pcap = tmp_path / "k.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "siptool", "capture", "-i", "lo", "-f",
                             f"udp and dst host {host}", "--write", str(pcap), "-q"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        part = tmp_path / "k.pcap.part"
        _wait_for(part.exists)
        time.sleep(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(300):
                s.sendto(b"datagram %d" % i, (host, port))
        # the writer flushes at least once a second: wait until it did, then kill without warning
        _wait_for(lambda: part.stat().st_size > 24 + 299 * 16)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not pcap.exists()
    with Capture(part) as cap:
        n = sum(1 for _ in cap)
        assert cap.info.truncated is None
    assert n == 300


def test_without_privilege_says_how_to_fix(tmp_path):
    setpriv = require_binary("setpriv")
    # root without CAP_NET_RAW in its bounding set: what an unprivileged user meets
    proc = subprocess.run([setpriv, "--bounding-set=-net_raw", "--inh-caps=-net_raw", sys.executable, "-m",
                           "siptool", "capture", "-i", "lo", "--duration", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "CAP_NET_RAW" in proc.stderr and "setcap" in proc.stderr and "sudo" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_interface_and_filter():
    from siptool.capture.live import LiveCapture, compile_bpf

    with pytest.raises(SiptoolError, match="no interface named"):
        LiveCapture("nosuchif0")
    with pytest.raises(SiptoolError, match="bad capture filter"):
        compile_bpf("udp port banana")
    assert len(compile_bpf("udp port 5060")) % 8 == 0


@pytest.mark.parametrize("method", ["af_packet", "libpcap"])
def test_duration_stops_and_kernel_counts(tmp_path, method):
    host, port = free_address()
    run, source = live_run("lo", f"udp and dst host {host}", method, duration=1.0)
    thread, out = run_in_thread(run)
    time.sleep(0.2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(500):
            s.sendto(b"x" * 100, (host, port))
    thread.join(timeout=15)
    assert not thread.is_alive()
    report = out["report"]
    assert report.capture.packets == 500 and source.cap.stats.packets == 500
    assert report.capture.skipped == {} or sum(report.capture.skipped.values()) == 0


def _wait_for(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def test_analyze_dash_i_is_the_same_live_path(sipp_calls):
    host, place = sipp_calls(2)
    proc = subprocess.Popen([sys.executable, "-m", "siptool", "analyze", "-i", "lo", "--bpf", f"host {host}",
                             "--json", "--filter", "200"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _has_packet_socket(proc.pid))  # capturing from here on
        place()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # Ctrl-C ends the capture and prints the report
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert report["capture"]["file"] == "live:lo"
    assert sorted(c["final_status"] for c in report["calls"]) == [200, 200]


def _has_packet_socket(pid: int) -> bool:
    """True once the process holds an AF_PACKET socket (listed in /proc/net/packet) bound to an interface."""
    with open("/proc/net/packet") as f:
        rows = [line.split() for line in f.read().splitlines()[1:]]
    inodes = {row[-1] for row in rows if len(row) >= 9 and row[4] != "0"}  # Iface column: bound
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def test_kernel_drops_are_counted_and_reported():
    """A 2 MB ring that nobody reads while 6 MB arrive: the kernel drops, and the report says so."""
    host, port = free_address()
    run, source = live_run("lo", f"udp and dst host {host}", "af_packet", duration=1.0, buffer_mb=2)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(5000):
            s.sendto(struct.pack("!I", i) + bytes(1196), (host, port))
    report = run.run()
    stats = source.cap.stats
    assert stats.drops > 0 and stats.packets == 5000
    assert report.capture.packets + stats.drops == 5000
    found = [f for f in report.findings if f.code == "capture.kernel_drops"]
    assert len(found) == 1 and found[0].evidence["kernel_drops"] == stats.drops


def _capture_datagrams(method: str, n: int = 200) -> tuple[object, object]:
    """A 2 s live run with `method` on a fresh loopback address while n datagrams go to it."""
    host, port = free_address()
    run, source = live_run("lo", f"udp and dst host {host}", method, duration=2.0)
    thread, out = run_in_thread(run)
    time.sleep(0.3)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i in range(n):
            s.sendto(b"x%d" % i, (host, port))
    thread.join(timeout=20)
    return out["report"], source


def test_auto_takes_libpcap_where_the_kernel_refuses_a_ring(monkeypatch):
    """A kernel without TPACKET_V3 (an old one, a sandbox) refuses PACKET_VERSION: the ring is not
    to be had, and `auto` captures through libpcap instead; `af_packet` says why it cannot."""
    from siptool.capture.interface import open_interface
    from siptool.capture.live import LiveCapture, RingUnavailable

    monkeypatch.setattr(LiveCapture, "version", 99)  # no kernel knows it: EINVAL, as without V3
    with pytest.raises(RingUnavailable, match="no TPACKET_V3 ring"):
        open_interface("lo", method="af_packet")
    report, source = _capture_datagrams("auto")
    assert source.cap.method == "libpcap"
    assert report.capture.packets == 200 and source.cap.stats.drops == 0


def test_without_af_packet_auto_takes_libpcap(monkeypatch):
    """Where Python has no AF_PACKET (macOS, the BSDs), `auto` is libpcap."""
    monkeypatch.delattr(socket, "AF_PACKET")
    report, source = _capture_datagrams("auto")
    assert source.cap.method == "libpcap" and report.capture.packets == 200


def test_no_ring_and_no_libpcap_says_what_to_do(monkeypatch):
    from siptool.capture import interface

    monkeypatch.delattr(socket, "AF_PACKET")
    monkeypatch.setattr(interface, "load_libpcap", lambda: None)
    with pytest.raises(SiptoolError, match="libpcap is not installed.*tcpdump -w"):
        interface.open_interface("lo")


def test_cli_method_libpcap_and_a_bad_method(tmp_path):
    host, port = free_address()
    pcap = tmp_path / "p.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "siptool", "capture", "-i", "lo", "-f", f"udp and dst host {host}",
                             "--method", "libpcap", "--duration", "3", "--json", "-w", str(pcap)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the file is begun once the filter is set (libpcap drops what it held when it sets one)
        _wait_for((tmp_path / "p.pcap.part").exists)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(100):
                s.sendto(b"y%d" % i, (host, port))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["capture"]["packets"] == 100 == analyze_file(pcap).capture.packets
    bad = subprocess.run([sys.executable, "-m", "siptool", "capture", "-i", "lo", "--method", "bpf"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "af_packet" in bad.stderr and "Traceback" not in bad.stderr
