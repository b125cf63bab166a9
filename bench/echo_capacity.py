#!/usr/bin/env python3
"""Echo capacity: concurrent G.711 calls `siptool echo` sustains on this machine, next to SIPp -rtp_echo,
with plain RTP and with SRTP (RFC 3711, SDES keys, RFC 4568).

A script, not a test. For each agent, each media kind and each level N it sets up N calls over SIP
(INVITE/200/ACK from one siptool user agent), then a load generator in its own process sends N G.711
streams (20 ms, 172-byte packets, stream phases spread over the 20 ms like independent calls, each
from the address its SDP announced: 127.1.x.y, one per call, on one port) for
--seconds and measures what comes back: loss, and the added delay (round trip per packet, from the
send time of its stream and sequence number, minus the smallest round trip of the run, p50/p99). A
level passes when loss < 0.1 % and p99 added delay < 5 ms. Calls are hung up (BYE) after each level.
Loopback only.

SRTP: each call offers RTP/SAVP with one a=crypto line (--suite, AES_CM_128_HMAC_SHA1_80 by default)
and the generator sends packets protected with that call's key (all protected before the run starts,
so the generator spends nothing on them while it measures); the echo must decrypt each and protect it
again with its own key (a key per direction: echoing the cipher text back would not authenticate).
After the run, the first echo of every stream is checked with the key the echo's answer gave. SIPp's
-rtp_echo cannot do that (it returns what it receives), so it runs plain RTP only. The summary
prints each agent's capacity with RTP and with SRTP, and their ratio.

  python bench/echo_capacity.py                       # RTP 200..2600, SRTP 200..1400; ~12 min
  python bench/echo_capacity.py --levels 100,200 --srtp-levels 100,200 --seconds 5
  python bench/echo_capacity.py --media srtp --suite AEAD_AES_128_GCM
  python bench/echo_capacity.py --agents siptool --levels 1000 --root ../main   # another version
  python bench/echo_capacity.py --agents siptool-ppc,siptool-pcap --levels 100,200,400   # what --pcap costs

The generator sends and receives in batches (sendmmsg/recvmmsg through siptool/agent/mmsg.py), so it
costs less than the agents it measures; its own send lateness is still printed (gen late p99) so that a
level failed by a starved generator (both agents share two cores with it) can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import multiprocessing as mp
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siptool.agent import mmsg, sdes, sdp  # noqa: E402
from siptool.rtp.srtp import CryptoContext, Outcome  # noqa: E402
from siptool.sip import build  # noqa: E402
from siptool.sip.dialog import Dialog  # noqa: E402
from siptool.sip.transaction import Timers  # noqa: E402
from siptool.agent.ua import UserAgent  # noqa: E402



def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source(i: int) -> str:
    """Stream i's address: a loopback address of its own, as each call of a trunk has its own source."""
    return f"127.1.{i >> 8}.{i & 255}"


async def setup_calls(target: tuple[str, int], n: int, suite: str | None = None,
                      port: int = 40000) -> tuple[UserAgent, list]:
    """N calls: (dialog, the echo's media address, SDES keys or None) each; `suite`: SRTP. Call i's
    SDP offers source(i):port, where the generator sends it from."""
    ua = await UserAgent("udp", "127.0.0.1", 0, Timers(t1=0.5)).start()
    host, _ = ua.local

    async def one(i: int):
        uri = f"sip:echo{i}@{target[0]}:{target[1]}"
        proto, crypto = sdes.offer(sdes.SrtpMode.MANDATORY if suite else sdes.SrtpMode.OFF, (suite,))
        body = sdp.build(source(i), port, [0], dtmf_pt=None, proto=proto, crypto=crypto)
        inv = build.request("INVITE", uri, via_value=ua.via(), from_value=f"<sip:bench@{host}>;tag={build.new_tag()}",
                             to_value=f"<{uri}>", call_id=build.new_call_id(host), cseq=1, contact=ua.contact(), body=body)
        resp = await ua.request(inv, target)
        if resp.status != 200:
            raise RuntimeError(f"call {i}: {resp.status} {resp.reason}")
        d = Dialog.uac(inv, resp)
        await ua.request(d.ack(1, ua.via()), target)
        m = sdp.parse(resp.body)
        keys = sdes.accept(crypto, proto, m, sdes.SrtpMode.MANDATORY) if suite else None
        if isinstance(keys, str):
            raise RuntimeError(f"call {i}: {keys}")
        return d, (m.connection, m.port), keys

    calls = []
    for k in range(0, n, 50):  # 50 call attempts at a time
        calls += await asyncio.gather(*(one(i) for i in range(k, min(n, k + 50))))
    return ua, calls


