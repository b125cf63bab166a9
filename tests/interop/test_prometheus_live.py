"""A real Prometheus scrapes siptool while calls run: SIPp calls `siptool echo --metrics`, `siptool
capture -i lo --metrics` watches those calls, and a Prometheus started here (its own config, a
temporary storage folder, a free port) scrapes both. Its HTTP API then sees the calls that were
placed, counted by each; `promtool check metrics` accepts both live expositions."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from interop.peers import free_port
from interop.test_hep_live import metrics, siptool, stop, wait_metrics
from support import require_binary

pytestmark = [pytest.mark.interop,
              pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (CAP_NET_RAW)")]

CALLS = 4

CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: capture
    static_configs: [{{targets: ["127.0.0.1:{capture}"]}}]
  - job_name: echo
    static_configs: [{{targets: ["127.0.0.1:{echo}"]}}]
"""


def query(port: int, promql: str) -> dict:
    """Prometheus's instant query API: {label set (job, ...): value}."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    body = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert body["status"] == "success", body
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in body["data"]["result"]}


def wait_query(port: int, promql: str, want: dict, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        try:
            got = query(port, promql)
        except (urllib.error.URLError, ConnectionError):  # Prometheus is starting
            got = None
        if got == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{promql}: {got}, not {want}")


def both(value) -> dict:
    """The same value for each job, as `sum by (job) (...)` gives it."""
    return {(("job", "capture"),): float(value), (("job", "echo"),): float(value)}


def test_prometheus_scrapes_a_live_capture_and_an_echo_agent(peers, tmp_path):
    sipp, prometheus, promtool = (require_binary(b) for b in ("sipp", "prometheus", "promtool"))
    sip_port, echo_metrics, capture_metrics, web = free_port(), free_port(), free_port(), free_port()
    echo = siptool("echo", "--listen", f"127.0.0.1:{sip_port}", "--metrics", f"127.0.0.1:{echo_metrics}")
    capture = siptool("capture", "-i", "lo", "-f", f"udp port {sip_port}", "--metrics", f"127.0.0.1:{capture_metrics}",
                      "--json", "-q")
    try:
        wait_metrics(echo, echo_metrics)
        wait_metrics(capture, capture_metrics)  # serving once the interface is open
        (tmp_path / "prometheus.yml").write_text(CONFIG.format(capture=capture_metrics, echo=echo_metrics))
        peers([prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
               f"--web.listen-address=127.0.0.1:{web}"])
        wait_query(web, "sum by (job) (up)", both(1))
        uac = peers([sipp, "-sn", "uac", f"127.0.0.1:{sip_port}", "-i", "127.0.0.1", "-p", free_port(),
                     "-m", CALLS, "-r", "2", "-d", "2500", "-nostdin", "-timeout", "60"], cwd=tmp_path)
        assert uac.wait(90) == 0, uac.output[-2000:]
        wait_query(web, "sum by (job) (siptool_calls_total)", both(CALLS))
        wait_query(web, 'sum by (job) (siptool_calls_total{status_class="2xx",status_code="200"})', both(CALLS))
        # scraped while the calls ran: the gauge was up at some scrape, and is back to 0 now
        assert min(query(web, "max by (job) (max_over_time(siptool_active_calls[5m]))").values()) >= 1
        wait_query(web, "sum by (job) (siptool_active_calls)", both(0))
        wait_query(web, 'sum(siptool_echo_calls_total{outcome="ended"})', {(): float(CALLS)})
        wait_query(web, 'sum(siptool_post_dial_delay_seconds_count{job="echo"})', {(): float(CALLS)})
        for port in (capture_metrics, echo_metrics):  # the live exposition is valid Prometheus text
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
            checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        packets = metrics(capture_metrics)[("siptool_packets_total", ())]
        wait_query(web, 'sum(siptool_packets_total{job="capture"})', {(): packets})
    finally:
        out, _ = stop(capture)
        stop(echo)
    report = json.loads(out)  # what Prometheus saw is what the capture's report says
    assert report["capture"]["packets"] == packets
    assert sorted(c["final_status"] for c in report["calls"] if c["kind"] == "call") == [200] * CALLS
