"""RFC 3263 with a real DNS server (dnsmasq) and real `siptool echo` agents on loopback: NAPTR picks the
transport, SRV the servers by priority and weight, A their addresses; calls, REGISTER and the check
suite fail over past an agent that was stopped and one that answers 503 with Retry-After.

    fo.test     NAPTR SIP+D2U -> SRV: a (10, 50, stopped), b (10, 50, 503 Retry-After 30), c (20, up)
    dead.test   SRV: a (stopped), b (503)
    split.test  SRV: c (10, 75), e (10, 25): both up
    ok.test     SRV: c (10), e (20): both up
    tcp.test    NAPTR SIP+D2T -> SRV: t (TCP)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from check.lab import _echo, _wait_sip
from interop.dns import Dnsmasq
from interop.peers import free_port
from support import REPO

pytestmark = pytest.mark.interop
LENIENT = ("--jitter", "500", "--mos", "1.5", "--loss", "20")  # media limits a loaded test machine still meets


@pytest.fixture(scope="module")
def dns_lab():
    ports = {name: free_port() for name in "abcet"}
    agents = {"a": _echo(ports["a"]), "b": _echo(ports["b"], "--reject", "503", "--retry-after", "30"),
              "c": _echo(ports["c"]), "e": _echo(ports["e"]), "t": _echo(ports["t"], "--transport", "tcp")}
    records = []
    for name in "abcet":
        records += [f"--host-record={name}.fo.test,127.0.0.1"]
    srv = "--srv-host=_sip._{}.{}.test,{}.fo.test,{},{},{}"
    records += ["--naptr-record=fo.test,10,10,s,SIP+D2U,,_sip._udp.fo.test",
                srv.format("udp", "fo", "a", ports["a"], 10, 50), srv.format("udp", "fo", "b", ports["b"], 10, 50),
                srv.format("udp", "fo", "c", ports["c"], 20, 0),
                srv.format("udp", "dead", "a", ports["a"], 10, 0), srv.format("udp", "dead", "b", ports["b"], 20, 0),
                srv.format("udp", "split", "c", ports["c"], 10, 75), srv.format("udp", "split", "e", ports["e"], 10, 25),
                srv.format("udp", "ok", "c", ports["c"], 10, 0), srv.format("udp", "ok", "e", ports["e"], 20, 0),
                "--naptr-record=tcp.test,10,10,s,SIP+D2T,,_sip._tcp.tcp.test",
                srv.format("tcp", "tcp", "t", ports["t"], 10, 0)]
    dns = Dnsmasq(records)
    try:
        dns.wait("c.fo.test")
        for name in "abce":
            _wait_sip(ports[name])
        _wait_sip(ports["t"], "tcp")
        agents["a"].stop()  # one agent stopped: nothing listens on its port any more
        yield {"dns": dns.address, "ports": ports}
    finally:
        dns.stop()
        for p in agents.values():
            p.stop()


def siptool(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "siptool", *args], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, NO_COLOR="1"), timeout=timeout)


def test_a_call_fails_over_past_a_stopped_agent_and_a_503(dns_lab):
    run = siptool("call", "sip:100@fo.test", "--dns-server", dns_lab["dns"], "-d", "1", "--json", *LENIENT)
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(run.stdout)
    tries = [(t["name"], t["outcome"]) for t in data["targets"]]
    assert sorted(tries[:2]) == [("a.fo.test", "unreachable"), ("b.fo.test", "503")]  # priority 10, in a drawn order
    assert tries[2] == ("c.fo.test", "served") and data["status"] == 200 and data["ok"]
    assert {t["found"] for t in data["targets"]} == {"NAPTR+SRV"} and {t["transport"] for t in data["targets"]} == {"udp"}
    b = next(t for t in data["targets"] if t["name"] == "b.fo.test")
    assert b["detail"] == "503 Service Unavailable (Retry-After 30 s)" and b["port"] == dns_lab["ports"]["b"]
    assert all(t["ms"] is not None and t["ms"] < 5000 for t in data["targets"])
    assert data["call"]["agent"]["targets"] == data["targets"]  # the report model carries them too


def test_the_terminal_lists_every_server_tried(dns_lab):
    run = siptool("call", "sip:100@fo.test", "--dns-server", dns_lab["dns"], "-d", "1", *LENIENT)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    at = lines.index("servers tried (RFC 3263):")
    shown = "\n".join(lines[at + 1:at + 7])
    assert f"a.fo.test 127.0.0.1:{dns_lab['ports']['a']} UDP: unreachable" in shown
    assert f"b.fo.test 127.0.0.1:{dns_lab['ports']['b']} UDP: 503" in shown
    assert f"c.fo.test 127.0.0.1:{dns_lab['ports']['c']} UDP: served" in shown
    assert "(Retry-After 30 s)" in shown and "nothing listens on" in shown


def test_a_dead_trunk_is_one_clear_error_and_exit_1(dns_lab):
    run = siptool("call", "sip:100@dead.test", "--dns-server", dns_lab["dns"], "-d", "1", "--json", *LENIENT)
    assert run.returncode == 1
    data = json.loads(run.stdout)
    assert data["error"].startswith(f"dead trunk: none of 2 servers took the call: a.fo.test 127.0.0.1:"
                                    f"{dns_lab['ports']['a']} UDP: nothing listens")
    assert [t["outcome"] for t in data["targets"]] == ["unreachable", "503"] and not data["ok"]
    run = siptool("call", "sip:100@nowhere.test", "--dns-server", dns_lab["dns"], "-d", "1", *LENIENT)
    assert run.returncode == 1 and "nowhere.test: no server found" in run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_equal_priorities_split_the_calls_by_weight(dns_lab):
    """SRV weights 75 and 25 at one priority: each call draws its first server (RFC 2782: a draw of
    0..100, 0..75 picks the weight-75 server: p = 76/101). Over 60 calls the count is binomial;
    the test holds it within 4 standard deviations (a 50/50 split would fall outside)."""
    n = 60
    run = siptool("call", "sip:100@split.test", "--dns-server", dns_lab["dns"], "--calls", str(n), "--rate", "30",
                  "-d", "0.3", "--json", *LENIENT, timeout=180)
    data = json.loads(run.stdout)
    assert run.returncode == 0, {k: v for k, v in data.items() if k != "results"}
    assert data["schema"] == "siptool.calls/1.1" and data["failed_over"] == 0
    port_c = dns_lab["ports"]["c"]
    heavy = data["served_by"].get(f"c.fo.test 127.0.0.1:{port_c}", 0)
    assert heavy + data["served_by"].get(f"e.fo.test 127.0.0.1:{dns_lab['ports']['e']}", 0) == n
    p = 76 / 101
    assert abs(heavy - n * p) < 4 * math.sqrt(n * p * (1 - p)), data["served_by"]


def test_naptr_chooses_tcp(dns_lab):
    run = siptool("call", "sip:100@tcp.test", "--dns-server", dns_lab["dns"], "-d", "1", "--json", *LENIENT)
    assert run.returncode == 0, run.stdout + run.stderr
    (t,) = json.loads(run.stdout)["targets"]
    assert (t["transport"], t["found"], t["outcome"], t["port"]) == ("tcp", "NAPTR+SRV", "served", dns_lab["ports"]["t"])


def test_register_fails_over(dns_lab):
    run = siptool("register", "sip:alice@fo.test", "--dns-server", dns_lab["dns"], "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    first = json.loads(run.stdout)["exchanges"][0]
    outcomes = {t["name"]: t["outcome"] for t in first["targets"]}
    assert outcomes.get("a.fo.test", "unreachable") == "unreachable"  # b (REGISTER is not refused) may come first
    assert list(outcomes.values())[-1] == "served" and first["status"] == 200


def test_the_failover_check(dns_lab, tmp_path: Path):
    """ok.test: both servers answer OPTIONS, and with c (priority 10) unreachable the calls go to e
    within the stated time. fo.test: a does not answer: the check fails and says so. split.test:
    one priority, no backup: that fails too."""
    def check(domain: str) -> dict:
        suite = tmp_path / f"{domain}.toml"
        suite.write_text(f'[target]\nuri = "sip:echo@{domain}"\ntransport = ""\ndns_server = "{dns_lab["dns"]}"\n'
                         'target_timeout = 0.5\n\n[[check]]\ntype = "failover"\ncalls = 2\nwithin = 3.0\n'
                         'duration = 1.0\n')
        run = siptool("check", str(suite), "--json")
        (res,) = json.loads(run.stdout)["checks"]
        assert run.returncode == (0 if res["status"] == "pass" else 1)
        return res

    port = dns_lab["ports"]
    res = check("ok.test")
    assert res["status"] == "pass", res["message"]
    assert res["figures"]["servers"] == {f"c.fo.test 127.0.0.1:{port['c']}": "200 OK",
                                         f"e.fo.test 127.0.0.1:{port['e']}": "200 OK"}
    assert res["figures"]["unreachable"] == [f"c.fo.test 127.0.0.1:{port['c']}"]
    assert res["figures"]["served_by"] == [f"e.fo.test 127.0.0.1:{port['e']}"] * 2  # the backup took both calls
    assert all(500 <= ms < 3000 for ms in res["figures"]["answer_ms"])  # after the 0.5 s per server
    assert res["message"].startswith("2 servers answer; with 1 primary server(s) unreachable, 2 calls went to e.fo.test")
    res = check("fo.test")
    assert res["status"] == "fail"
    assert res["message"].startswith(f"a.fo.test 127.0.0.1:{port['a']} does not serve: nothing listens")
    assert res["figures"]["served_by"] == [f"c.fo.test 127.0.0.1:{port['c']}"] * 2
    res = check("split.test")
    assert res["status"] == "fail" and res["message"].startswith("no backup: every server located has SRV priority 10")