async def hangup(ua: UserAgent, target, calls) -> None:
    await asyncio.gather(*(ua.request(d.request("BYE", ua.via()), target) for d, *_ in calls), return_exceptions=True)
    await ua.close()


# the RTP header of a generated packet: the stream is its SSRC - SSRC0, the tick its sequence number
PKT = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")])
SIZE = 172  # 12-byte RTP header + 160 bytes of G.711
SSRC0 = 0x1000


def _heads(batch: mmsg.Batch) -> np.ndarray:
    """The PKT view of each slot of a batch."""
    return np.ndarray((batch.slots,), PKT, buffer=batch.data, strides=(mmsg.SLOT,))


IP_PKTINFO = 8  # Linux <linux/in.h>: the source address of a datagram sent (ip(7))


class _InPktinfo(ctypes.Structure):
    _fields_ = [("ifindex", ctypes.c_int), ("spec_dst", ctypes.c_char * 4), ("addr", ctypes.c_char * 4)]


class _Cmsg(ctypes.Structure):
    _fields_ = [("len", ctypes.c_size_t), ("level", ctypes.c_int), ("type", ctypes.c_int), ("info", _InPktinfo)]


class SourcedBatch(mmsg.Batch):
    """A Batch whose datagrams each leave from a source address of their own (IP_PKTINFO control
    messages on a socket bound to the wildcard address): `sources[i]` is slot i's, 4 bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._cmsgs = (_Cmsg * self.slots)()
        for i in range(self.slots):
            c = self._cmsgs[i]
            c.len, c.level, c.type = _Cmsg.info.offset + ctypes.sizeof(_InPktinfo), socket.IPPROTO_IP, IP_PKTINFO
            h = self._mm_out[i].hdr
            h.control, h.controllen = ctypes.addressof(c), ctypes.sizeof(_Cmsg)
        stride = ctypes.sizeof(_Cmsg)
        raw = np.frombuffer(self._cmsgs, np.uint8).reshape(self.slots, stride)
        offset = _Cmsg.info.offset + _InPktinfo.spec_dst.offset
        self.sources = raw[:, offset:offset + 4]


def _sockaddr(host: str, port: int) -> np.ndarray:
    raw = (socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + socket.inet_aton(host)).ljust(mmsg.NAME, b"\0")
    return np.frombuffer(raw, np.uint64)


def protected(keys: list, ticks: int) -> np.ndarray:
    """Every packet of an SRTP run, protected with its stream's key: [tick, stream, bytes]."""
    first = CryptoContext(keys[0].suite, keys[0].local.keys, outbound=True)
    size = len(first.protect(bytes(SIZE)))
    out = np.empty((ticks, len(keys), size), np.uint8)
    payload = b"\xff" * (SIZE - 12)
    for i, k in enumerate(keys):
        ctx = CryptoContext(k.suite, k.local.keys, outbound=True)
        for tick in range(ticks):
            rtp = struct.pack("!BBHII", 0x80, 0, tick, tick * 160, SSRC0 + i) + payload
            out[tick, i] = np.frombuffer(ctx.protect(rtp), np.uint8)
    return out


