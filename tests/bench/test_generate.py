"""bench/generate.py: the generated capture is a valid pcap, and its truth matches what siptool reads."""

from __future__ import annotations

import importlib.util
import json
import sys

import dpkt
import pytest

from support import REPO

from siptool.drivers.files import analyze_file


def _generator():
    spec = importlib.util.spec_from_file_location("bench_generate", REPO / "bench" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_generate"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    gen = _generator()
    out = tmp_path_factory.mktemp("bench") / "trunk_tiny.pcap"
    # 12 slots of 2 s calls, 25 % failed and 25 % impaired so both kinds appear at this size
    truth = gen.generate(out, concurrent=12, duration=2.0, packets=None, seed=7, failed_pct=25.0,
                         impaired_pct=25.0, ramp=1.0, quiet=True)
    return out, truth


def test_pcap_is_valid_and_in_time_order(tiny):
    out, truth = tiny
    with open(out, "rb") as fh:
        times = []
        for ts, buf in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(buf).data
            assert isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP)
            assert ip.len == len(ip) and ip.data.ulen == len(ip.data)  # lengths are consistent
            times.append(ts)
    assert len(times) == truth["packets"] == json.loads((out.with_name("trunk_tiny.truth.json")).read_text())["packets"]
    assert times == sorted(times)
    assert truth["bytes"] == out.stat().st_size


def test_truth_matches_analyze(tiny):
    out, truth = tiny
    s = truth["summary"]
    assert s["calls"] == 12 and s["failed"] >= 1 and s["impaired"] >= 1
    assert len({c["call_id"] for c in truth["calls"]}) == 12  # distinct Call-IDs
    ssrcs = [st["ssrc"] for c in truth["calls"] for st in c["streams"]]
    assert len(ssrcs) == len(set(ssrcs)) == s["streams"]
    assert s["rtp_lost"] > 0  # the impaired calls lose packets
    report = analyze_file(out)
    assert report.capture.packets == truth["packets"]
    assert report.capture.sip_packets == s["sip_messages"]
    got = {c.call_id: c.final_status for c in report.calls}
    assert got == {c["call_id"]: c["final_status"] for c in truth["calls"]}
    streams = [st for c in report.calls for st in getattr(c, "streams", [])]
    if streams:  # once media analysis reports streams, they must equal the truth
        mine = {(st.src, st.dst, st.ssrc): (st.packets, st.lost) for st in streams}
        want = {(st["src"], st["dst"], st["ssrc"]): (st["packets"], st["lost"])
                for c in truth["calls"] for st in c["streams"]}
        assert mine == want


def test_media_memory_follows_calls_in_progress(tmp_path):
    # Many short calls one after another, few at a time: the per-packet records of finished calls
    # must be released while reading, so what is held never approaches the capture's total.
    from siptool.analysis.session import Analyzer, _media_tracker
    from siptool.capture import open_capture

    gen = _generator()
    out = tmp_path / "sequential.pcap"
    gen.generate(out, concurrent=2, duration=2.0, packets=12_000, seed=3, failed_pct=0.0, impaired_pct=0.0,
                 ramp=0.5, quiet=True)
    analyzer = Analyzer(media=_media_tracker())
    most = 0
    rtp = 0
    with open_capture(out) as source:
        for pkt in source:
            analyzer.feed(pkt)
            if pkt.transport == "udp" and pkt.payload[:1] == b"\x80":
                rtp += 1
            if pkt.frame % 500 == 0:
                media = analyzer.media
                held = sum(len(s.stats) for f in list(media._flows.values()) + [f for _, f in media._retired]
                           for s in f.streams.values())
                most = max(most, held)
        report = analyzer.finish(source.info, source.decoder.skipped, source.decoder.fragments.incomplete)
    calls = [c for c in report.calls if c.streams]
    assert len(calls) >= 20
    # 2 calls x 2 streams x (2 s + 10 s closing delay) x 50 packets/s, with slack for the sweep period
    assert 0 < most < 0.5 * rtp, (most, rtp)
    assert sum(s.packets for c in calls for s in c.streams) == sum(
        s.packets for c in report_of_whole(out).calls for s in c.streams)


def report_of_whole(path):
    return analyze_file(path)


# --- sizing against the generator's truth (it knows when every call seized and released) ---------

def truth_sizing(truth: dict) -> dict:
    """Concurrency, traffic and call rate from the truth's own signalling times, by a plain sweep."""
    base = truth["first_time"] - truth["calls"][0]["start"]  # BASE_TIME: truth times are offsets from it
    events, answered = [], []
    for c in truth["calls"]:
        t = c["signalling"]
        events += [(t["release"], -1), (t["invite"], 1)]
        if t["answer"] is not None:
            answered += [(t["release"], -1), (t["answer"], 1)]

    def peak(evs):
        level = best = 0
        for _, step in sorted(evs):  # at one instant a release goes first
            level += step
            best = max(best, level)
        return best

    first, last = truth["first_time"] - base, truth["last_time"] - base
    held = sum(c["signalling"]["release"] - c["signalling"]["invite"] for c in truth["calls"])
    per_second: dict[int, int] = {}
    for c in truth["calls"]:
        s = int((c["signalling"]["invite"] + base) // 1)
        per_second[s] = per_second.get(s, 0) + 1
    return {"peak": peak(events), "answered": peak(answered), "erlangs": held / (last - first),
            "cps_peak": max(per_second.values())}


@pytest.mark.parametrize("failed,packets", [(0.0, None), (25.0, 4_000)])
def test_sizing_matches_the_truth(tmp_path, failed, packets):
    gen = _generator()
    out = tmp_path / "slots.pcap"
    # 8 call slots: one call each (all 8 overlap), or calls back to back in each slot until the budget is spent
    truth = gen.generate(out, concurrent=8, duration=3.0, packets=packets, seed=11, failed_pct=failed,
                         impaired_pct=0.0, ramp=0.5, quiet=True)
    want = truth_sizing(truth)
    s = analyze_file(out).sizing
    assert s.attempts == len(truth["calls"])
    assert s.peak_channels == want["peak"] and s.peak_answered == want["answered"]
    assert s.peak_channels <= 8  # never more than the slots
    if packets is None:
        assert s.peak_channels == s.peak_answered == 8
    assert s.window == "whole capture"
    assert s.carried_erlangs == pytest.approx(want["erlangs"], abs=2e-4)
    assert s.cps_peak == want["cps_peak"]
