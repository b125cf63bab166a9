#!/usr/bin/env python3
"""A hostile peer against a live `siptool echo`: malformed and malicious datagrams and TCP streams,
then an OPTIONS and a real call that must still succeed.

    python bench/hostile.py --datagrams 10000 --connections 600      # on 127.0.0.1
    sudo python bench/hostile.py --netns --datagrams 100000 --json   # in a network namespace of its own

It starts `siptool echo` (UDP and TCP listeners, one process each), measures its resident memory,
then sends from 127.0.0.1: every message class a SIP parser reads (start line, Via, Contact, CSeq,
Call-ID, Max-Forwards, Content-Length, Authorization, SDP c=/m=/a=) mutated with hostile values
(ports 99999 and `¹²5060`, NULs, 4,000-digit numbers, 30 KB values, non-UTF-8, addresses outside
loopback), unsolicited responses with received/rport, random bytes, and TCP streams (64 KB of capital
letters, Content-Length 999999999999, slow partial messages, pipelines, connection floods). Meanwhile
and afterwards a caller on 127.0.0.2 pings with OPTIONS and places a call with `siptool call`; both
must succeed. With --netns (root), everything runs in a namespace with a decoy interface and a
default route, and tcpdump records every packet the agent sends: each must go to the loopback
source it answers, none anywhere else. The result is printed, or as JSON with --json; the exit
code is 0 when every expectation held.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ATTACKER, CALLER = "127.0.0.1", "127.0.0.2"
OUTSIDE = "198.51.100.7"  # TEST-NET-2: an address the agent must never be made to send to
NASTY = ["\u00b9\u00b25060", "5\u2460", "99999", "0", "-1", "65536", "4294967296", "9" * 4000, "abc", "", " ",
         "\x00", "\xff", "a" * 30000, ";", "<", '"', "[", "]", ":", "@", "inf", "nan", "0x10", "1e9",
         f"{OUTSIDE}:5060", "evil.example.com", "[::1]:5060", "127.0.0.1:99999;received=1.2.3.4;rport=1"]


def _request(method: str, port: int, via: str, *, extra: str = "", body: str = "", call_id: str = "") -> str:
    call_id = call_id or f"CALLID@{ATTACKER}"  # made unique per datagram (datagrams())
    return (f"{method} sip:echo@127.0.0.1:{port} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:attacker@{ATTACKER}>;tag={random.getrandbits(32):x}\r\nTo: <sip:echo@127.0.0.1>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:attacker@{ATTACKER}:5999>\r\n{extra}"
            f"Content-Length: {len(body.encode('utf-8', 'surrogateescape'))}\r\n\r\n{body}")


def _sdp(addr: str = ATTACKER, port: str = "40000") -> str:
    return (f"v=0\r\no=- 1 1 IN IP4 {addr}\r\ns=-\r\nc=IN IP4 {addr}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n")


def templates(port: int, reply_port: int) -> list[tuple[str, str]]:
    """(class, message) pairs: valid messages of every kind the agent handles, and the issue's cases."""
    via = f"SIP/2.0/UDP {ATTACKER}:{reply_port};branch=z9hG4bKBRANCH;rport"
    t = [("options", _request("OPTIONS", port, via)),
         ("invite", _request("INVITE", port, via, extra="Content-Type: application/sdp\r\n", body=_sdp())),
         ("invite-outside-sdp", _request("INVITE", port, via, extra="Content-Type: application/sdp\r\n",
                                         body=_sdp(OUTSIDE))),
         ("register", _request("REGISTER", port, via, extra='Authorization: Digest username="alice", realm="siptool", '
                               'nonce="abc", uri="sip:127.0.0.1", response="00", algorithm=MD5\r\n')),
         ("bye", _request("BYE", port, via)), ("cancel", _request("CANCEL", port, via)),
         ("ack", _request("ACK", port, via)), ("message", _request("MESSAGE", port, via, body="hello"))]
    for v in (f"SIP/2.0/UDP {ATTACKER}:99999", ";branch=x", f"SIP/2.0/UDP {ATTACKER}:\u00b9\u00b25060;branch=z9hG4bKa",
              f"SIP/2.0/UDP {OUTSIDE}:5060;branch=z9hG4bKb", f"SIP/2.0/UDP {ATTACKER}:5060;branch=z9hG4bKc;maddr={OUTSIDE}",
              f"SIP/2.0/UDP evil.example.com;branch=z9hG4bKd", "SIP/2.0/UDP [::1]:5060;branch=z9hG4bKe",
              f"SIP/2.0/UDP {ATTACKER}:{reply_port};branch=z9hG4bKf;received={OUTSIDE};rport=1"):
        t.append(("via", _request("OPTIONS", port, v)))
    for c in (f"<sip:a@{ATTACKER}:5\u2460>", f"<sip:a@{OUTSIDE}:5060>", "<sip:a@:5060>", "<>", "*", "<sip:" + "a" * 20000 + ">"):
        t.append(("contact", _request("INVITE", port, via, extra="Content-Type: application/sdp\r\n",
                                      body=_sdp()).replace(f"Contact: <sip:attacker@{ATTACKER}:5999>", f"Contact: {c}")))
    t.append(("record-route", _request("INVITE", port, via, extra=f"Record-Route: <sip:{OUTSIDE};lr>\r\n"
                                       "Content-Type: application/sdp\r\n", body=_sdp())))
    for resp in (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKstray;received=127.0.0.1;rport=5860\r\n"
                 f"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: stray\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
                 "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP host:abc;received=1.2.3.4\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"):
        t.append(("stray-response", resp))
    nonce = "0" * 3600
    t.append(("auth", _request("REGISTER", port, via, extra=f'Authorization: Digest username="\u00e9", nonce="{nonce}", '
                               f'response="\u00fc", realm="x{"," * 5000}"\r\n')))
    t.append(("auth", _request("INVITE", port, via, extra="Authorization: Digest " + 'a="b", ' * 5000 + "\r\n",
                               body=_sdp())))
    for sdp_value in ("c=IN IP4 \x00", "m=audio 99999 RTP/AVP 0", "m=audio 65535 RTP/AVP 0", "a=ptime:inf",
                      "a=rtpmap:\u00b2 PCMU/8000", "c=IN IP4 " + OUTSIDE, "m=audio 0 RTP/AVP 0"):
        body = _sdp().replace(sdp_value.split(" ")[0].split(":")[0], sdp_value + "\r\nx-", 1)
        t.append(("sdp", _request("INVITE", port, via, extra="Content-Type: application/sdp\r\n", body=body)))
    return t


