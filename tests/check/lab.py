"""Shared by the check tests: kamailio (digest auth, registrar) routing to siptool echo agents, on free
loopback ports, started once per module and always stopped with their process groups."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from interop.peers import Peer, free_port
from support import REPO, require_binary

from siptool.agent import TlsOptions, options_ping
from siptool.agent.caller import AgentError

async def run_in_process(suite):
    """A parsed suite run by check's own Driver in this event loop (against in-process agents); the
    Driver always closed."""
    from siptool.check.runner import run_suite
    from siptool.check.uac import Driver

    ua = Driver(suite.target)
    try:
        return await run_suite(suite, ua)
    finally:
        ua.close()


HERE = Path(__file__).resolve().parent
XSD = HERE / "junit.xsd"
PASSWORD = "s3cret-pw"


def _wait_sip(port: int, transport: str = "udp", deadline: float = 20.0) -> None:
    """Until the peer answers OPTIONS (it is listening)."""
    scheme = "sips" if transport == "tls" else "sip"
    end = time.monotonic() + deadline
    while True:
        try:
            asyncio.run(asyncio.wait_for(options_ping(f"{scheme}:127.0.0.1:{port}", transport, t1=0.05,
                                                      tls=_insecure() if transport == "tls" else None), 5))
            return
        except (AgentError, OSError, asyncio.TimeoutError):
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _insecure():
    return TlsOptions(insecure=True)


def _echo(port: int, *extra) -> Peer:
    return Peer([sys.executable, "-m", "siptool", "echo", "--listen", f"127.0.0.1:{port}", *extra], cwd=REPO)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """kamailio on a free port routing to four echo agents: normal, ringing, PCMA-only, and one on TLS."""
    kamailio = require_binary("kamailio")
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")  # Debian's openssl is always there where kamailio is
    d = tmp_path_factory.mktemp("lab")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "key.pem", "-out",
                    d / "cert.pem", "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    ports = {name: free_port() for name in ("kamailio", "echo", "ring", "pcma", "tls")}
    peers: list[Peer] = []
    try:
        peers.append(_echo(ports["echo"]))
        peers.append(_echo(ports["ring"], "--ring", "15"))
        peers.append(_echo(ports["pcma"], "--codec", "PCMA"))
        peers.append(_echo(ports["tls"], "--transport", "tls", "--cert", d / "cert.pem", "--key", d / "key.pem"))
        modules = next((os.path.dirname(p) for p in glob.glob("/usr/lib/*/kamailio/modules/tm.so")
                        + glob.glob("/usr/lib/kamailio/modules/tm.so")), "/usr/lib/x86_64-linux-gnu/kamailio/modules")
        cfg = (HERE / "kamailio.cfg").read_text()
        for key, value in (("DEFINES", ""), ("HOST", "127.0.0.1"), ("PORT", ports["kamailio"]), ("MODULES", modules),
                           ("PASSWORD", PASSWORD), ("ECHO", f"127.0.0.1:{ports['echo']}"),
                           ("RING", f"127.0.0.1:{ports['ring']}"), ("PCMA", f"127.0.0.1:{ports['pcma']}")):
            cfg = cfg.replace(f"@{key}@", str(value))
        (d / "kamailio.cfg").write_text(cfg)
        peers.append(Peer([kamailio, "-f", d / "kamailio.cfg", "-DD", "-E", "-m", "32", "-M", "8", "-Y", d,
                           "-P", d / "kamailio.pid"]))
        for name in ("echo", "ring", "pcma", "kamailio"):
            _wait_sip(ports[name])
        _wait_sip(ports["tls"], "tls")
        yield {"ports": ports, "dir": d, "peers": peers}
    finally:
        for p in peers:
            p.stop()  # the whole process group: kamailio's forked workers too (tests/interop/peers.py)
