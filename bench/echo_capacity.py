#!/usr/bin/env python3
"""Echo capacity: concurrent G.711 calls `siptool echo` sustains on this machine, next to SIPp -rtp_echo.

A script, not a test. For each agent and each level N it sets up N calls over SIP (INVITE/200/ACK from
one siptool user agent), then a load generator in its own process sends N G.711 streams (20 ms, 172-byte
packets, send time stamped in the payload, stream phases spread over the 20 ms like independent calls) for --seconds and measures what comes back: loss, and the
added delay (round trip per packet minus the smallest round trip of the run, p50/p99). A level passes
when loss < 0.1 % and p99 added delay < 5 ms. Calls are hung up (BYE) after each level. Loopback only.

  python bench/echo_capacity.py                       # levels 200,1000,1800,2200,2600; ~8 min
  python bench/echo_capacity.py --levels 100,200 --seconds 5
  python bench/echo_capacity.py --agents siptool --levels 1000 --root ../main   # another version
  python bench/echo_capacity.py --agents siptool-ppc,siptool-pcap --levels 100,200,400   # what --pcap costs

The generator sends and receives in batches (sendmmsg/recvmmsg through siptool/agent/mmsg.py), so it
costs less than the agents it measures; its own send lateness is still printed (gen late p99) so that a
level failed by a starved generator (both agents share two cores with it) can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from siptool.agent import mmsg, sdp
from siptool.sip import build  # noqa: E402
from siptool.sip.dialog import Dialog  # noqa: E402
from siptool.sip.transaction import Timers  # noqa: E402
from siptool.agent.ua import UserAgent  # noqa: E402



def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def setup_calls(target: tuple[str, int], n: int) -> tuple[UserAgent, list[tuple[Dialog, tuple[str, int]]]]:
    ua = await UserAgent("udp", "127.0.0.1", 0, Timers(t1=0.5)).start()
    host, _ = ua.local

    async def one(i: int):
        uri = f"sip:echo{i}@{target[0]}:{target[1]}"
        body = sdp.build("127.0.0.1", 40000 + 2 * i, [0], dtmf_pt=None)
        inv = build.request("INVITE", uri, via_value=ua.via(), from_value=f"<sip:bench@{host}>;tag={build.new_tag()}",
                             to_value=f"<{uri}>", call_id=build.new_call_id(host), cseq=1, contact=ua.contact(), body=body)
        resp = await ua.request(inv, target)
        if resp.status != 200:
            raise RuntimeError(f"call {i}: {resp.status} {resp.reason}")
        d = Dialog.uac(inv, resp)
        await ua.request(d.ack(1, ua.via()), target)
        m = sdp.parse(resp.body)
        return d, (m.connection, m.port)

    calls = []
    for k in range(0, n, 50):  # 50 call attempts at a time
        calls += await asyncio.gather(*(one(i) for i in range(k, min(n, k + 50))))
    return ua, calls


async def hangup(ua: UserAgent, target, calls) -> None:
    await asyncio.gather(*(ua.request(d.request("BYE", ua.via()), target) for d, _ in calls), return_exceptions=True)
    await ua.close()


# the first 24 bytes of a generated packet: RTP header, then the send time and the stream index
PKT = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4"), ("sent", ">f8"),
                ("stream", ">u4")])
SIZE = 172  # 12-byte RTP header + 160 bytes of G.711


def _heads(batch: mmsg.Batch) -> np.ndarray:
    """The PKT view of each slot of a batch."""
    return np.ndarray((batch.slots,), PKT, buffer=batch.data, strides=(mmsg.SLOT,))


def _sockaddr(host: str, port: int) -> np.ndarray:
    raw = (socket.AF_INET.to_bytes(2, sys.byteorder) + port.to_bytes(2, "big") + socket.inet_aton(host)).ljust(mmsg.NAME, b"\0")
    return np.frombuffer(raw, np.uint64)


def generator(dests: list[tuple[str, int]], seconds: float, out) -> None:
    """Send one 20 ms G.711 packet per stream per tick from one socket; collect the echoes. Sent and
    received in batches (sendmmsg/recvmmsg, siptool/agent/mmsg.py) so that the generator costs less
    than the agents it measures."""
    n = len(dests)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    fd = sock.fileno()
    tx, rx = mmsg.Batch(), mmsg.Batch()
    tx.data[:, :SIZE] = 0xFF
    tx.out_lengths[:] = SIZE
    tx_head, rx_head = _heads(tx), _heads(rx)
    tx_head["b0"], tx_head["b1"] = 0x80, 0
    names = np.stack([_sockaddr(*d) for d in dests])
    ticks = int(seconds / 0.02)
    slots = 20  # stream i sends in 1 ms slot i % 20 of each 20 ms tick: calls have spread phases, as real ones do
    groups = [np.arange(s, n, slots) for s in range(slots)]
    rtts, got, lateness, other = [], [], [], 0

    def drain() -> None:
        nonlocal other
        while True:
            k = rx.recv(fd)
            if not k:
                return
            now = time.perf_counter()
            mine = rx.lengths[:k] == SIZE
            other += int(k - mine.sum())  # not one of ours (e.g. RTCP)
            h = rx_head[:k][mine]
            rtts.append(now - h["sent"])
            got.append(h["stream"].astype(np.int64) << 16 | h["seq"])

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
                head = tx_head[:m]
                head["seq"], head["ts"], head["ssrc"], head["stream"] = k & 0xFFFF, k * 160, 0x1000 + part, part
                head["sent"] = time.perf_counter()
                tx.names[:m] = names[part]
                tx.send(fd, 0, m)  # a full socket buffer drops, as before
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:  # drain the last echoes
        if select.select([sock], [], [], 0.05)[0]:
            drain()
    keys = np.concatenate(got) if got else np.zeros(0, np.int64)
    received = len(np.unique(keys))  # each packet once: a duplicate is not a received packet
    if len(keys) != received or other:
        print(f"  generator: {len(keys) - received} duplicate echoes, {other} datagrams of another kind", flush=True)
    rtt = np.concatenate(rtts) if rtts else np.zeros(0)
    out.put((ticks * n, received, rtt * 1000.0, np.array(lateness) * 1000.0))


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


def run_level(target, pid: int, n: int, seconds: float) -> dict:
    ua, calls = asyncio.run(_setup(target, n))
    dests = [m for _, m in calls]
    q = mp.Queue()
    c0 = cpu_seconds(pid)
    p = mp.Process(target=generator, args=(dests, seconds, q))
    p.start()
    sent, received, rtt, late = q.get()
    p.join()
    cpu = (cpu_seconds(pid) - c0) / seconds * 100
    asyncio.run(_hangup(target, calls))
    loss = 100.0 * (sent - received) / sent if sent else 0.0
    added = rtt - rtt.min() if rtt.size else rtt
    return {"calls": n, "sent": sent, "received": received, "loss_pct": loss,
            "added_p50_ms": float(np.percentile(added, 50)) if added.size else float("nan"),
            "added_p99_ms": float(np.percentile(added, 99)) if added.size else float("nan"),
            "rtt_min_ms": float(rtt.min()) if rtt.size else float("nan"),
            "gen_late_p99_ms": float(np.percentile(late, 99)), "cpu_pct": cpu,
            "pass": loss < 0.1 and added.size > 0 and np.percentile(added, 99) < 5.0}


async def _setup(target, n):
    ua, calls = await setup_calls(target, n)
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
    ap.add_argument("--levels", default="200,1000,1800,2200,2600")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--agents", default="siptool,sipp")
    ap.add_argument("--root", type=Path, help="run `siptool echo` from this checkout instead (to compare two "
                    "versions of it, alternating runs)")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    for agent in args.agents.split(","):
        if agent == "sipp" and not shutil.which("sipp"):
            print("sipp not installed: skipped")
            continue
        proc, target = start_agent(agent, args.root)
        try:
            for n in levels:
                try:
                    r = run_level(target, proc.pid, n, args.seconds)
                except Exception as exc:  # noqa: BLE001 - a level that cannot even set up is a fail
                    r = {"calls": n, "error": str(exc)[:60], "pass": False}
                r["agent"] = agent
                rows.append(r)
                print(_row(r), flush=True)
                if not r["pass"]:
                    break
        finally:
            proc.terminate()
            proc.wait(5)
    print("\nmax concurrent calls with loss < 0.1 % and p99 added delay < 5 ms:")
    for agent in args.agents.split(","):
        ok = [r["calls"] for r in rows if r["agent"] == agent and r["pass"]]
        print(f"  {agent:8} {max(ok) if ok else 0}  (levels tried: {args.levels})")


def _row(r: dict) -> str:
    if "error" in r:
        return f"{r['agent']:8} {r['calls']:5} calls  ERROR {r['error']}"
    return (f"{r['agent']:8} {r['calls']:5} calls  loss {r['loss_pct']:6.3f} %  added p50 {r['added_p50_ms']:6.2f} ms "
            f"p99 {r['added_p99_ms']:7.2f} ms  rtt min {r['rtt_min_ms']:5.2f} ms  agent CPU {r['cpu_pct']:5.1f} %  "
            f"gen late p99 {r['gen_late_p99_ms']:5.2f} ms  {'PASS' if r['pass'] else 'FAIL'}")


if __name__ == "__main__":
    main()
