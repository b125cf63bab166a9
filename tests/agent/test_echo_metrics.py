"""The echo agent's metrics (agent/echo_metrics.py into report/prometheus.py): each ended call as the
Analyzer judged its signalling and how it ended, packets echoed, and requests turned away by reason,
against what the agent itself counted."""

from __future__ import annotations

import asyncio
import socket

from agent.test_hostile_input import Peer, _request, _sdp
from prometheus_client.parser import text_string_to_metric_families

from siptool.agent import CallOptions, EchoServer, place_call
from siptool.agent.echo_metrics import EchoMetrics
from siptool.report.events import status_labels
from siptool.report.prometheus import Exporter


def samples(exporter) -> dict:
    out = {}
    for family in text_string_to_metric_families(exporter.exposition().decode()):
        for s in family.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def until(predicate, timeout=10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def test_echo_metrics_count_calls_echoes_and_refusals():
    exporter = Exporter(echo=True)
    ended = []

    async def go():
        async with EchoServer(("127.0.0.1", 0), max_calls=1, rate=10, on_call=ended.append) as echo:
            watch = EchoMetrics(echo, exporter.apply)
            res = await place_call(CallOptions(uri=f"sip:100@127.0.0.1:{echo.port}", duration=1.0))
            assert res.ok, (res.error, res.problems)
            await until(lambda: len(ended) == 1)
            watch.tick()
            first = samples(exporter)
            # one call ringing (the number "ring") holds the only place: the next INVITE gets 503
            peer = Peer()
            ring = _request("INVITE", echo.port, peer.port, body=_sdp(port=peer.port + 2), call_id="r1",
                            extra="Content-Type: application/sdp").replace(b"sip:echo@", b"sip:ring@", 1)
            assert any(b" 180 " in d for d in await peer.ask(ring, ("127.0.0.1", echo.port), want=2))
            watch.tick()
            ringing = samples(exporter)[("siptool_active_calls", ())]
            busy = await peer.ask(_request("INVITE", echo.port, peer.port, body=_sdp(port=peer.port + 4),
                                           extra="Content-Type: application/sdp"), ("127.0.0.1", echo.port), want=2)
            assert any(d.startswith(b"SIP/2.0 503") for d in busy)
            await peer.ask(b"INVITE nothing-like-sip\r\n\r\n", ("127.0.0.1", echo.port), wait=0.2)
            cancel = ring.replace(b"INVITE sip:", b"CANCEL sip:", 1).replace(b"1 INVITE", b"1 CANCEL")
            await peer.ask(cancel, ("127.0.0.1", echo.port), want=3)
            await until(lambda: len(ended) == 2)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # a flood over --rate
                for _ in range(200):
                    s.sendto(_request("OPTIONS", echo.port, 9), ("127.0.0.1", echo.port))
            await until(lambda: echo.ua.limiter.dropped > 0)
            await asyncio.sleep(0.2)
            watch.tick()
            return first, ringing, echo

    first, ringing, echo = asyncio.run(asyncio.wait_for(go(), 60))
    call = ended[0].call
    assert first[("siptool_echo_calls_total", (("outcome", "ended"),))] == 1
    assert first[("siptool_calls_total", tuple(zip(("status_class", "status_code"), status_labels(200))))] == 1
    assert first[("siptool_echo_packets_total", ())] == ended[0].packets_echoed > 40
    assert first[("siptool_post_dial_delay_seconds_count", ())] == 1 and call.pdd_ms is not None
    assert ringing == 1
    got = samples(exporter)
    assert got[("siptool_echo_calls_total", (("outcome", "cancelled"),))] == 1
    assert got[("siptool_calls_total", (("status_class", "4xx"), ("status_code", "487")))] == 1
    assert got[("siptool_echo_refused_total", (("reason", "max_calls"),))] == echo.core.over_limit == 1
    assert got[("siptool_echo_refused_total", (("reason", "malformed"),))] == echo.ua.ep.malformed >= 1
    assert got[("siptool_echo_refused_total", (("reason", "rate_limit"),))] == echo.ua.limiter.dropped > 0
    assert got[("siptool_active_calls", ())] == 0
    findings = {}
    for record in ended:
        for f in record.call.findings:
            findings[(f.code, str(f.severity))] = findings.get((f.code, str(f.severity)), 0) + 1
    assert {k: v for k, v in got.items() if k[0] == "siptool_findings_total"} == \
        {("siptool_findings_total", (("code", c), ("severity", s))): n for (c, s), n in findings.items()}
