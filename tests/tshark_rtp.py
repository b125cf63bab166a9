"""Test oracle: tshark 4.0's per-stream RTP analysis (`-z rtp,streams`), one packet at a time.

A plain transcription of Wireshark 4.0 ui/tap-rtp-analysis.c rtppacket_analyse as tshark 4.0.17
behaves (checked live on crafted streams in tests/rtp/test_tshark_rules.py), kept slow and obvious
so that the vectorised siptool.rtp.stats.finish_many can be tested against it on any stream:

- in time sequence: the 32-bit timestamp is less than 2^31 ticks after the stream's FIRST packet's
  (modulo 2^32); packets in between do not matter (a late packet is in time);
- only in-time packets update the jitter, the delta and the reference (arrival time, nominal time);
- nominal time = (timestamp - first timestamp) mod 2^32 / (rate // 1000) ms, and its reference
  (lastnominaltime) moves only on packets of a known, non-zero rate;
- regular packets (not the first, no marker, not comfort noise nor after it, in time) count for
  min/max/mean delta, and when their rate is known for min/max/mean jitter; means are tshark's
  running mean over the packet index.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

STATIC_RATES = {0: 8000, 1: 8000, 2: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000,
                10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025, 17: 22050,
                18: 8000, 19: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000, 33: 90000, 34: 90000}


@dataclass
class Figures:
    packets: int = 0
    lost: int = 0
    min_delta_ms: float = -1.0  # tshark prints -1 when no packet counted
    mean_delta_ms: float = 0.0
    max_delta_ms: float = 0.0
    min_jitter_ms: float = -1.0
    mean_jitter_ms: float = 0.0
    max_jitter_ms: float = 0.0
    wrong_timestamps: int = 0


def analyse(packets, rates: dict[int, int] | None = None) -> Figures:
    """packets: (time_s, seq, ts, pt, marker) in arrival order; rates: dynamic payload type -> clock
    rate (0 for telephone-event); other dynamic types have no known rate (0)."""
    rates = rates or {}
    f = Figures()
    first = True
    for when, seq, ts, pt, marker in packets:
        now = when * 1000.0
        rate = STATIC_RATES.get(pt, 0) if pt < 96 else rates.get(pt, 0)
        if first:
            first = False
            start_seq = stop_seq = seq
            first_ts, ref_time, last_nominal, prev_pt = ts, now, 0.0, pt
            delta = jitter = 0.0
            cycles, under, f.packets = 0, False, 1
            continue
        in_time = (ts - first_ts) % (1 << 32) < 1 << 31
        f.wrong_timestamps += not in_time
        if in_time and not under and (seq < start_seq or (seq == 0 and stop_seq == 65535)):
            cycles, under = cycles + 1, True
        elif in_time and under and seq > start_seq:
            under = False
        cn, after_cn, prev_pt = pt in (13, 19), prev_pt in (13, 19), pt
        current_jitter = 0.0
        if in_time:
            delta = now - ref_time
            if rate:
                nominal = ((ts - first_ts) % (1 << 32)) / (rate // 1000)
                current_jitter = jitter = (15 * jitter + abs(now - (ref_time + nominal - last_nominal))) / 16
                last_nominal = nominal
        if in_time and not marker and not cn and not after_cn:
            f.max_delta_ms = max(f.max_delta_ms, delta)
            f.min_delta_ms = delta if f.min_delta_ms == -1 else min(f.min_delta_ms, delta)
            f.mean_delta_ms = (f.mean_delta_ms * (f.packets - 1) + delta) / f.packets
            if rate:
                f.max_jitter_ms = max(f.max_jitter_ms, jitter)
                f.min_jitter_ms = jitter if f.min_jitter_ms == -1 else min(f.min_jitter_ms, jitter)
                f.mean_jitter_ms = (f.mean_jitter_ms * (f.packets - 1) + current_jitter) / f.packets
        if in_time:
            ref_time = now
        stop_seq = seq
        f.packets += 1
    if f.packets:
        expected = (stop_seq + cycles * 65536 - start_seq + 1) & 0xFFFFFFFF
        lost = (expected - f.packets) & 0xFFFFFFFF
        f.lost = lost - (1 << 32) if lost & 0x80000000 else lost
    return f


ROW = re.compile(r"^\s*([\d.]+)\s+([\d.]+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\s+(0x[0-9A-Fa-f]+)\s+(.+?)\s+(\d+)\s+"
                 r"(-?\d+)\s+\(.*?\)\s+(-?[\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(-?[\d.]+)\s+([\d.]+)\s+([\d.]+)")


def endpoint(ip: str, port) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def tshark_streams(tshark: str, path, extra=()) -> list[dict]:
    """The rows of `tshark -q -z rtp,streams` (one-packet streams too: tshark prints -1 for their minima)."""
    out = subprocess.run([tshark, "-r", str(path), *extra, "-q", "-z", "rtp,streams"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    rows = []
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            g = m.groups()
            rows.append({"src": endpoint(g[2], g[3]), "dst": endpoint(g[4], g[5]), "ssrc": g[6],
                         "packets": int(g[8]), "lost": int(g[9]), "min_delta_ms": float(g[10]),
                         "mean_delta_ms": float(g[11]), "max_delta_ms": float(g[12]),
                         "min_jitter_ms": float(g[13]), "mean_jitter_ms": float(g[14]),
                         "max_jitter_ms": float(g[15]), "problem": line.rstrip().endswith("X")})
    return rows
