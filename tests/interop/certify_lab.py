"""siptool's trunk certification lab (the README's "Certifying a trunk" runs in it): dnsmasq serving
the records of trunk.test and its servers, all on loopback:

    trunk.test           SRV sbc1 (priority 10), sbc2 (20)
    sbc1.trunk.test      SRV sbc1: kamailio refusing calls past LIMIT in progress (its dialog module,
                         fixtures/scenarios/kamailio_proxy.cfg's CCC_LIMIT) in front of an echo agent
    degraded.trunk.test  SRV sbc0 (10: nothing listens), sbc3 (15: an echo agent answering 503 with
                         Retry-After 30), sbc2 (20)
    sbc2                 an echo agent
"""

from __future__ import annotations

import socket

from check.lab import _echo, _wait_sip
from interop.dns import Dnsmasq
from interop.peers import Peer, free_port
from support import REPO, require_binary

LIMIT = 4


def kamailio_ccc(directory, port: int, callee: int, limit: int) -> Peer:
    """kamailio as a trunk with a concurrent call limit, on 127.0.0.1:port, relaying to callee."""
    kamailio = require_binary("kamailio")
    cfg = (REPO / "fixtures" / "scenarios" / "kamailio_proxy.cfg").read_text()
    for key, value in (("LISTEN", f"listen=udp:127.0.0.1:{port}"), ("MHOMED", "0"),
                       ("CALLEE", f"127.0.0.1:{callee}"), ("LIMIT", str(limit))):
        cfg = cfg.replace(f"@{key}@", value)
    (directory / "kamailio.cfg").write_text(cfg)
    return Peer([kamailio, "-f", directory / "kamailio.cfg", "-DD", "-E", "-m", "32", "-M", "8", "-Y", directory,
                 "-P", directory / "kamailio.pid", "-A", "CCC_LIMIT"])


class CertifyLab:
    def __init__(self, directory) -> None:
        self.ports = {name: free_port() for name in ("sbc0", "sbc1", "echo1", "sbc2", "sbc3")}
        p = self.ports
        self.peers = [_echo(p["echo1"]), _echo(p["sbc2"]), _echo(p["sbc3"], "--reject", "503", "--retry-after", "30"),
                      kamailio_ccc(directory, p["sbc1"], p["echo1"], LIMIT)]
        srv = "--srv-host=_sip._udp.{},{}.trunk.test,{},{},0"
        self.dns = Dnsmasq([*(f"--host-record=sbc{i}.trunk.test,127.0.0.1" for i in range(4)),
                            srv.format("trunk.test", "sbc1", p["sbc1"], 10), srv.format("trunk.test", "sbc2", p["sbc2"], 20),
                            srv.format("sbc1.trunk.test", "sbc1", p["sbc1"], 10),
                            srv.format("degraded.trunk.test", "sbc0", p["sbc0"], 10),
                            srv.format("degraded.trunk.test", "sbc3", p["sbc3"], 15),
                            srv.format("degraded.trunk.test", "sbc2", p["sbc2"], 20)])
        self.peers.append(self.dns.peer)

    def wait(self) -> None:
        self.dns.wait("sbc1.trunk.test")
        for name in ("sbc1", "echo1", "sbc2", "sbc3"):
            _wait_sip(self.ports[name])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # sbc0: still nothing there
            s.bind(("127.0.0.1", self.ports["sbc0"]))

    def stop(self) -> None:
        for peer in self.peers:
            peer.stop()
