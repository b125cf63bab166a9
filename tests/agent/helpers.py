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


def rtcp_blocks(pcap, port: int) -> list[tuple[int, int, int, int]]:
    """(SSRC, fraction lost /256, cumulative lost, jitter in timestamp units) of each RTCP report
    block sent from UDP `port`, in capture order, as tshark decodes them."""
    from support import require_binary

    out = subprocess.run([require_binary("tshark"), "-r", str(pcap), "-d", f"udp.port=={port},rtcp", "-Y",
                          f"rtcp && udp.srcport == {port}", "-T", "fields", "-e", "rtcp.ssrc.identifier", "-e",
                          "rtcp.ssrc.fraction", "-e", "rtcp.ssrc.cum_nr", "-e", "rtcp.ssrc.jitter"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    blocks = []
    for line in out.splitlines():
        columns = [c.split(",") if c else [] for c in line.split("\t")]
        blocks += [(int(s, 16), int(f), int(c), int(j)) for s, f, c, j in zip(*columns)]
    return blocks


def check_reflected_reports(pcap, report) -> None:
    """A call through an echo that sends the caller's packets back with the caller's SSRC: the
    caller's RTCP reports on its own SSRC (what came back). The stream back to the caller carries
    those reports, as tshark reads them; the caller's own stream carries none (the echo reports
    nothing about it), not the caller's report about its own SSRC (analysis/reception.py)."""
    (call,) = report.calls
    offer = next(e for e in call.sdp if e.role == "offer")
    ours = f"{offer.address}:{offer.port}"
    sent = next(s for s in call.streams if s.src == ours)
    back = next(s for s in call.streams if s.dst == ours)
    assert sent.ssrc == back.ssrc  # the echo sent our SSRC back
    blocks = [b for b in rtcp_blocks(pcap, offer.port + 1) if b[0] == sent.ssrc]
    assert blocks, "the caller sent no report about what came back"
    assert back.rtcp_lost == blocks[-1][2] and back.rtcp_loss_pct == round(max(b[1] for b in blocks) * 100 / 256, 2)
    assert back.rtcp_jitter_ms == round(blocks[-1][3] * 1000 / back.clock_rate, 3)
    assert (sent.rtcp_lost, sent.rtcp_loss_pct, sent.rtcp_jitter_ms, sent.rtcp_rtt_ms) == (None, None, None, None)
