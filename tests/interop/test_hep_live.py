"""HEP through siptool's commands with real peers: sngrep sends a capture to `siptool analyze
--hep-listen`, whose report equals `siptool analyze` of the file; `siptool capture --hep` sends what
it captures to sngrep listening, which sees the dialogs; kamailio's siptrace mirrors a proxied SIPp
call to `siptool analyze --hep-listen`, which reports it. The commands run as users run them
(subprocesses); their --metrics endpoint says when they have read everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from capture.test_live import sipp_calls  # noqa: F401 - a fixture
from check.lab import _wait_sip
from interop.peers import HERE, free_port
from interop.test_hep_sngrep import read_until, sip_packets
from prometheus_client.parser import text_string_to_metric_families
from support import FIXTURES, REPO, require_binary

pytestmark = pytest.mark.interop


def siptool(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "siptool", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def metrics(port: int) -> dict | None:
    """The samples siptool serves on 127.0.0.1:port (None while it does not answer yet)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def wait_metrics(proc: subprocess.Popen, port: int, predicate=lambda m: True, timeout: float = 40.0) -> dict:
    """Poll siptool's metrics until `predicate` holds (it is up, by default)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        got = metrics(port)
        if got is not None and predicate(got):
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out; last metrics: {got}")


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM (as Ctrl-C): siptool prints its report and exits 0."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return out, err


def comparable(call: dict, media: bool = True) -> dict:
    """A call of the JSON report without what depends on how its packets arrived: frame numbers and
    where they were captured; without its media when the packets were SIP only (sngrep sends SIP)."""
    out = {k: v for k, v in call.items() if k not in ("capture_point", "source_file")}
    for part in ("ladder", "sdp"):
        out[part] = [{k: v for k, v in step.items() if k != "frame"} for step in call[part]]
    out["findings"] = [{k: v for k, v in f.items() if k not in ("frames", "capture_point", "source_file")}
                       for f in call["findings"] if media or not f["code"].startswith("media.")]
    if not media:
        del out["streams"]
    return out


def at_hep_resolution(call: dict) -> dict:
    """A call measured on a live capture's nanosecond clock, compared with one from HEP's microseconds:
    its delays may differ by that microsecond once rounded (PDD and answer time to 1 us, duration to 1 ms)."""
    out = dict(call)
    for key, places in (("pdd_ms", 0.0011), ("answer_ms", 0.0011), ("duration_s", 0.0011)):
        if out.get(key) is not None:
            out[key] = pytest.approx(out[key], abs=places)
    return out


def assert_same_calls(got: list[dict], want: list[dict]) -> None:
    """Call for call, field for field (the differing fields named)."""
    assert [c["call_id"] for c in got] == [c["call_id"] for c in want]
    for a, b in zip(got, want):
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert not diff, (a["call_id"], diff)


def analyze_json(path) -> dict:
    out = subprocess.run([sys.executable, "-m", "siptool", "analyze", str(path), "--json"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", ["calls_mixed.pcap", "call_tcp.pcap"])
def test_sngrep_sends_a_capture_to_analyze_hep_listen(peers, tmp_path, name):
    """sngrep -I file -H udp:... with its HEP password (eep.send.pass, from its config file) to
    `siptool analyze --hep-listen` (the password from --hep-key-file): the report has the file's
    calls, field for field, at sngrep's capture point; the pcap written holds them too."""
    sngrep = require_binary("sngrep")
    path = FIXTURES / name
    hep, port = free_port(), free_port()
    (tmp_path / "hep.key").write_text("s3cret\n")
    (tmp_path / "sngreprc").write_text("set eep.send.pass s3cret\nset eep.send.id 7\n")
    proc = siptool("analyze", "--hep-listen", f"udp:127.0.0.1:{hep}", "--hep-key-file", tmp_path / "hep.key",
                   "--metrics", f"127.0.0.1:{port}", "--json", "-w", tmp_path / "hep.pcap")
    try:
        wait_metrics(proc, port)
        sender = peers([sngrep, "-I", path, "-H", f"udp:127.0.0.1:{hep}", "-N", "-q", "-f", tmp_path / "sngreprc"])
        assert sender.wait(30) == 0, sender.output
        want = len(sip_packets(path))
        wait_metrics(proc, port, lambda m: m[("siptool_packets_total", ())] == want)
    finally:
        out, err = stop(proc)
    report = json.loads(out)
    assert report["capture"]["file"] == f"hep:127.0.0.1:{hep}" and report["capture"]["format"] == "hep"
    assert not [f for f in report["findings"] if f["code"].startswith("hep.")] and "s3cret" not in out + err
    assert {c["capture_point"] for c in report["calls"]} == {str(7 << 16)}  # sngrep 1.6 byte-swaps its ID
    expected = analyze_json(path)
    assert_same_calls([comparable(c, False) for c in report["calls"]],
                      [comparable(c, False) for c in expected["calls"]])
    written = analyze_json(tmp_path / "hep.pcap")
    assert_same_calls([comparable(c) for c in written["calls"]], [comparable(c) for c in report["calls"]])


