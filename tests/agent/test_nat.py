"""`siptool call` from behind a real NAT: three network namespaces made by the test.

    client 10.0.0.2  --  10.0.0.1 router 203.0.113.1  --  203.0.113.10 server
                           (iptables MASQUERADE)

The server side (documentation addresses, RFC 5737) has no route back to 10.0.0.0/24: only what the
NAT maps reaches the client. `siptool echo` (and coturn for STUN) run on the server, `siptool call` on
the client with its defaults. Every address is inside the namespaces; the host's network is untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from agent.helpers import siptool, udp_payloads
from interop.peers import Peer
from support import REPO, require_binary

PRIVATE, ROUTER_IN, ROUTER_OUT, SERVER = "10.0.0.2", "10.0.0.1", "203.0.113.1", "203.0.113.10"


class NatLab:
    """The namespaces, veth pairs and NAT rule; `close()` deletes them (with all they hold)."""

    def __init__(self) -> None:
        tag = os.getpid()
        self.client, self.router, self.server = (f"siptool-{tag}-{n}" for n in ("client", "router", "server"))
        self.made: list[str] = []
        self.peers: list[Peer] = []
        c, rc, rs, s = f"c{tag}", f"rc{tag}", f"rs{tag}", f"s{tag}"
        for ns in (self.client, self.router, self.server):
            self._ip("netns", "add", ns)
            self.made.append(ns)
            self._ip("-n", ns, "link", "set", "lo", "up")
        self._ip("-n", self.router, "link", "add", rc, "type", "veth", "peer", "name", c, "netns", self.client)
        self._ip("-n", self.router, "link", "add", rs, "type", "veth", "peer", "name", s, "netns", self.server)
        for ns, dev, addr in ((self.client, c, PRIVATE), (self.router, rc, ROUTER_IN),
                              (self.router, rs, ROUTER_OUT), (self.server, s, SERVER)):
            self._ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            self._ip("-n", ns, "link", "set", dev, "up")
        self._ip("-n", self.client, "route", "add", "default", "via", ROUTER_IN)
        self.run(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run(self.router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", rs, "-j", "MASQUERADE")

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def run(self, ns: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *args], check=True, capture_output=True, text=True)

    def prefix(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", ns)

    def start(self, ns: str, args: list[str], port: int) -> Peer:
        """A server process in `ns`, once it has bound UDP `port`."""
        p = Peer([*self.prefix(ns), *args], cwd=REPO)
        self.peers.append(p)
        deadline = time.time() + 15
        while time.time() < deadline and p.proc.poll() is None:
            if f":{port} " in self.run(ns, "ss", "-Hlun").stdout:
                return p
            time.sleep(0.1)
        raise RuntimeError(f"{args[0]} did not start in {ns}: {p.stop()}")

    def echo(self, *args: str) -> Peer:
        return self.start(self.server, [sys.executable, "-m", "siptool", "echo", "--listen", f"{SERVER}:5060", *args],
                          5060)

    def stop_peers(self) -> None:
        for p in self.peers:
            p.stop()
        self.peers.clear()

    def close(self) -> None:
        self.stop_peers()
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("needs root (ip netns, iptables)")
    require_binary("ip")
    require_binary("iptables")
    lab = NatLab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def nat(lab):
    yield lab
    lab.stop_peers()


def _call(lab: NatLab, *args, pcap=None):
    extra = ["--pcap", str(pcap)] if pcap else []
    return siptool("call", f"sip:100@{SERVER}:5060", *args, *extra, prefix=lab.prefix(lab.client))


def _sent(pcap, start: bytes) -> bytes:
    return next(p for src, _dst, p in udp_payloads(pcap) if src[0] == PRIVATE and p.startswith(start))


def test_call_from_behind_nat_learns_and_advertises_the_public_address(nat, tmp_path):
    nat.echo()
    r = _call(nat, "--duration", "1.5", "--json", pcap=tmp_path / "call.pcap")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    d = json.loads(r.stdout)
    n = d["nat"]
    local_port = int(n["local"].rpartition(":")[2])
    assert n["local"] == f"{PRIVATE}:{local_port}"  # the route's source address, not 127.0.0.1
    assert n["seen"].startswith(f"{ROUTER_OUT}:") and n["learned_by"] == "OPTIONS" and n["behind_nat"] is True
    assert n["contact"] == n["seen"] and n["sdp"].startswith(f"{ROUTER_OUT}:")
    assert n["text"] == (f"NAT: local {n['local']}, the far end sees {n['seen']}; "
                         "from an OPTIONS' received/rport (RFC 3581); "
                         f"Contact {n['seen']}, SDP {n['sdp']}; media relies on the far end latching to our RTP "
                         "(symmetric RTP, RFC 4961)")
    invite = _sent(tmp_path / "call.pcap", b"INVITE ")
    assert f"Contact: <sip:siptool@{n['seen']}>".encode() in invite
    assert f"c=IN IP4 {ROUTER_OUT}\r\n".encode() in invite and f"o=siptool".encode() in invite
    assert f"Via: SIP/2.0/UDP {PRIVATE}:{local_port};".encode() in invite  # Via keeps the local sent-by (RFC 3581)
    assert _sent(tmp_path / "call.pcap", b"OPTIONS ")  # the probe went first
    assert d["ok"] and d["rx"]["packets"] > 50 and d["rx"]["loss_pct"] == 0.0


def test_far_end_hangs_up_through_the_nat(nat):
    """The echo's BYE goes to our Contact: it reaches us only because Contact has the NAT's address."""
    nat.echo("--hangup-after", "1")
    r = _call(nat, "--duration", "4", "--no-color")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "<- BYE" in r.stdout and "ended by remote" in r.stdout
    assert f"NAT: local {PRIVATE}:" in r.stdout and f"the far end sees {ROUTER_OUT}:" in r.stdout


def test_public_ip_is_advertised_without_a_probe(nat, tmp_path):
    nat.echo()
    r = _call(nat, "--duration", "1", "--json", "--public-ip", ROUTER_OUT, pcap=tmp_path / "call.pcap")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    n = json.loads(r.stdout)["nat"]
    assert n["learned_by"] == "--public-ip" and n["contact"].startswith(f"{ROUTER_OUT}:")
    assert n["sdp"].startswith(f"{ROUTER_OUT}:")
    assert not any(p.startswith(b"OPTIONS ") for _s, _d, p in udp_payloads(tmp_path / "call.pcap"))
    assert f"c=IN IP4 {ROUTER_OUT}\r\n".encode() in _sent(tmp_path / "call.pcap", b"INVITE ")


def test_stun_gives_the_public_address_and_rtp_port(nat, tmp_path):
    from agent.helpers import coturn_args

    require_binary("turnserver")
    nat.echo()
    nat.start(nat.server, coturn_args(SERVER, 3478, tmp_path), 3478)
    r = _call(nat, "--duration", "1", "--json", "--stun", SERVER, pcap=tmp_path / "call.pcap")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    n = json.loads(r.stdout)["nat"]
    assert n["learned_by"] == f"STUN {SERVER}:3478" and n["behind_nat"] is True
    assert n["stun_rtp"].startswith(f"{ROUTER_OUT}:") and n["sdp"] == n["stun_rtp"]
    assert n["contact"].startswith(f"{ROUTER_OUT}:") and n["seen"] == n["contact"]  # STUN and rport agree
    invite = _sent(tmp_path / "call.pcap", b"INVITE ")
    port = n["stun_rtp"].rpartition(":")[2]
    assert f"c=IN IP4 {ROUTER_OUT}\r\n".encode() in invite and f"m=audio {port} ".encode() in invite


def test_dead_port_behind_nat_fails_at_once(nat):
    """The ICMP port unreachable comes back through the NAT (conntrack RELATED) to the probe."""
    r = siptool("call", f"sip:100@{SERVER}:5999", "--json", prefix=nat.prefix(nat.client))
    assert r.returncode == 1
    d = json.loads(r.stdout)
    assert d["error"] == f"nothing listens on {SERVER}:5999 (ICMP port unreachable)" and d["call_id"] == ""