def mutate(rng: random.Random, text: str) -> bytes:
    """One hostile change to a message: a header value, a number, a cut, a duplicate, raw bytes."""
    lines = text.split("\r\n")
    how = rng.randrange(8)
    if how == 0:  # a header's value replaced
        i = rng.randrange(1, max(2, len(lines) - 2))
        name = lines[i].split(":", 1)[0]
        lines[i] = f"{name}: {rng.choice(NASTY)}"
    elif how == 1:  # a number inside a value
        i = rng.randrange(len(lines))
        digits = [k for k, ch in enumerate(lines[i]) if ch.isdigit()]
        if digits:
            k = rng.choice(digits)
            lines[i] = lines[i][:k] + rng.choice(NASTY) + lines[i][k + 1:]
    elif how == 2:  # a header removed or repeated
        i = rng.randrange(1, max(2, len(lines) - 2))
        if rng.random() < 0.5:
            del lines[i]
        else:
            lines[i:i] = [lines[i]] * rng.choice((2, 50, 500))
    elif how == 3:  # the start line
        lines[0] = rng.choice(["", "INVITE", "SIP/2.0 999 X", "INV\u00c9TE sip:x SIP/2.0", lines[0] + " extra",
                               lines[0].replace("SIP/2.0", "SIP/3.0"), "A" * 9000])
    elif how == 4:  # cut short
        data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
        return data[:rng.randrange(1, len(data))]
    elif how == 5:  # raw bytes spliced in
        data = bytearray("\r\n".join(lines).encode("utf-8", "surrogateescape"))
        k = rng.randrange(len(data))
        data[k:k] = bytes(rng.randrange(256) for _ in range(rng.choice((1, 8, 200))))
        return bytes(data)
    elif how == 6:  # Content-Length that lies
        lines = [f"Content-Length: {rng.choice(['999999999999', '-5', '1', '99999', '9' * 5000])}"
                 if ln.lower().startswith("content-length") else ln for ln in lines]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape")[:65000]


