#!/usr/bin/env python3
"""Build a large, realistic SIP trunk capture from the project's own fixture calls.

Templates are real SIPp calls in fixtures/pcaps/: media_ok.pcap (answered PCMU call, RTP both ways),
busy_486.pcap (486) and call 5 of calls_mixed.pcap (503). Each generated call copies a template's SIP
messages with fresh Call-ID, tags, branches, user numbers and SDP (o=/c=/m=, Content-Length fixed), and
stretches the template's RTP to D seconds: fresh SSRC, random start sequence number and timestamp
(so many streams wrap, RFC 3550 5.1), the template's payloads and arrival jitter cycled. Every answered
call adds RTCP (RFC 3550 6.4.1 SR + SDES CNAME) every 5 s each way on port+1. A few calls are impaired
(seeded loss and extra delay below 20 ms, so no reordering) and a few fail (486/503, no RTP).

Packets come out in time order: one generator per call leg, merged with heapq, written with
dpkt.pcap.Writer as they come, so memory stays flat whatever the size. The truth (calls, final codes,
per-stream packets and losses) is written next to the pcap as <name>.truth.json.

  python bench/generate.py --packets 1M -o bench/out/trunk_1M.pcap
  python bench/generate.py --calls 300 --duration 30 -o /tmp/trunk.pcap
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import os
import random
import re
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures" / "pcaps"
BASE_TIME = 1767261600.0  # 2026-01-01 10:00:00 UTC
PTIME = 0.020
RTCP_INTERVAL = 5.0  # RFC 3550 6.2 minimum interval
SBC_MAC, PEER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
SBC_SIG, PEER_SIG = "198.51.100.10", "203.0.113.5"  # documentation ranges (RFC 5737)
TOS_MEDIA, TOS_SIGNAL = 0xB8, 0x60  # DSCP EF for RTP/RTCP, CS3 for SIP
MAX_DELAY = 0.018  # impaired calls: extra delay 0..18 ms keeps packets 2 ms apart, in order


# --- templates ---------------------------------------------------------------------------------------

@dataclass
class SipTemplate:
    """The SIP messages of one fixture call: (offset s, sent by caller, raw payload)."""

    name: str
    messages: list[tuple[float, bool, bytes]]
    final: int


@dataclass
class MediaTemplate:
    """A fixture call with RTP: setup messages, RTP payloads and jitter per direction, teardown."""

    setup: list[tuple[float, bool, bytes]]  # INVITE .. ACK, offsets from the INVITE
    teardown: list[tuple[float, bool, bytes]]  # BYE, 200; offsets from the last RTP packet
    rtp_start: float  # first RTP packet, from the INVITE
    payloads: dict[bool, list[bytes]]  # by sender is caller
    jitter: dict[bool, list[float]]  # arrival minus nominal 20 ms grid, seconds
    answer_at: float  # offset of the 200 OK (ring time)


@dataclass
class Templates:
    media: MediaTemplate
    failed: list[SipTemplate]


def _udp_records(path: Path):
    with open(path, "rb") as fh:
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
                yield float(ts), ip, ip.data


def load_templates(fixtures: Path = FIXTURES) -> Templates:
    """Read the fixture calls (the caller is the INVITE's sender)."""
    rows = list(_udp_records(fixtures / "media_ok.pcap"))
    caller = rows[0][1].src
    sip = [(t, ip.src == caller, bytes(u.data)) for t, ip, u in rows if 5060 in (u.sport, u.dport)]
    rtp = [(t, ip.src == caller, bytes(u.data)) for t, ip, u in rows if 5060 not in (u.sport, u.dport)]
    t0 = sip[0][0]
    first_rtp, last_rtp = rtp[0][0], rtp[-1][0]
    setup = [(t - t0, c, p) for t, c, p in sip if t < first_rtp]
    teardown = [(t - last_rtp, c, p) for t, c, p in sip if t > last_rtp]
    answer_at = next(t - t0 for t, c, p in sip if p.startswith(b"SIP/2.0 200") and b"INVITE" in p)
    payloads, jitter = {}, {}
    for side in (True, False):
        pk = [(t, p) for t, c, p in rtp if c == side]
        payloads[side] = [p[12:] for _, p in pk]
        start = pk[0][0]
        jitter[side] = [t - start - i * PTIME for i, (t, _) in enumerate(pk)]
    media = MediaTemplate(setup, teardown, first_rtp - t0, payloads, jitter, answer_at)
    failed = [_sip_template(fixtures / "busy_486.pcap", None, "busy_486"),
              _sip_template(fixtures / "calls_mixed.pcap", b"5-calls_mixed@", "unavailable_503")]
    return Templates(media, failed)


def _sip_template(path: Path, call_id: bytes | None, name: str) -> SipTemplate:
    rows = [(t, ip, bytes(u.data)) for t, ip, u in _udp_records(path) if 5060 in (u.sport, u.dport)]
    if call_id is not None:
        rows = [r for r in rows if call_id in r[2]]
    caller, t0 = rows[0][1].src, rows[0][0]
    msgs = [(t - t0, ip.src == caller, p) for t, ip, p in rows]
    final = max(int(p[8:11]) for _, _, p in msgs if p.startswith(b"SIP/2.0 "))
    return SipTemplate(name, msgs, final)


# --- per-call rewriting ------------------------------------------------------------------------------

_TOKEN = re.compile(r"(branch=|tag=)([^;>\s,]+)")
_USER = re.compile(r"sip:([^@\s;>:]+)@")
_CALL_ID = re.compile(r"^(Call-ID|i):\s*(\S+)", re.M | re.I)
_CLEN = re.compile(r"^(Content-Length|l):\s*\d+", re.M | re.I)
_IP = re.compile(r"\b127\.0\.0\.(\d+)\b")


@dataclass
class Side:
    sig_ip: str
    media_ip: str
    media_port: int
    number: str
    sess_id: int


class SipRewriter:
    """Rewrites one template call's messages for one generated call, consistently across messages."""

    def __init__(self, rng: random.Random, call_id: str, caller: Side, callee: Side, caller_ip: str) -> None:
        self.rng, self.call_id = rng, call_id
        self.caller, self.callee = caller, callee
        self.template_caller_ip = caller_ip
        self.tokens: dict[str, str] = {}

    def _token(self, kind: str, old: str) -> str:
        key = kind + old
        if key not in self.tokens:
            rnd = f"{self.rng.getrandbits(64):016x}"
            self.tokens[key] = f"z9hG4bK{rnd}" if kind == "branch=" else rnd[:10]
        return self.tokens[key]

    def message(self, raw: bytes, from_caller: bool) -> bytes:
        text = raw.decode("latin-1")
        head, sep, body = text.partition("\r\n\r\n")
        if body:
            body = self._sdp(body, self.caller if from_caller else self.callee)
        head = _CALL_ID.sub(lambda m: f"{m.group(1)}: {self.call_id}", head)
        head = _TOKEN.sub(lambda m: m.group(1) + self._token(m.group(1), m.group(2)), head)
        head = _USER.sub(lambda m: f"sip:{self._user(m.group(1))}@", head)
        head = _IP.sub(lambda m: self.caller.sig_ip if m.group(0) == self.template_caller_ip
                       else self.callee.sig_ip, head)
        head = _CLEN.sub(lambda m: f"{m.group(1)}: {len(body.encode('latin-1'))}", head)
        return (head + sep + body).encode("latin-1")

    def _user(self, user: str) -> str:
        return self.caller.number if user == "caller" else self.callee.number

    @staticmethod
    def _sdp(body: str, side: Side) -> str:
        out = []
        for line in body.split("\r\n"):
            if line.startswith("o="):
                line = f"o=- {side.sess_id} {side.sess_id} IN IP4 {side.media_ip}"
            elif line.startswith("c=IN IP4"):
                line = f"c=IN IP4 {side.media_ip}"
            elif line.startswith("m=audio"):
                rest = line.split(" ", 2)[2]
                line = f"m=audio {side.media_port} {rest}"
            out.append(line)
        return "\r\n".join(out)


# --- packet building ---------------------------------------------------------------------------------

def _checksum(hdr: bytes) -> int:
    s = sum(struct.unpack("!10H", hdr))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def udp_prefix(src: str, sport: int, dst: str, dport: int, payload_len: int, to_peer: bool,
               tos: int = TOS_MEDIA) -> bytes:
    """Ethernet + IPv4 (DF, id 0, valid checksum) + UDP (checksum 0: optional over IPv4, RFC 768)."""
    eth = (PEER_MAC + SBC_MAC if to_peer else SBC_MAC + PEER_MAC) + b"\x08\x00"
    total = 20 + 8 + payload_len
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, 0, 0x4000, 64, 17, 0, _aton(src), _aton(dst))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return eth + ip + struct.pack("!HHHH", sport, dport, 8 + payload_len, 0)


