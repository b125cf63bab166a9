"""Fixtures for interop tests: real peers on free loopback ports, stopped by the finalizer."""

from __future__ import annotations

import time

import pytest
from interop.peers import Peer
from support import require_binary


@pytest.fixture
def peers():
    started: list[Peer] = []

    def start(args, cwd=None, settle: float = 0.0) -> Peer:
        p = Peer(args, cwd)
        started.append(p)
        if settle:
            time.sleep(settle)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def sipp():
    return require_binary("sipp")


@pytest.fixture
def kamailio():
    return require_binary("kamailio")
