"""Fixtures of the agent tests: `siptool echo` as a process of its own, on a free loopback port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest
from agent.helpers import coturn_args
from interop.peers import Peer, free_port
from support import REPO, require_binary

from siptool.agent import options_ping
from siptool.agent.caller import AgentError


@pytest.fixture
def echo_proc():
    """start(*args) -> (Popen, port): `siptool echo` answering OPTIONS; killed at the end."""
    procs = []

    def start(*args, env=None, tls=False):
        port = free_port()
        p = subprocess.Popen([sys.executable, "-m", "siptool", "echo", "--listen", f"127.0.0.1:{port}",
                              *map(str, args)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})})
        procs.append(p)
        deadline = time.time() + 15
        while time.time() < deadline:  # wait until it answers OPTIONS (TLS: accepts a connection)
            try:
                if tls:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                else:
                    asyncio.run(options_ping(f"sip:127.0.0.1:{port}", t1=0.05))
                break
            except (AgentError, OSError):
                time.sleep(0.1)
        return p, port

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.fixture
def stun_server(tmp_path):
    """start(ip, port, prefix=()) -> Peer: coturn answering STUN Binding requests; stopped at the end."""
    require_binary("turnserver")
    started: list[Peer] = []

    def start(ip: str, port: int, prefix=()) -> Peer:
        p = Peer([*prefix, *coturn_args(ip, port, tmp_path)])
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
