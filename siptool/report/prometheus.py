"""Prometheus metrics (prometheus-client, the official library), fed by typed events.

A renderer: it counts the events of report/events.py, from a finished Report
(`observe_report`) or from a live capture as it goes (`apply`), and computes nothing else. Each
Exporter has a registry of its own (no module state), served by `serve()` or written out by
`exposition()`.

Names follow Prometheus conventions (`siptool_` prefix, base units, `_total` counters), and every
label comes from a bounded set: no Call-ID, address or user label; a status code outside the IANA
registry is "other"; finding codes are siptool's own catalogue (docs/findings.md).

| metric | type | labels |
|---|---|---|
| `siptool_calls_total` | counter | `status_class` (1xx..6xx, none), `status_code` |
| `siptool_active_calls` | gauge | |
| `siptool_post_dial_delay_seconds` | histogram | |
| `siptool_stream_mos` | histogram | (audio streams) |
| `siptool_stream_loss_ratio` | histogram | (audio streams: the loss buckets) |
| `siptool_findings_total` | counter | `code`, `severity` |
| `siptool_packets_total` | counter | (capture) |
| `siptool_kernel_drops_total` | counter | (capture) |
| `siptool_echo_calls_total` | counter | `outcome` (echo: ended, cancelled, rejected, unanswered, ringing) |
| `siptool_echo_packets_total` | counter | (echo: RTP packets echoed) |
| `siptool_echo_refused_total` | counter | `reason` (echo: rate_limit, max_calls, malformed) |
"""

from __future__ import annotations

from ..errors import SiptoolError
from . import events as ev

PDD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0)  # seconds
MOS_BUCKETS = (1.0, 2.0, 2.5, 3.0, 3.1, 3.6, 4.0, 4.2, 4.3, 4.4, 4.5)  # G.107 bands, 3.1/3.6: siptool's limits
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # ratios: 1 % is siptool's limit


class Exporter:
    """The metrics of one capture, or (`echo`) of the echo agent, in their own registry."""

    def __init__(self, echo: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.calls = Counter("siptool_calls", "INVITE sessions by final response (none: no final response)",
                             ["status_class", "status_code"], registry=registry)
        self.active = Gauge("siptool_active_calls", "INVITE sessions in progress", registry=registry)
        self.pdd = Histogram("siptool_post_dial_delay_seconds", "Post-dial delay (RFC 6076 session request "
                             "delay)", buckets=PDD_BUCKETS, registry=registry)
        self.mos = Histogram("siptool_stream_mos", "Estimated MOS (ITU-T G.107) of audio streams",
                             buckets=MOS_BUCKETS, registry=registry)
        self.loss = Histogram("siptool_stream_loss_ratio", "Packet loss of audio streams (RFC 3550 A.3), "
                              "as a ratio", buckets=LOSS_BUCKETS, registry=registry)
        self.findings = Counter("siptool_findings", "Findings by code (docs/findings.md) and severity",
                                ["code", "severity"], registry=registry)
        if echo:
            self.echo_calls = Counter("siptool_echo_calls", "Calls the echo agent answered (or accepted, then "
                                      "refused), by how they ended", ["outcome"], registry=registry)
            self.echoed = Counter("siptool_echo_packets", "RTP packets the echo agent echoed", registry=registry)
            self.refused = Counter("siptool_echo_refused", "Requests the echo agent turned away, by reason",
                                   ["reason"], registry=registry)
            for reason in ev.REFUSALS:  # every series from the start: rate() needs the zero
                self.refused.labels(reason)
        else:
            self.packets = Counter("siptool_packets", "Packets captured", registry=registry)
            self.drops = Counter("siptool_kernel_drops", "Packets the kernel dropped before siptool read them",
                                 registry=registry)

    def apply(self, event: ev.Event) -> None:
        """Count one event (report/events.py)."""
        match event:
            case ev.CallEnded(status=status, pdd_ms=pdd_ms):
                self.calls.labels(*ev.status_labels(status)).inc()
                if pdd_ms is not None:
                    self.pdd.observe(pdd_ms / 1000)
            case ev.ActiveCalls(count=count):
                self.active.set(count)
            case ev.StreamEnded(media="audio", loss_pct=loss_pct, mos=mos):
                self.loss.observe(max(loss_pct, 0.0) / 100)  # duplicates can make RFC 3550 loss negative
                if mos is not None:
                    self.mos.observe(mos)
            case ev.FindingRaised(code=code, severity=severity):
                self.findings.labels(ev.finding_label(code), severity).inc()
            case ev.Packets(captured=captured, kernel_drops=drops):
                self.packets.inc(captured)
                self.drops.inc(drops)
            case ev.EchoCallEnded(outcome=outcome):
                self.echo_calls.labels(outcome if outcome in ev.ECHO_OUTCOMES else "other").inc()
            case ev.Echoed(packets=packets):
                self.echoed.inc(packets)
            case ev.Refused(reason=reason, count=count):
                self.refused.labels(reason).inc(count)

    def observe_report(self, report) -> "Exporter":
        for event in ev.from_report(report):
            self.apply(event)
        return self

    def exposition(self) -> bytes:
        """The text exposition format (what a scrape gets)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, host: str, port: int):
        """Serve /metrics on host:port from a thread; returns the server (call .shutdown())."""
        from prometheus_client import start_http_server

        try:
            server, _thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise SiptoolError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
        return server