def datagrams(rng: random.Random, n: int, port: int, reply_port: int):
    """(class, bytes): the templates as they are first, then mutations, then random bytes."""
    base = templates(port, reply_port)

    def fresh(text: str, k: int) -> str:  # each its own call and transaction, so each is handled
        return text.replace("CALLID@", f"c{k}-{rng.getrandbits(32):x}@").replace("BRANCH", f"{k}x{rng.getrandbits(32):x}")

    for k, (cls, text) in enumerate(base):
        yield cls, fresh(text, k).encode("utf-8", "surrogateescape")[:65000]
    for k in range(len(base), n):
        if k % 20 == 19:
            yield "random", bytes(rng.randrange(256) for _ in range(rng.choice((1, 12, 400, 1400))))
        else:
            cls, text = rng.choice(base)
            yield f"{cls}-mutated", mutate(rng, fresh(text, k))


def streams(rng: random.Random, port: int):
    """(class, chunks, pause between chunks) for one TCP connection each."""
    via = f"SIP/2.0/TCP {ATTACKER}:5999;branch=z9hG4bK{rng.getrandbits(40):x}"
    ok = _request("OPTIONS", port, via).encode()
    yield "capitals", [b"A" * 65536], 0.0
    yield "huge-content-length", [ok.replace(b"Content-Length: 0", b"Content-Length: 999999999999") + b"x" * 200000], 0.0
    yield "slow-partial", [ok[:k] for k in range(1, 40, 8)], 0.05
    yield "pipeline", [ok * 200], 0.0
    yield "random", [bytes(rng.randrange(256) for _ in range(4000))], 0.0
    yield "no-length", [ok.replace(b"Content-Length: 0\r\n", b"")], 0.0
    while True:
        yield "mutated", [mutate(rng, _request("INVITE", port, via, body=_sdp()))], 0.0


# --- running it ----------------------------------------------------------------------------------