@pytest.mark.skipif(os.geteuid() != 0, reason="live capture needs root (CAP_NET_RAW)")
def test_capture_sends_hep_to_sngrep(peers, sipp_calls, tmp_path):  # noqa: F811 - the fixture
    """`siptool capture -i lo --hep udp:...` while SIPp places calls: sngrep -L sees every dialog, and
    the SIP it stored is the calls siptool reported."""
    sngrep = require_binary("sngrep")
    host, place = sipp_calls(3)
    hep, port = free_port(), free_port()
    listener = peers([sngrep, "-L", f"udp:127.0.0.1:{hep}", "-N", "-F", "-O", tmp_path / "sngrep.pcap"])
    assert read_until(listener, r"Dialog count: (\d+)"), listener.output  # listening
    proc = siptool("capture", "-i", "lo", "-f", f"host {host}", "--hep", f"udp:127.0.0.1:{hep}", "--hep-id", 42,
                   "--metrics", f"127.0.0.1:{port}", "--json", "-q")
    try:
        wait_metrics(proc, port)  # capturing
        place()
        wait_metrics(proc, port, lambda m: sum(v for k, v in m.items() if k[0] == "siptool_calls_total") == 3)
        counts = read_until(listener, r"Dialog count: (3)\b")
    finally:
        out, _ = stop(proc)
        listener.stop()  # SIGTERM: sngrep closes its pcap
    assert counts, listener.output[-300:]
    report = json.loads(out)
    calls = [c for c in report["calls"] if c["kind"] == "call"]
    assert len(calls) == 3 and all(c["final_status"] == 200 for c in calls)
    assert not [f for f in report["findings"] if f["code"] == "hep.unsent"]
    seen = analyze_json(tmp_path / "sngrep.pcap")  # what sngrep received: the same signalling
    assert_same_calls([comparable(c) for c in seen["calls"]],
                      [at_hep_resolution(comparable(c)) for c in report["calls"]])


def test_kamailio_siptrace_mirrors_a_proxied_call(peers, tmp_path):
    """SIPp calls SIPp through kamailio; kamailio's siptrace (HEP v3, its auth_key, capture ID 23)
    mirrors every message it receives and sends to `siptool analyze --hep-listen`. siptool reports
    the calls at kamailio's capture point, each with both legs of its signalling, as SIPp placed them."""
    kamailio, sipp = require_binary("kamailio"), require_binary("sipp")
    kport, uas_port, uac_port, hep, port = free_port(), free_port(), free_port(), free_port(), free_port()
    cfg = (HERE / "kamailio_siptrace.cfg").read_text()
    for k, v in (("LISTEN_PORT", kport), ("CALLEE_PORT", uas_port), ("HEP_PORT", hep), ("HEP_ID", 23),
                 ("HEP_KEY", "k4m")):
        cfg = cfg.replace(f"@{k}@", str(v))
    (tmp_path / "k.cfg").write_text(cfg)
    proc = siptool("analyze", "--hep-listen", f"udp:127.0.0.1:{hep}", "--hep-key-env", "HEP_KEY",
                   "--metrics", f"127.0.0.1:{port}", "--json", env={"HEP_KEY": "k4m"})
    try:
        wait_metrics(proc, port)
        peers([kamailio, "-f", tmp_path / "k.cfg", "-DD", "-E", "-m", "32", "-M", "8", "-Y", tmp_path, "-P",
               tmp_path / "pid"])
        _wait_sip(kport)  # until kamailio answers OPTIONS
        uas = peers([sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", uas_port, "-m", "2", "-nostdin", "-timeout", "30"],
                    cwd=tmp_path)
        uac = peers([sipp, "-sn", "uac", f"127.0.0.1:{kport}", "-s", "100", "-i", "127.0.0.1", "-p", uac_port,
                     "-m", "2", "-r", "5", "-d", "200", "-nostdin", "-timeout", "30", "-recv_timeout", "10000"],
                    cwd=tmp_path)
        assert uac.wait(60) == 0, uac.output[-2000:]
        assert uas.wait(20) == 0, uas.output[-2000:]
        wait_metrics(proc, port, lambda m: m[("siptool_calls_total", (("status_class", "2xx"),
                                                                       ("status_code", "200")))] == 2)
        # every message of both legs: 6 on each side of the proxy (INVITE, 180, 200, ACK, BYE, 200) and
        # kamailio's own 100 Trying back to SIPp
        wait_metrics(proc, port, lambda m: m[("siptool_packets_total", ())] >= 2 * 13)
    finally:
        out, _ = stop(proc)
    report = json.loads(out)
    assert not [f for f in report["findings"] if f["code"].startswith("hep.")]
    calls = [c for c in report["calls"] if c["kind"] == "call"]
    assert len(calls) == 2 and {c["capture_point"] for c in calls} == {"23"}
    for call in calls:
        assert call["final_status"] == 200 and call["state"] == "completed" and call["ended_by"] == "caller"
        hops = {(s["src"], s["dst"]) for s in call["ladder"] if s["label"].startswith("INVITE")}
        assert hops == {(f"127.0.0.1:{uac_port}", f"127.0.0.1:{kport}"),
                        (f"127.0.0.1:{kport}", f"127.0.0.1:{uas_port}")}  # both legs, through the proxy
        sent = [s["label"] for s in call["ladder"] if not s["retransmission"]]
        assert sorted(sent) == sorted(["INVITE", "180 Ringing", "200 OK", "ACK", "BYE", "200 OK"] * 2
                                      + ["100 trying -- your call is important to us"])
