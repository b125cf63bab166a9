"""A hostile peer against live `siptool echo` processes (bench/hostile.py, bounded here): thousands of
malformed datagrams and hundreds of hostile TCP connections, a flood from one source, then an
OPTIONS and a real call. As root it runs in a network namespace of its own with a decoy interface and
the default route, and every packet is recorded: each the agent sends must go to the loopback source
it answers, none anywhere else. A longer run is one command (bench/hostile.py --help)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import REPO, require_binary


def test_echo_survives_a_hostile_peer():
    args = ["--datagrams", "4000", "--connections", "200", "--flood", "20000", "--seed", "3", "--json"]
    netns = os.geteuid() == 0
    if netns:
        for tool in ("ip", "tcpdump", "tshark"):
            require_binary(tool)
        args.append("--netns")
    out = subprocess.run([sys.executable, str(REPO / "bench" / "hostile.py"), *args], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result: {out.stderr[-2000:]}"
    r = json.loads(lines[-1])
    assert r["ready"] and all(r["alive"].values())
    assert r["udp"]["sent"] == 4000 and sum(r["udp"]["answers"].values()) > 200  # it was answering throughout
    assert r["udp"]["answers"].get("400", 0) > 0  # malformed requests were told why
    assert r["options_after"] == {"udp": True, "tcp": True, "flood": True} and r["call_after"], r["call_output"]
    assert r["flood"]["caller_during_flood"]["answered"] == r["flood"]["caller_during_flood"]["tried"] > 0
    assert r["flood"]["attacker_answered"] < r["flood"]["sent"] / 4  # the flood's source was held to its rate
    assert r["stderr_faults"] == 0, r["stderr_sample"]
    for k, before in r["rss_kb_before"].items():
        assert r["rss_kb_after"][k] - before < 40 * 1024, (k, before, r["rss_kb_after"][k])
    if netns:
        assert r["agent_packets"] > 200
        assert set(r["agent_destinations"]) <= {"127.0.0.1", "127.0.0.2"} and r["off_loopback"] == []
    assert r["failures"] == []