def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_echo(transport: str, port: int, env: dict, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "siptool", "echo", "--listen", f"127.0.0.1:{port}", "-t", transport, *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def options_ok(port: int, transport: str = "udp", timeout: float = 2.0) -> bool:
    """An OPTIONS from the caller's address answered 200."""
    via_t = transport.upper()
    try:
        if transport == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((CALLER, 0))
        else:
            s = socket.create_connection(("127.0.0.1", port), timeout, source_address=(CALLER, 0))
    except OSError:
        return False
    with s:
        s.settimeout(timeout)
        me = s.getsockname()[1]
        branch = f"z9hG4bK{random.getrandbits(40):x}"
        msg = _request("OPTIONS", port, f"SIP/2.0/{via_t} {CALLER}:{me};branch={branch};rport").replace(ATTACKER, CALLER)
        try:
            if transport != "udp":
                s.sendall(msg.encode())
            end, resend = time.time() + timeout, 0.0
            while time.time() < end:
                if transport == "udp" and time.time() >= resend:  # retransmitted as SIP does (timer E)
                    s.sendto(msg.encode(), ("127.0.0.1", port))
                    resend = time.time() + 0.25
                try:
                    s.settimeout(0.25)
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if branch.encode() in data:
                    return data.startswith(b"SIP/2.0 200")
        except OSError:
            return False
    return False


def wait_ready(port: int, transport: str) -> bool:
    end = time.time() + 20
    while time.time() < end:
        if options_ok(port, transport, 0.3):
            return True
        time.sleep(0.1)
    return False


def flood_udp(rng: random.Random, n: int, port: int) -> dict:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
    for s in socks:
        s.bind((ATTACKER, 0))
        s.setblocking(False)
    classes: dict[str, int] = {}
    answers: dict[str, int] = {}

    def drain() -> None:
        for s in socks:
            while True:
                try:
                    data = s.recv(70000)
                except (BlockingIOError, OSError):
                    break
                status = data[8:11].decode("ascii", "replace") if data.startswith(b"SIP/2.0 ") else "request"
                answers[status] = answers.get(status, 0) + 1

    for k, (cls, data) in enumerate(datagrams(rng, n, port, socks[0].getsockname()[1])):
        classes[cls.split("-mutated")[0]] = classes.get(cls.split("-mutated")[0], 0) + 1
        try:
            socks[k % 4].sendto(data, ("127.0.0.1", port))
        except (BlockingIOError, OSError):
            pass
        if k % 200 == 199:
            drain()
            time.sleep(0.001)
    time.sleep(0.5)
    drain()
    for s in socks:
        s.close()
    return {"sent": n, "classes": classes, "answers": answers}


def flood(n: int, port: int) -> dict:
    """As fast as one socket can send: valid OPTIONS (each would cost a transaction) and garbage from
    the attacker, while the real caller, from another address, pings now and then."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ATTACKER, 0))
    s.setblocking(False)
    me = s.getsockname()[1]
    fair = {"tried": 0, "answered": 0}
    answered = 0
    for k in range(n):
        via = f"SIP/2.0/UDP {ATTACKER}:{me};branch=z9hG4bKf{k:x};rport"
        data = _request("OPTIONS", port, via).encode() if k % 2 else b"OPTIONS sip:x SIP/2.0\r\nVia: ;branch=x\r\n\r\n"
        try:
            s.sendto(data, ("127.0.0.1", port))
        except (BlockingIOError, OSError):
            pass
        if k % 5000 == 4999:
            fair["tried"] += 1
            fair["answered"] += options_ok(port, timeout=1.0)
        try:
            while s.recv(70000):
                answered += 1
        except (BlockingIOError, OSError):
            pass
    s.close()
    return {"sent": n, "attacker_answered": answered, "caller_during_flood": fair}


def flood_tcp(rng: random.Random, m: int, port: int) -> dict:
    classes: dict[str, int] = {}
    refused = 0
    held = []
    gen = streams(rng, port)
    for k in range(m):
        cls, chunks, pause = next(gen)
        classes[cls] = classes.get(cls, 0) + 1
        try:
            s = socket.create_connection(("127.0.0.1", port), 2, source_address=(ATTACKER, 0))
        except OSError:
            refused += 1
            continue
        try:
            for c in chunks:
                s.sendall(c)
                if pause:
                    time.sleep(pause)
        except OSError:
            pass
        if k % 3 == 0 and len(held) < 200:
            held.append(s)  # held open, idle: a connection flood
        else:
            s.close()
    during = options_ok(port, "tcp")
    for s in held:
        s.close()
    return {"connections": m, "classes": classes, "refused": refused, "held_open": len(held),
            "options_while_held": during}


def call_ok(port: int, env: dict) -> tuple[bool, str]:
    cmd = [sys.executable, "-m", "siptool", "call", f"sip:echo@127.0.0.1:{port}", "--local-ip", CALLER,
           "--duration", "2", "--json"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    return out.returncode == 0, (out.stderr or out.stdout)[-300:]


def sent_by_agent(pcap: Path, ports: set[int]) -> tuple[list[str], list[str]]:
    """(where the agent's SIP ports sent to, every destination outside loopback), read with tshark."""
    tshark = shutil.which("tshark")
    if tshark is None or not pcap.exists():
        return [], []
    out = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "ip.dst", "-e", "ipv6.dst",
                          "-e", "udp.srcport", "-e", "tcp.srcport"], capture_output=True, text=True, timeout=300).stdout
    replies, outside = [], []
    for line in out.splitlines():
        dst4, dst6, up, tp = (line.split("\t") + ["", "", "", ""])[:4]
        dst = (dst4 or dst6).split(",")[0]  # an ICMP error carries the packet it is about: the outer one
        sport = (up or tp).split(",")[0]
        if sport.isdigit() and int(sport) in ports:
            replies.append(dst)
        if dst and not dst.startswith(("127.", "ff02:")) and dst != "::1":  # ff02: the kernel's own IPv6
            outside.append(dst)
    return replies, outside


