"""REGISTER against kamailio's registrar: digest, refresh before expiry, unregister, and NAT learnt
from received/rport (RFC 3581) through a loopback relay that makes the source address differ."""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import sys
import threading

from support import REPO

from siptool.agent.register import Registration

from check.lab import PASSWORD


def registrar(lab) -> str:
    return f"sip:127.0.0.1:{lab['ports']['kamailio']}"


def test_refresh_then_unregister(lab):
    async def run():
        reg = Registration(registrar(lab), "sip:alice@127.0.0.1", "alice", PASSWORD, expires=3, t1=0.05,
                           refresh_margin=1.0)
        first = await reg.start()
        await asyncio.sleep(3.6)  # refresh due after 1.5 s and 3.0 s (half of the 3 s granted)
        last = await reg.stop()
        return reg, first, last

    reg, first, last = asyncio.run(run())
    assert (first.status, first.challenged, first.expires) == (200, "401", 3)
    assert reg.refreshes >= 2 and all(e.status == 200 for e in reg.history)
    mine = first.contact.strip("<>")
    assert any(mine in b for b in first.bindings)
    assert last.status == 200 and not any(mine in b for b in last.bindings)  # Expires: 0 removed it


class Relay(threading.Thread):
    """UDP forwarder on 127.0.0.5: client -> registrar from its own port, answers back (a NAT, in effect)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(daemon=True)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.5", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.5", 0))
        self.upstream, self.client, self.stop_flag = upstream, None, False

    def run(self) -> None:
        while not self.stop_flag:
            ready, _, _ = select.select([self.front, self.back], [], [], 0.1)
            for sock in ready:
                data, addr = sock.recvfrom(65535)
                if sock is self.front:
                    self.client = addr
                    self.back.sendto(data, self.upstream)
                elif self.client:
                    self.front.sendto(data, self.client)


def test_nat_learnt_from_rport_goes_into_contact(lab):
    relay = Relay(("127.0.0.1", lab["ports"]["kamailio"]))
    relay.start()
    try:
        async def run():
            reg = Registration(f"sip:127.0.0.5:{relay.front.getsockname()[1]}", "sip:bob@127.0.0.1", "bob",
                               PASSWORD, expires=60, t1=0.05)
            first = await reg.start()
            refresh = await reg.register(60)
            await reg.stop()
            return reg, first, refresh

        reg, first, refresh = asyncio.run(run())
    finally:
        relay.stop_flag = True
        relay.join(2)
    public = ("127.0.0.5", relay.back.getsockname()[1])
    assert reg.public == public
    # the challenge revealed the NAT, so already the authenticated REGISTER carried the public Contact
    assert first.status == 200 and f"127.0.0.5:{public[1]}" in first.contact
    assert any(f"127.0.0.5:{public[1]}" in b for b in refresh.bindings)


def test_register_command_exit_codes(lab):
    env = {**os.environ, "REG_PW": PASSWORD, "BAD_PW": "nope"}
    cmd = [sys.executable, "-m", "siptool", "register", "sip:carol@127.0.0.1", "--registrar", registrar(lab),
           "--t1", "0.05", "--expires", "30"]
    ok = subprocess.run(cmd + ["--password-env", "REG_PW"], capture_output=True, text=True, env=env, cwd=REPO,
                        timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "401" in ok.stdout and "registered: 0 refresh(es), unregistered at the end" in ok.stdout
    bad = subprocess.run(cmd + ["--password-env", "BAD_PW", "--json"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=60)
    assert bad.returncode == 1 and "nope" not in bad.stdout + bad.stderr
    assert '"registered": false' in bad.stdout
