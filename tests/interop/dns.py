"""A real DNS server for the RFC 3263 tests: dnsmasq on a 127.0.0.x address and a free port, serving
NAPTR, SRV and A records for test domains (`--local=/test/`: a name it was not given is NXDOMAIN,
never asked upstream). Always stopped with the Peer."""

from __future__ import annotations

import os
import socket
import time

from interop.peers import Peer
from support import require_binary


def free_udp(host: str) -> int:
    """A UDP and TCP port free on `host` (dnsmasq takes both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((host, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free port on {host}")


class Dnsmasq:
    """`records`: dnsmasq options, e.g. "--srv-host=_sip._udp.a.test,x.a.test,5070,10,60"."""

    def __init__(self, records: list[str]) -> None:
        binary = require_binary("dnsmasq")
        self.host = f"127.0.0.{2 + os.getpid() % 250}"  # apart from other runs' servers
        self.port = free_udp(self.host)
        self.peer = Peer([binary, "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                          f"--listen-address={self.host}", f"--port={self.port}", "--local=/test/",
                          "--cache-size=0", *records])

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def wait(self, name: str, timeout: float = 20.0) -> None:
        """Until it answers for `name` (an A record it serves)."""
        import dns.resolver

        r = dns.resolver.Resolver(configure=False)
        r.nameservers, r.port, r.lifetime = [self.host], self.port, 1.0
        end = time.monotonic() + timeout
        while True:
            try:
                r.resolve(name, "A")
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > end or self.peer.proc.poll() is not None:
                    raise RuntimeError(f"dnsmasq did not answer: {self.peer.stop()}") from None
                time.sleep(0.1)

    def stop(self) -> str:
        return self.peer.stop()