def generator(dests: list[tuple[str, int]], seconds: float, out, keys: list | None = None, port: int = 40000) -> None:
    """Send one 20 ms G.711 packet per stream per tick from one socket; collect the echoes. Sent and
    received in batches (sendmmsg/recvmmsg, siptool/agent/mmsg.py) so that the generator costs less
    than the agents it measures. `keys`: each stream's SDES keys (agent/sdes.Keys): SRTP, every
    packet protected before the run; the first echo of each stream is checked with the echo's key."""
    n = len(dests)
    ticks = int(seconds / 0.02)
    packets = protected(keys, ticks) if keys else None
    size = packets.shape[2] if keys else SIZE
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind(("0.0.0.0", port))  # every stream's address (127.1.x.y) reaches it; IP_PKTINFO picks each source
    sock.setblocking(False)
    fd = sock.fileno()
    tx, rx = SourcedBatch(), mmsg.Batch()
    sources = np.frombuffer(b"".join(socket.inet_aton(source(i)) for i in range(n)), np.uint8).reshape(n, 4)
    tx.data[:, :SIZE] = 0xFF
    tx.out_lengths[:] = size
    tx_head, rx_head = _heads(tx), _heads(rx)
    tx_head["b0"], tx_head["b1"] = 0x80, 0
    names = np.stack([_sockaddr(*d) for d in dests])
    slots = 20  # stream i sends in 1 ms slot i % 20 of each 20 ms tick: calls have spread phases, as real ones do
    groups = [np.arange(s, n, slots) for s in range(slots)]
    sent = np.full((ticks, n), np.nan)  # when each packet went
    rtts, got, lateness, other = [], [], [], 0
    first_echo: dict[int, bytes] = {}

    def drain() -> None:
        nonlocal other
        while True:
            k = rx.recv(fd)
            if not k:
                return
            now = time.perf_counter()
            h = rx_head[:k]
            stream, tick = h["ssrc"].astype(np.int64) - SSRC0, h["seq"].astype(np.int64)
            mine = (rx.lengths[:k] == size) & (stream >= 0) & (stream < n) & (tick < ticks)
            other += int(k - mine.sum())  # not one of ours (e.g. RTCP)
            rtts.append(now - sent[tick[mine], stream[mine]])
            got.append(stream[mine] << 16 | tick[mine])
            if keys and len(first_echo) < n:
                for i in np.flatnonzero(mine).tolist():
                    first_echo.setdefault(int(stream[i]), rx.data[i, :size].tobytes())

    t0 = time.perf_counter() + 0.05
    for k in range(ticks):
        for s, group in enumerate(groups):
            due = t0 + k * 0.02 + s * 0.001
            while True:  # receive until the slot is due
                wait = due - time.perf_counter()
                if wait <= 0:
                    break
                if select.select([sock], [], [], wait)[0]:
                    drain()
            lateness.append(time.perf_counter() - due)
            for a in range(0, len(group), tx.slots):
                part = group[a:a + tx.slots]
                m = len(part)
                if keys:
                    tx.data[:m, :size] = packets[k, part]
                else:
                    head = tx_head[:m]
                    head["seq"], head["ts"], head["ssrc"] = k & 0xFFFF, k * 160, SSRC0 + part
                tx.names[:m] = names[part]
                tx.sources[:m] = sources[part]
                sent[k, part] = time.perf_counter()
                tx.send(fd, 0, m)  # a full socket buffer drops, as before
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # drain the last echoes
        if select.select([sock], [], [], 0.05)[0]:
            drain()
    keys_got = np.concatenate(got) if got else np.zeros(0, np.int64)
    received = len(np.unique(keys_got))  # each packet once: a duplicate is not a received packet
    if len(keys_got) != received or other:
        print(f"  generator: {len(keys_got) - received} duplicate echoes, {other} datagrams of another kind",
              flush=True)
    authentic = sum(CryptoContext(keys[i].suite, keys[i].remote.keys).unprotect(data).outcome is Outcome.OK
                    for i, data in first_echo.items()) if keys else None
    rtt = np.concatenate(rtts) if rtts else np.zeros(0)
    out.put((ticks * n, received, rtt * 1000.0, np.array(lateness) * 1000.0, authentic, len(first_echo)))


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """CPU time of the agent and of its child processes (siptool echo's echo workers)."""
    fields = _stat(pid)
    if fields is None:
        return float("nan")
    total = int(fields[11]) + int(fields[12])
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry != str(pid):
            child = _stat(int(entry))
            if child is not None and child[1] == str(pid):
                total += int(child[11]) + int(child[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_level(target, pid: int, n: int, seconds: float, suite: str | None = None) -> dict:
    """One level: N calls (SRTP with `suite`), the generator's run, the agent's CPU over it."""
    port = free_port()
    ua, calls = asyncio.run(_setup(target, n, suite, port))
    dests = [m for _, m, _ in calls]
    keys = [k for *_, k in calls] if suite else None
    q = mp.Queue()
    p = mp.Process(target=generator, args=(dests, seconds, q, keys, port))
    p.start()
    c0 = cpu_seconds(pid)
    sent, received, rtt, late, authentic, echoed = q.get()
    p.join()
    cpu = (cpu_seconds(pid) - c0) / seconds * 100
    asyncio.run(_hangup(target, calls))
    loss = 100.0 * (sent - received) / sent if sent else 0.0
    added = rtt - rtt.min() if rtt.size else rtt
    if suite and authentic != echoed:
        raise RuntimeError(f"only {authentic} of {echoed} streams' echoes authenticate with the echo's key")
    return {"calls": n, "sent": sent, "received": received, "loss_pct": loss,
            "added_p50_ms": float(np.percentile(added, 50)) if added.size else float("nan"),
            "added_p99_ms": float(np.percentile(added, 99)) if added.size else float("nan"),
            "rtt_min_ms": float(rtt.min()) if rtt.size else float("nan"),
            "gen_late_p99_ms": float(np.percentile(late, 99)), "cpu_pct": cpu,
            "pass": loss < 0.1 and added.size > 0 and np.percentile(added, 99) < 5.0}


async def _setup(target, n, suite=None, port=40000):
    ua, calls = await setup_calls(target, n, suite, port)
    await ua.close()  # keep no SIP state in this process between setup and hangup
    return ua, calls


async def _hangup(target, calls):
    ua = await UserAgent("udp", "127.0.0.1", 0, Timers(t1=0.5)).start()
    # the dialogs belong to the setup UA's Contact; BYE from a new port is fine for both agents (no
    # source-address check on BYE in siptool echo or in SIPp's uas scenario)
    await hangup(ua, target, calls)


def start_agent(kind: str, root: Path | None = None) -> tuple[subprocess.Popen, tuple[str, int]]:
    port = free_port()
    if kind.startswith("siptool"):
        cmd = [sys.executable, "-m", "siptool", "echo", "--listen", f"127.0.0.1:{port}"]
        if kind == "siptool-ppc":
            cmd.append("--port-per-call")
        elif kind == "siptool-pcap":  # every packet written and each call analysed in full (echo --pcap)
            cmd += ["--pcap", os.devnull]  # the packets are built and written; the file is not kept
    else:
        mport = free_port()
        cmd = [shutil.which("sipp"), "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-mi", "127.0.0.1",
               "-mp", str(mport), "-rtp_echo", "-nostdin", "-max_socket", "5000"]
    proc = subprocess.Popen(cmd, cwd=root or Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    return proc, ("127.0.0.1", port)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="200,1000,1800,2200,2600", help="calls, plain RTP")
    ap.add_argument("--srtp-levels", default="200,600,1000,1400", help="calls, SRTP")
    ap.add_argument("--media", default="rtp,srtp", help="rtp, srtp or both")
    ap.add_argument("--suite", default="AES_CM_128_HMAC_SHA1_80", help="the SDES suite of the SRTP calls")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--agents", default="siptool,sipp")
    ap.add_argument("--root", type=Path, help="run `siptool echo` from this checkout instead (to compare two "
                    "versions of it, alternating runs)")
    args = ap.parse_args()
    plans = {"rtp": ([int(x) for x in args.levels.split(",")], None),
             "srtp": ([int(x) for x in args.srtp_levels.split(",")], args.suite)}
    media = [m for m in args.media.split(",") if m in plans]
    rows = []
    for agent in args.agents.split(","):
        if agent == "sipp" and not shutil.which("sipp"):
            print("sipp not installed: skipped")
            continue
        for kind in media:
            if agent == "sipp" and kind == "srtp":
                print("sipp: -rtp_echo sends the cipher text back, which the caller cannot authenticate: no SRTP row")
                continue
            levels, suite = plans[kind]
            proc, target = start_agent(agent, args.root)
            try:
                for n in levels:
                    try:
                        r = run_level(target, proc.pid, n, args.seconds, suite)
                    except Exception as exc:  # noqa: BLE001 - a level that cannot even set up is a fail
                        r = {"calls": n, "error": str(exc)[:80], "pass": False}
                    r["agent"], r["media"] = agent, kind
                    rows.append(r)
                    print(_row(r), flush=True)
                    if not r["pass"]:
                        break
            finally:
                proc.terminate()
                proc.wait(5)
    print("\nmax concurrent calls with loss < 0.1 % and p99 added delay < 5 ms "
          f"(RTP levels {args.levels}; SRTP {args.suite}, levels {args.srtp_levels}):")
    for agent in args.agents.split(","):
        best = {kind: max([r["calls"] for r in rows if r["agent"] == agent and r["media"] == kind and r["pass"]],
                          default=0) for kind in media if any(r["agent"] == agent and r["media"] == kind for r in rows)}
        ratio = f"  SRTP/RTP {best['srtp'] / best['rtp']:.2f}" if best.get("rtp") and "srtp" in best else ""
        print(f"  {agent:8} " + "  ".join(f"{kind.upper()} {n}" for kind, n in best.items()) + ratio)


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['agent']:8} {r['media']:4} {r['calls']:5} calls  ERROR {r['error']}"
    return (f"{r['agent']:8} {r['media']:4} {r['calls']:5} calls  loss {r['loss_pct']:6.3f} %  "
            f"added p50 {r['added_p50_ms']:6.2f} ms p99 {r['added_p99_ms']:7.2f} ms  "
            f"rtt min {r['rtt_min_ms']:5.2f} ms  "
            f"agent CPU {r['cpu_pct']:5.1f} %  gen late p99 {r['gen_late_p99_ms']:5.2f} ms  "
            f"{'PASS' if r['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
