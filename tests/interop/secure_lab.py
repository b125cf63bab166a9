"""A network namespace of a test's own for the secure-trunk tests (SRTP, TLS): loopback only, named
`siptool-<pid>-<name>`, deleted with everything in it. Inside, the peers take the fixed ports the
issue-17 fixtures' kamailio uses (fixtures/kamailio.cfg: UDP 5060, TLS 5061, WS 8080, WSS 8443), the
callee listens on 5062: the namespace is new, so they are free. tcpdump captures its loopback.

    lab = SecureLab(tmp_path, "srtp")
    lab.kamailio("WRONG_KEY")          # the fixtures' proxy, relaying INVITEs to 127.0.0.1:5062
    lab.echo("--srtp", "optional")     # siptool echo on 5062
    proc = lab.siptool("call", "sip:alice@127.0.0.1:5060", "--srtp", "mandatory", "--json")
    lab.close()
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from interop.peers import Peer
from support import REPO, require_binary

HOST, CALLEE = "127.0.0.1", 5062
FIXTURES = REPO / "fixtures"


class SecureLab:
    def __init__(self, workdir: Path, name: str) -> None:
        require_binary("ip")
        self.dir = workdir
        self.ns = f"siptool-{os.getpid()}-{name}"
        self.peers: list[Peer] = []
        subprocess.run(["ip", "netns", "add", self.ns], check=True, capture_output=True)
        self.run("ip", "link", "set", "lo", "up")

    @property
    def prefix(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.ns)

    def run(self, *args, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              cwd=REPO, **kw)

    def siptool(self, *args, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "siptool", *args, timeout=timeout,
                        env={**os.environ, **(env or {})})

    def start(self, args, port: int, proto: str = "u", ready=None) -> Peer:
        """A peer in the namespace, once it listens on `port` (ss -l{proto}n) and `ready()` holds."""
        p = Peer([*self.prefix, *map(str, args)], cwd=self.dir)
        self.peers.append(p)
        deadline = time.time() + 20
        while time.time() < deadline and p.proc.poll() is None:
            if f":{port} " in self.run("ss", f"-Hl{proto}n").stdout and (ready is None or ready()):
                return p
            time.sleep(0.05)
        raise RuntimeError(f"{Path(str(args[0])).name} did not start: {p.stop()[-2000:]}")

    def certificate(self) -> tuple[Path, Path]:
        """A self-signed test certificate (CN sip.example.test) and its key."""
        cert, key = self.dir / "cert.pem", self.dir / "key.pem"
        if not cert.exists():
            subprocess.run([require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            key, "-out", cert, "-days", "2", "-subj", "/CN=sip.example.test", "-addext",
                            "subjectAltName=DNS:sip.example.test"], check=True, capture_output=True)
        return cert, key

    def kamailio(self, *defines: str, callee: int = CALLEE) -> Peer:
        """The issue-17 fixtures' kamailio (TLS, WebSocket), relaying new INVITEs to 127.0.0.1:`callee`;
        `defines`: WRONG_KEY, DOWNGRADE (fixtures/kamailio.cfg)."""
        binary = require_binary("kamailio")
        cert, key = self.certificate()
        modules = next(str(p.parent) for p in (*Path("/usr/lib").glob("*/kamailio/modules/tm.so"),
                                               *Path("/usr/lib/kamailio/modules").glob("tm.so")))
        kdir = self.dir / "kamailio"
        kdir.mkdir(exist_ok=True)
        cfg = (FIXTURES / "kamailio.cfg").read_text()
        for name, value in (("@HOST@", HOST), ("@CALLEE@", f"{HOST}:{callee}"), ("@MODULES@", modules),
                            ("@DIR@", str(kdir))):
            cfg = cfg.replace(name, value)
        (kdir / "kamailio.cfg").write_text(cfg)
        (kdir / "tls.cfg").write_text(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"
            f"private_key = {key}\ncertificate = {cert}\n\n[client:default]\nverify_certificate = no\n"
            "require_certificate = no\n")
        args = [binary, "-f", kdir / "kamailio.cfg", "-DD", "-E", "-m", "32", "-M", "8", "-Y", kdir, "-P",
                kdir / "pid"]
        for d in defines:
            args += ["-A", d]
        return self.start(args, 8443, "t", ready=lambda: ":5060 " in self.run("ss", "-Hlun").stdout)

    def echo(self, *args: str, port: int = CALLEE) -> Peer:
        return self.start([sys.executable, "-m", "siptool", "echo", "--listen", f"{HOST}:{port}", *args], port,
                          "t" if "tls" in args else "u")

    def baresip(self, name: str, port: int, rtp: int, account: str, source: str = "aubridge,loop",
                modules: tuple[str, ...] = ("g711", "aubridge", "aufile", "srtp", "account", "menu"),
                extra: tuple[str, ...] = ()) -> tuple[Path, list[str]]:
        """A headless baresip's config directory and its command (not started)."""
        conf = self.dir / name
        conf.mkdir(exist_ok=True)
        lines = [f"sip_listen {HOST}:{port}", f"net_interface {HOST}", "audio_player aubridge,loop",
                 f"audio_source {source}", "module_path /usr/lib/baresip/modules",
                 *(f"module {m}.so" for m in modules), f"rtp_ports {rtp}-{rtp + 9}"]
        (conf / "config").write_text("\n".join(lines) + "\n")
        (conf / "accounts").write_text(account + "\n")
        return conf, [require_binary("baresip"), "-f", conf, *extra]

    def capture(self, name: str, bpf: str = "") -> "Capture":
        """tcpdump on the loopback (`bpf`: a filter, e.g. to leave out a proxy's other leg)."""
        return Capture(self, self.dir / f"{name}.pcap", bpf)

    def close(self) -> None:
        for p in self.peers:
            p.stop()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)


class Capture:
    """tcpdump on the namespace's loopback, from `start()` (once it listens) to `stop()` (every packet
    written, none dropped by the kernel)."""

    def __init__(self, lab: SecureLab, path: Path, bpf: str = "") -> None:
        self.lab, self.path, self.bpf = lab, path, bpf
        self.log = path.with_suffix(".tcpdump.log")
        self.peer: Peer | None = None

    def start(self) -> "Capture":
        tcpdump = require_binary("tcpdump")
        self.peer = Peer([*self.lab.prefix, "sh", "-c", f"exec {tcpdump} -i lo -s 0 -B 16384 -U --immediate-mode -n "
                          f"-Z root -w {self.path} {shlex.quote(self.bpf)} 2>{self.log}"])
        deadline = time.time() + 15
        while time.time() < deadline and "listening on" not in (self.log.read_text() if self.log.exists() else ""):
            time.sleep(0.05)
        return self

    def stop(self) -> Path:
        import signal

        self.peer.proc.send_signal(signal.SIGINT)
        self.peer.wait(15)
        text = self.log.read_text()
        assert "\n0 packets dropped by kernel" in text, text
        return self.path
