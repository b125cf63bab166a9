"""Helpers of the agent tests (import as `agent.helpers`)."""

from __future__ import annotations

import os
import subprocess
import sys

from support import REPO


def siptool(*args, env=None, timeout=40, prefix=()):
    """Run `siptool ARGS` as a user does (prefix: e.g. `ip netns exec NS`)."""
    return subprocess.run([*prefix, sys.executable, "-m", "siptool", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def coturn_args(ip: str, port: int, workdir) -> list[str]:
    """coturn's turnserver as a plain STUN server (RFC 5389 Binding only) on ip:port, its files in
    `workdir` (no CLI, no TLS, no relay, no auth)."""
    return ["turnserver", "-n", "--stun-only", "-L", ip, "-p", str(port), "--no-cli", "--no-tls", "--no-dtls",
            "-z", "--no-software-attribute", "--simple-log", "--log-file", str(workdir / "turn.log"),
            "--pidfile", str(workdir / "turn.pid"), "-b", str(workdir / "turndb")]


def udp_payloads(path) -> list[tuple[tuple[str, int], tuple[str, int], bytes]]:
    """(source, destination, payload) of each UDP datagram in a `--pcap` file (raw IPv4, LINKTYPE 101)."""
    import socket
    import struct

    data = open(path, "rb").read()
    out, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        pkt = data[pos + 16:pos + 16 + incl]
        pos += 16 + incl
        ihl = (pkt[0] & 15) * 4
        if pkt[9] != 17:
            continue
        sport, dport = struct.unpack_from("!HH", pkt, ihl)
        out.append(((socket.inet_ntoa(pkt[12:16]), sport), (socket.inet_ntoa(pkt[16:20]), dport), pkt[ihl + 8:]))
    return out
