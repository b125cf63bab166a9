#!/usr/bin/env python3
"""Can live capture keep up with 200 G.711 calls (about 20,000 packets/s) on this machine?

A blaster (a separate process) sends RTP-shaped UDP (12-byte header + 160 bytes, as G.711 at 20 ms)
for N calls, two streams each, paced at 50 packets/s per stream, inside a network namespace made
for the run (its own loopback, so no other traffic is counted; `--lo` uses the host loopback with a
filter instead). Each engine captures while the blaster runs; we report packets sent, captured, kernel
drops and the capture process's CPU time per packet.

Engines:
  siptool      AF_PACKET TPACKET_V3 ring (capture/live.py) + Decoder + Analyzer with media (the real path)
  ring-only    the same ring, records only (what the capture itself costs)
  siptool-libpcap  the fallback: libpcap through ctypes (capture/pcap_live.py) + Decoder + Analyzer
  libpcap-only the same libpcap capture, records only
  scapy-libpcap-raw  scapy's libpcap socket read raw (recv_raw: no dissection), scapy's best case
  scapy        scapy.sendrecv.sniff(store=False) with a counting callback (scapy's native AF_PACKET socket)
  scapy+anal.  scapy's sniff feeding raw bytes to the same Decoder + Analyzer
  scapy-libpcap  scapy's sniff through libpcap (conf.use_pcap = True)
  tcpdump      tcpdump -w /dev/null: libpcap in C, the reference ceiling (CPU is tcpdump's)

Run as root:  python3 bench/live_capture.py [--calls 200] [--seconds 10] [--engines siptool,scapy]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DST = "127.0.0.213"  # the blaster's receiver address; capture filters on it
BASE_PORT = 30000


def blast(calls: int, seconds: float, dst: str) -> int:
    """Send 2*calls RTP streams at 50 packets/s each for `seconds`; returns packets sent."""
    streams = []
    for i in range(calls * 2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        s.bind(("127.0.0.212", BASE_PORT + 2 * i))
        streams.append((s, (dst, BASE_PORT + 2 * i), bytearray(b"\x80\x00" + bytes(10) + b"\xff" * 160), i))
    rate = 50 * len(streams)
    start = time.monotonic()
    sent = 0
    seq = 0
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # nothing listens: ICMP unreachable is fine
    del sink
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate)
        while sent < due:
            s, addr, pkt, ssrc = streams[sent % len(streams)]
            if sent % len(streams) == 0:
                seq += 1
            struct.pack_into("!HII", pkt, 2, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc)
            try:
                s.sendto(pkt, addr)
            except OSError:
                pass
            sent += 1
        time.sleep(0.001)
    return sent


def run_engine(engine: str, seconds: float, iface: str, bpf: str) -> dict:
    """Capture for `seconds` (+ a margin) with one engine; returns counts and CPU time."""
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    captured = drops = kernel = 0
    stop_at = time.monotonic() + seconds
    if engine in ("siptool", "ring-only", "siptool-libpcap", "libpcap-only"):
        from siptool.analysis.session import Analyzer, _media_tracker
        from siptool.capture import Decoder
        from siptool.capture.interface import open_interface

        decoder, analyzer = Decoder(), Analyzer(media=_media_tracker())
        decode, feed = decoder.decode, analyzer.feed
        full = engine in ("siptool", "siptool-libpcap")
        with open_interface(iface, bpf, method="libpcap" if "libpcap" in engine else "af_packet") as cap:
            n = 0
            for rec in cap:
                if rec is not None:
                    n += 1
                    if full:
                        pkt = decode(rec.frame, rec.time, rec.linktype, rec.data)
                        if pkt is not None:
                            feed(pkt)
                    if n & 0xFF:
                        continue
                if time.monotonic() >= stop_at:
                    break
            stats = cap.read_stats()
        captured, drops, kernel = n, stats.drops, stats.packets
        if full:
            from siptool.capture import CaptureInfo
            report = analyzer.finish(CaptureInfo(path="bench"))
            streams = len(report.streams) if hasattr(report, "streams") else None
        else:
            streams = None
    elif engine == "tcpdump":  # libpcap in C, writing nowhere: the ceiling of what libpcap alone does
        proc = subprocess.Popen(["tcpdump", "-i", iface, "-w", "/dev/null", "-B", "32768", bpf],
                                stderr=subprocess.PIPE, text=True)
        time.sleep(seconds + 1.0)  # as long as the Python engines, which spend about 1 s importing
        proc.terminate()
        err = proc.communicate()[1]
        import re

        num = {k: int(v) for v, k in re.findall(r"(\d+) packets? (captured|dropped by kernel)", err)}
        captured, drops, kernel, streams = num.get("captured", 0), num.get("dropped by kernel", 0), -1, None
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = cpu1.ru_utime + cpu1.ru_stime
        return {"engine": engine, "captured": captured, "kernel_drops": drops, "kernel_packets": kernel,
                "cpu_s": round(cpu, 2), "us_per_packet": round(1e6 * cpu / max(captured, 1), 1),
                "streams": None}
    else:
        from scapy.all import conf
        if engine.startswith("scapy-libpcap"):
            conf.use_pcap = True  # scapy through libpcap (L2pcapListenSocket) instead of its own socket
        from scapy.all import sniff

        count = [0]
        if engine == "scapy-libpcap-raw":  # no sniff loop and no dissection: raw bytes as they come
            sock = conf.L2listen(iface=iface, filter=bpf)
            end = time.monotonic() + seconds
            import select

            while time.monotonic() < end:
                if not select.select([sock.fileno()], [], [], 0.1)[0]:
                    continue  # libpcap's next_ex would block for good once the blaster stops
                _cls, data, _ts = sock.recv_raw()
                if data is not None:
                    count[0] += 1
            kernel, drops = sock.stats()[:2] if hasattr(sock, "stats") else (-1, -1)
            sock.close()
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            return {"engine": engine, "captured": count[0], "kernel_drops": drops, "kernel_packets": kernel,
                    "cpu_s": round(cpu, 2), "us_per_packet": round(1e6 * cpu / max(count[0], 1), 1), "streams": None}
        if engine in ("scapy", "scapy-libpcap"):
            def prn(p):
                count[0] += 1
        else:
            from siptool.analysis.session import Analyzer, _media_tracker
            from siptool.capture import Decoder

            decoder, analyzer = Decoder(), Analyzer(media=_media_tracker())

            def prn(p):
                count[0] += 1
                pkt = decoder.decode(count[0], float(p.time), 1, bytes(p))
                if pkt is not None:
                    analyzer.feed(pkt)
        sock = conf.L2listen(iface=iface, filter=bpf)
        sniff(opened_socket=sock, prn=prn, store=False, timeout=seconds)
        captured = count[0]
        try:  # scapy's socket is an AF_PACKET socket too: read its kernel counters
            if hasattr(sock, "stats"):  # libpcap: pcap_stats
                kernel, drops = sock.stats()[:2]
            else:
                kernel, drops = struct.unpack("=II", sock.ins.getsockopt(263, 6, 8))
        except Exception:
            kernel = drops = -1
        sock.close()
        streams = None
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {"engine": engine, "captured": captured, "kernel_drops": drops, "kernel_packets": kernel,
            "cpu_s": round(cpu, 2), "us_per_packet": round(1e6 * cpu / max(captured, 1), 1), "streams": streams}


def trial(engine: str, calls: int, seconds: float, netns: str | None) -> dict:
    """One engine against one blast: capture in a child process, blast from another."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    iface, bpf = "lo", f"udp and dst host {DST}"
    cap = subprocess.Popen(prefix + [sys.executable, __file__, "--inner-capture", engine, "--seconds",
                                     str(seconds + 2), "--iface", iface, "--bpf", bpf],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)  # let it open the socket
    sent = int(subprocess.run(prefix + [sys.executable, __file__, "--inner-blast", "--calls", str(calls),
                                         "--seconds", str(seconds)], capture_output=True, text=True,
                              check=True).stdout)
    out, _ = cap.communicate(timeout=seconds + 60)
    result = json.loads(out)
    result["sent"] = sent
    result["offered_pps"] = round(sent / seconds)
    result["lost"] = sent - result["captured"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--engines", default="siptool,ring-only,siptool-libpcap,libpcap-only,scapy,scapy+analysis,"
                                         "scapy-libpcap,scapy-libpcap-raw,tcpdump")
    ap.add_argument("--lo", action="store_true", help="use the host loopback instead of a new netns")
    ap.add_argument("--inner-capture")
    ap.add_argument("--inner-blast", action="store_true")
    ap.add_argument("--iface", default="lo")
    ap.add_argument("--bpf", default=f"udp and dst host {DST}")
    args = ap.parse_args()
    if args.inner_blast:
        print(blast(args.calls, args.seconds, DST))
        return
    if args.inner_capture:
        print(json.dumps(run_engine(args.inner_capture, args.seconds, args.iface, args.bpf)))
        return
    if os.geteuid() != 0:
        sys.exit("run as root (raw capture and network namespaces)")
    netns = None
    if not args.lo:
        netns = f"siptool-bench-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", netns], check=True)
        subprocess.run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], check=True)
    try:
        print(f"{args.calls} calls x 2 streams x 50 pps = {args.calls * 100} packets/s for {args.seconds:.0f} s, "
              f"on {'a new netns' if netns else 'the host'} loopback, {os.cpu_count()} CPUs")
        print(f"{'engine':16} {'sent':>8} {'captured':>9} {'lost':>6} {'k.drops':>8} {'cpu s':>6} {'us/pkt':>7} {'streams':>7}")
        for engine in args.engines.split(","):
            r = trial(engine, args.calls, args.seconds, netns)
            print(f"{engine:16} {r['sent']:8} {r['captured']:9} {r['lost']:6} {r['kernel_drops']:8} "
                  f"{r['cpu_s']:6} {r['us_per_packet']:7} {r['streams'] if r['streams'] is not None else '-':>7}",
                  flush=True)
    finally:
        if netns:
            subprocess.run(["ip", "netns", "del", netns])


if __name__ == "__main__":
    main()