def run(args) -> dict:
    rng = random.Random(args.seed)
    random.seed(args.seed)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    udp_port, tcp_port, flood_port = 5060, 5062, 5064
    work = Path(tempfile.mkdtemp(prefix="siptool-hostile-"))
    dump = None
    if args.netns and shutil.which("tcpdump"):
        dump = subprocess.Popen(["tcpdump", "-i", "any", "-w", str(work / "all.pcap"), "-U", "-s", "200",
                                 "not port 22"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    # --rate 0: every hostile message reaches the parsers and handlers; the flood's agent keeps its limit
    echoes = {"udp": start_echo("udp", udp_port, env, "--rate", "0"), "tcp": start_echo("tcp", tcp_port, env, "--rate", "0"),
              "flood": start_echo("udp", flood_port, env)}
    result: dict = {"seed": args.seed}
    try:
        ready = all(wait_ready(p, t) for p, t in ((udp_port, "udp"), (tcp_port, "tcp"), (flood_port, "udp")))
        result["ready"] = ready
        if not ready:
            return result
        result["rss_kb_before"] = {k: rss_kb(p.pid) for k, p in echoes.items()}
        result["udp"] = flood_udp(rng, args.datagrams, udp_port)
        result["tcp"] = flood_tcp(rng, args.connections, tcp_port)
        result["flood"] = flood(args.flood, flood_port)
        time.sleep(1.0)
        result["options_after"] = {"udp": options_ok(udp_port), "tcp": options_ok(tcp_port, "tcp"),
                                   "flood": options_ok(flood_port)}
        result["call_after"], result["call_output"] = call_ok(udp_port, env)
        result["rss_kb_after"] = {k: rss_kb(p.pid) for k, p in echoes.items()}
        result["alive"] = {k: p.poll() is None for k, p in echoes.items()}
    finally:
        for p in echoes.values():
            p.terminate()
        errs = {k: p.communicate(timeout=20)[1] for k, p in echoes.items()}
        if dump is not None:
            time.sleep(0.5)
            dump.terminate()
            dump.wait(10)
    result["stderr_faults"] = sum(("Traceback" in e) + e.count("internal error") for e in errs.values())
    result["stderr_sample"] = {k: e[-400:] for k, e in errs.items() if "Traceback" in e or "internal error" in e}
    if dump is not None:
        replies, outside = sent_by_agent(work / "all.pcap", {udp_port, tcp_port})
        result["agent_packets"] = len(replies)
        result["agent_destinations"] = sorted(set(replies))
        result["off_loopback"] = sorted(set(outside))
    shutil.rmtree(work, ignore_errors=True)
    return result


def verdict(r: dict, rss_growth_mb: float) -> list[str]:
    """What did not hold, one line each (empty: all did)."""
    bad = []
    if not r.get("ready"):
        return ["the echo agents never answered OPTIONS"]
    if not all(r["alive"].values()):
        bad.append(f"an echo agent died: {r['alive']}")
    if not all(r["options_after"].values()):
        bad.append(f"OPTIONS after the attack: {r['options_after']}")
    if not r["call_after"]:
        bad.append(f"the call after the attack failed: {r['call_output']}")
    fair = r["flood"]["caller_during_flood"]
    if fair["tried"] and fair["answered"] < fair["tried"]:
        bad.append(f"the real caller was starved during the flood: {fair}")
    if not r["tcp"]["options_while_held"]:
        bad.append("a TCP OPTIONS went unanswered while the flood's connections were held")
    if r["stderr_faults"]:
        bad.append(f"{r['stderr_faults']} tracebacks/internal errors: {r['stderr_sample']}")
    for k in r["rss_kb_before"]:
        grew = (r["rss_kb_after"][k] - r["rss_kb_before"][k]) / 1024
        if grew > rss_growth_mb:
            bad.append(f"{k} agent's memory grew {grew:.0f} MB (bound {rss_growth_mb:g} MB)")
    stray = [d for d in r.get("agent_destinations", []) if d not in (ATTACKER, CALLER)]
    if stray or r.get("off_loopback"):
        bad.append(f"the agent sent to {stray + r.get('off_loopback', [])}")
    return bad


def in_netns(argv: list[str]) -> int:
    """Run this script again inside a new namespace: lo up, a decoy interface (a veth pair) with the
    default route, so a packet sent off loopback is seen instead of refused."""
    ns = f"siptool-hostile-{os.getpid()}"
    sh = ["ip", "netns", "exec", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "add", "decoy", "type", "veth", "peer", "name", "decoy-peer"],
                    ["ip", "link", "set", "decoy-peer", "up"],
                    ["ip", "addr", "add", "198.51.100.1/24", "dev", "decoy"], ["ip", "link", "set", "decoy", "up"],
                    ["ip", "route", "add", "default", "dev", "decoy"]):
            subprocess.run(sh + cmd, check=True)
        return subprocess.run(sh + [sys.executable, __file__, "--inside", *argv]).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datagrams", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=600)
    ap.add_argument("--flood", type=int, default=50000, help="datagrams sent as fast as possible at a third agent")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rss-growth-mb", type=float, default=40.0)
    ap.add_argument("--netns", action="store_true", help="run in a network namespace of its own (root)")
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.netns and not args.inside:
        return in_netns([a for a in sys.argv[1:]])
    r = run(args)
    r["failures"] = verdict(r, args.rss_growth_mb)
    if args.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"{k}: {v}")
    return 1 if r["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