def _aton(ip: str) -> bytes:
    return bytes(int(x) for x in ip.split("."))


def udp_packet(src: str, sport: int, dst: str, dport: int, payload: bytes, to_peer: bool,
               tos: int = TOS_MEDIA) -> bytes:
    return udp_prefix(src, sport, dst, dport, len(payload), to_peer, tos) + payload


_RTP = struct.Struct("!BBHII")


def rtcp_compound(ssrc: int, t: float, rtp_ts: int, packets: int, octets: int, cname: bytes) -> bytes:
    """RFC 3550 6.4.1 Sender Report (no report blocks) + 6.5 SDES with CNAME."""
    ntp = t + 2208988800.0
    sec = int(ntp)
    frac = int((ntp - sec) * 4294967296.0) & 0xFFFFFFFF
    sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, sec & 0xFFFFFFFF, frac, rtp_ts & 0xFFFFFFFF,
                     packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    item = bytes([1, len(cname)]) + cname + b"\x00"
    item += b"\x00" * (-(4 + len(item)) % 4)
    sdes = struct.pack("!BBHI", 0x81, 202, (4 + len(item)) // 4 - 1, ssrc) + item
    return sr + sdes


# --- calls -------------------------------------------------------------------------------------------

@dataclass
class CallPlan:
    index: int
    start: float  # seconds from capture start
    kind: str  # "normal", "impaired" or "failed"
    duration: float  # media seconds (answered calls)
    inbound: bool  # the carrier calls in (else the SBC calls out)
    template: int = 0  # failed calls: which SIP template
    loss: float = 0.0
    delay: float = 0.0


@dataclass
class StreamTruth:
    src: str
    dst: str
    ssrc: int
    packets: int = 0
    expected: int = 0
    lost: int = 0
    dropped_seq: list[int] = field(default_factory=list)
    first_seq: int = 0
    start: float = 0.0
    end: float = 0.0


def sbc_media(k: int) -> tuple[str, int]:
    return f"198.51.100.{20 + k // 20000}", 16384 + 2 * (k % 20000)


def peer_media(k: int) -> tuple[str, int]:
    return f"203.0.113.{10 + k % 50}", 30000 + 2 * ((k // 50) % 15000)


class CallBuilder:
    """Makes the packet generators of one call and records its truth."""

    def __init__(self, plan: CallPlan, tpl: Templates, seed: int) -> None:
        self.plan = plan
        self.tpl = tpl
        self.rng = random.Random(seed * 1_000_003 + plan.index)
        rng = self.rng
        self.call_id = f"{rng.getrandbits(128):032x}@{SBC_SIG if not plan.inbound else PEER_SIG}"
        sbc_num = f"+49301{rng.randrange(10**6, 10**7)}"
        peer_num = f"+44207{rng.randrange(10**6, 10**7)}"
        sbc = Side(SBC_SIG, *sbc_media(plan.index), sbc_num, rng.randrange(1, 2**31))
        peer = Side(PEER_SIG, *peer_media(plan.index), peer_num, rng.randrange(1, 2**31))
        self.caller, self.callee = (peer, sbc) if plan.inbound else (sbc, peer)
        self.t0 = BASE_TIME + plan.start
        self.streams: list[StreamTruth] = []
        self.final = 0
        self.sip_count = 0
        self.rtcp_count = 0
        self.signalling: dict[str, float | None] = {}  # invite, answer, release: seconds from BASE_TIME

    def _to_peer(self, from_caller: bool) -> bool:
        """True when the packet goes from the SBC side towards the carrier."""
        return from_caller != self.plan.inbound

    def _sip(self, rewriter: SipRewriter, msgs, base: float):
        for off, from_caller, raw in msgs:
            src, dst = (self.caller, self.callee) if from_caller else (self.callee, self.caller)
            payload = rewriter.message(raw, from_caller)
            self.sip_count += 1
            yield base + off, udp_packet(src.sig_ip, 5060, dst.sig_ip, 5060, payload, self._to_peer(from_caller),
                                        TOS_SIGNAL)

    def generators(self) -> list:
        plan, tpl = self.plan, self.tpl
        if plan.kind == "failed":
            st = tpl.failed[plan.template]
            self.final = st.final
            rw = SipRewriter(self.rng, self.call_id, self.caller, self.callee, "127.0.0.1")
            final = f"SIP/2.0 {st.final}".encode()
            self._times(self.t0 + st.messages[0][0], None,
                        self.t0 + next(off for off, _, p in st.messages if p.startswith(final)))
            return [self._sip(rw, st.messages, self.t0)]
        m = tpl.media
        self.final = 200
        rw = SipRewriter(self.rng, self.call_id, self.caller, self.callee, "127.0.0.1")
        ring = self.rng.uniform(0.5, min(4.0, 0.5 + plan.duration / 4))  # extra ringing before the 200 OK
        setup = [(off + (ring if off >= m.answer_at else 0.0), c, p) for off, c, p in m.setup]
        rtp_t0 = self.t0 + m.rtp_start + ring
        count = max(2, int(round(plan.duration / PTIME)))
        rtp_end = rtp_t0 + (count - 1) * PTIME + MAX_DELAY + 0.001
        gens = [self._sip(rw, setup, self.t0)]
        for from_caller in (True, False):
            ssrc, seq0, ts0 = self.rng.getrandbits(32), self.rng.getrandbits(16), self.rng.getrandbits(32)
            start = rtp_t0 + self.rng.uniform(0, 0.0005)
            gens.append(self._rtp(from_caller, start, count, ssrc, seq0, ts0))
            gens.append(self._rtcp(from_caller, start, count, ssrc, ts0))
        gens.append(self._sip(rw, m.teardown, rtp_end))
        self._times(self.t0 + setup[0][0], self.t0 + next(off for off, _, p in setup if p.startswith(b"SIP/2.0 200")),
                    rtp_end + next(off for off, _, p in m.teardown if p.startswith(b"BYE")))
        return gens

    def _times(self, invite: float, answer: float | None, release: float) -> None:
        """When the call seized its channel (INVITE), was answered and released it (BYE, or the
        final failure response): the truth of concurrency."""
        self.signalling = {"invite": round(invite - BASE_TIME, 6),
                           "answer": None if answer is None else round(answer - BASE_TIME, 6),
                           "release": round(release - BASE_TIME, 6)}

    def _rtp(self, from_caller: bool, t_start: float, count: int, ssrc: int, seq0: int, ts0: int):
        plan, rng = self.plan, self.rng
        src, dst = (self.caller, self.callee) if from_caller else (self.callee, self.caller)
        payloads = self.tpl.media.payloads[from_caller]
        jitter = self.tpl.media.jitter[from_caller]
        truth = StreamTruth(f"{src.media_ip}:{src.media_port}", f"{dst.media_ip}:{dst.media_port}", ssrc,
                            first_seq=seq0)
        self.streams.append(truth)
        prefix = udp_prefix(src.media_ip, src.media_port, dst.media_ip, dst.media_port, 12 + len(payloads[0]),
                            self._to_peer(from_caller))
        lossy = plan.kind == "impaired"
        loss, delay = plan.loss, plan.delay
        drop_rng = random.Random(rng.getrandbits(64))
        npay, njit = len(payloads), len(jitter)
        pack = _RTP.pack
        first = last = None
        for k in range(count):
            if lossy and 0 < k < count - 1 and drop_rng.random() < loss:
                truth.dropped_seq.append((seq0 + k) & 0xFFFF)
                continue
            t = t_start + k * PTIME + jitter[k % njit]
            if lossy:
                t += drop_rng.uniform(0.0, delay)
            header = pack(0x80, 0x80 if k == 0 else 0x00, (seq0 + k) & 0xFFFF, (ts0 + 160 * k) & 0xFFFFFFFF, ssrc)
            truth.packets += 1
            if first is None:
                first = t
            last = t
            yield t, prefix + header + payloads[k % npay]
        truth.expected = count
        truth.lost = count - truth.packets
        truth.start, truth.end = first - BASE_TIME, last - BASE_TIME

    def _rtcp(self, from_caller: bool, rtp_t0: float, count: int, ssrc: int, ts0: int):
        src, dst = (self.caller, self.callee) if from_caller else (self.callee, self.caller)
        cname = f"{src.number[1:]}@{src.media_ip}".encode()
        t = rtp_t0 + self.rng.uniform(0.5, RTCP_INTERVAL)
        end = rtp_t0 + count * PTIME
        to_peer = self._to_peer(from_caller)
        while t < end:
            sent = min(count, int((t - rtp_t0) / PTIME) + 1)
            body = rtcp_compound(ssrc, t, ts0 + int((t - rtp_t0) * 8000), sent, sent * 160, cname)
            self.rtcp_count += 1
            yield t, udp_packet(src.media_ip, src.media_port + 1, dst.media_ip, dst.media_port + 1, body, to_peer)
            t += RTCP_INTERVAL * self.rng.uniform(0.5, 1.5)  # RFC 3550 6.3.1 randomised interval

    def truth(self) -> dict:
        p = self.plan
        d = {"call_id": self.call_id, "final_status": self.final, "kind": p.kind,
             "direction": "inbound" if p.inbound else "outbound", "start": round(p.start, 6),
             "caller": self.caller.number, "callee": self.callee.number, "sip_messages": self.sip_count,
             "rtcp_packets": self.rtcp_count, "signalling": self.signalling, "streams": []}
        if p.kind == "impaired":
            d["impairment"] = {"loss_rate": p.loss, "max_extra_delay_ms": round(p.delay * 1000, 1)}
        for s in self.streams:
            d["streams"].append({"src": s.src, "dst": s.dst, "ssrc": s.ssrc, "packets": s.packets,
                                 "expected": s.expected, "lost": s.lost, "dropped_seq": s.dropped_seq,
                                 "first_seq": s.first_seq, "start": round(s.start, 6), "end": round(s.end, 6)})
        return d


# --- planning ----------------------------------------------------------------------------------------

def packets_per_call(duration: float) -> float:
    """Answered call: RTP both ways, RTCP ~1 per 5 s each way, 7 SIP messages."""
    return 2 * round(duration / PTIME) + 2 * duration / RTCP_INTERVAL + 7


def plan_calls(concurrent: int, duration: float, packets: int | None, seed: int, failed_pct: float,
               impaired_pct: float, ramp: float) -> list[CallPlan]:
    """`concurrent` call slots start within `ramp` seconds. Without `packets`: one call per slot.
    With `packets`: each slot places calls back to back until the packet budget is spent; when the
    budget is below one call per slot, calls are shortened instead (so concurrency stays the same)."""
    rng = random.Random(seed)
    if packets is not None:
        per_slot = packets / concurrent
        if per_slot < packets_per_call(duration):
            duration = max(1.0, (per_slot - 7) / (2 / PTIME + 2 / RTCP_INTERVAL))
    slots = [(rng.uniform(0, min(ramp, duration / 5)), i) for i in range(concurrent)]
    heapq.heapify(slots)
    plans: list[CallPlan] = []
    budget = packets if packets is not None else float("inf")
    spent = 0.0
    while slots and spent < budget:
        start, slot = heapq.heappop(slots)
        r = rng.random()
        kind = "failed" if r < failed_pct / 100 else "impaired" if r < (failed_pct + impaired_pct) / 100 else "normal"
        dur = duration * rng.uniform(0.9, 1.1) if packets is not None else duration
        plan = CallPlan(len(plans), start, kind, dur, inbound=rng.random() < 0.5)
        if kind == "failed":
            plan.template = rng.randrange(2)
            spent += 4
            length = 0.01
        else:
            if kind == "impaired":
                plan.loss = rng.choice((0.01, 0.02, 0.05))
                plan.delay = rng.uniform(0.005, MAX_DELAY)
            spent += packets_per_call(dur)
            length = dur + 5.0
        plans.append(plan)
        if packets is not None:
            heapq.heappush(slots, (start + length + rng.uniform(0.05, 1.0), slot))
    plans.sort(key=lambda p: p.start)
    for i, p in enumerate(plans):
        p.index = i
    return plans


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("kmg")) * mult)


def generate(out: Path, concurrent: int = 300, duration: float = 30.0, packets: int | None = None,
             seed: int = 1, failed_pct: float = 3.0, impaired_pct: float = 3.0, ramp: float = 5.0,
             fixtures: Path = FIXTURES, quiet: bool = False) -> dict:
    """Write the capture and its truth JSON; return the truth."""
    tpl = load_templates(fixtures)
    plans = plan_calls(concurrent, duration, packets, seed, failed_pct, impaired_pct, ramp)
    builders = [CallBuilder(p, tpl, seed) for p in plans]
    counter = itertools.count()

    def keyed(gen):
        for t, buf in gen:
            yield t, next(counter), buf

    # Generators are lazy: each holds a few counters and builds a packet only when the merge asks for it.
    merged = heapq.merge(*(keyed(g) for b in builders for g in b.generators()))
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    t_begin = time.monotonic()
    with open(out, "wb", buffering=1 << 20) as fh:
        writer = dpkt.pcap.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        write = writer.writepkt
        last = None
        for t, _, buf in merged:
            write(buf, t)
            n += 1
            last = t
            if not quiet and not n % 500_000:
                print(f"  {n:,} packets", file=sys.stderr)
    truth = {
        "generator": "bench/generate.py",
        "params": {"concurrent": concurrent, "duration": duration, "packets_target": packets, "seed": seed,
                   "failed_pct": failed_pct, "impaired_pct": impaired_pct, "ramp": ramp},
        "templates": ["fixtures/pcaps/media_ok.pcap", "fixtures/pcaps/busy_486.pcap",
                      "fixtures/pcaps/calls_mixed.pcap (call 5, 503)"],
        "file": str(out), "packets": n, "bytes": out.stat().st_size,
        "first_time": BASE_TIME + plans[0].start if plans else None, "last_time": last,
        "calls": [b.truth() for b in builders],
    }
    truth["summary"] = summarize(truth)
    truth_path(out).write_text(json.dumps(truth, indent=1))
    if not quiet:
        s = truth["summary"]
        print(f"wrote {out}: {n:,} packets, {out.stat().st_size / 1e6:.0f} MB, {s['calls']} calls "
              f"({s['failed']} failed, {s['impaired']} impaired), {s['streams']} RTP streams, "
              f"{s['rtp_packets']:,} RTP, {s['rtcp_packets']:,} RTCP, peak {s['max_concurrent']} concurrent, "
              f"in {time.monotonic() - t_begin:.1f} s", file=sys.stderr)
    return truth


def summarize(truth: dict) -> dict:
    calls = truth["calls"]
    streams = [s for c in calls for s in c["streams"]]
    events = []
    for c in calls:
        if c["streams"]:
            events += [(min(s["start"] for s in c["streams"]), 1), (max(s["end"] for s in c["streams"]), -1)]
    cur = peak = 0
    for _, d in sorted(events):
        cur += d
        peak = max(peak, cur)
    finals: dict[str, int] = {}
    for c in calls:
        finals[str(c["final_status"])] = finals.get(str(c["final_status"]), 0) + 1
    return {"calls": len(calls), "failed": sum(c["kind"] == "failed" for c in calls),
            "impaired": sum(c["kind"] == "impaired" for c in calls), "final_status": finals,
            "streams": len(streams), "rtp_packets": sum(s["packets"] for s in streams),
            "rtp_lost": sum(s["lost"] for s in streams), "rtcp_packets": sum(c["rtcp_packets"] for c in calls),
            "sip_messages": sum(c["sip_messages"] for c in calls), "max_concurrent": peak}


def truth_path(pcap: Path) -> Path:
    return pcap.with_name(pcap.name.removesuffix(".pcap") + ".truth.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", type=Path, default=REPO / "bench" / "out" / "trunk.pcap")
    ap.add_argument("--packets", type=parse_size, default=None,
                    help="target packet count (100k, 1M, 4M): calls follow each other in each slot until reached")
    ap.add_argument("--calls", "--concurrent", dest="concurrent", type=int, default=300,
                    help="concurrent calls (call slots), default 300")
    ap.add_argument("--duration", type=float, default=30.0, help="call media seconds, default 30")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--failed-pct", type=float, default=3.0, help="percent of calls failing (486/503)")
    ap.add_argument("--impaired-pct", type=float, default=3.0, help="percent of calls with loss/jitter")
    ap.add_argument("--ramp", type=float, default=5.0, help="seconds over which the first calls start")
    ap.add_argument("--fixtures", type=Path, default=FIXTURES, help="folder with the template captures")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    generate(a.out, a.concurrent, a.duration, a.packets, a.seed, a.failed_pct, a.impaired_pct, a.ramp,
             a.fixtures, a.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
