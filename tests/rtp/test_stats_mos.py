"""RTP stream metrics against a packet-by-packet reference, and the E-model against G.107's own figures."""

from __future__ import annotations

import numpy as np
import pytest
from tshark_rtp import analyse

from siptool.rtp.mos import effective_equipment_impairment, mos_for_stream, r_factor, r_to_mos
from siptool.rtp.stats import RECORD_DTYPE, StreamStats


def _stream(seed: int, n: int = 600, loss: float = 0.03, reorder: float = 0.02, start_seq: int = 65000):
    """A 20 ms G.711 stream with random loss, network delay and reordering; sequence wraps."""
    rng = np.random.default_rng(seed)
    seq = (start_seq + np.arange(n)) % 65536
    ts = (123456 + 160 * np.arange(n)) % (1 << 32)
    arrival = 0.02 * np.arange(n) + rng.gamma(2.0, 0.004, n)
    keep = rng.random(n) >= loss
    keep[0] = True
    order = np.argsort(arrival[keep], kind="stable")
    swap = rng.random(order.size) < reorder
    for i in np.flatnonzero(swap[:-1]):
        order[i], order[i + 1] = order[i + 1], order[i]
    idx = np.flatnonzero(keep)[order]
    return seq[idx], ts[idx], np.sort(arrival[idx]) + 1000.0, int(n - keep.sum())


def _reference(seq, ts, times):
    """RFC 3550 6.4.1 jitter as tshark 4.0 runs it, one packet at a time (the oracle in tshark_rtp)."""
    f = analyse([(float(w), int(s), int(t), 0, 0) for s, t, w in zip(seq, ts, times)])
    return f.mean_jitter_ms, f.max_jitter_ms


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stats_match_packet_by_packet_reference(seed):
    seq, ts, times, dropped = _stream(seed)
    stats = StreamStats(8000)
    for i, (s, t, when) in enumerate(zip(seq, ts, times)):
        stats.add(frame=i + 1, time=float(when), seq=int(s), ts=int(t), pt=0, marker=0, size=172)
    m = stats.finish()
    mean, peak = _reference(seq, ts, times)
    assert m.packets == len(seq)
    assert m.lost_rfc3550 == dropped  # the sequence wrapped at 65535 and was unwrapped
    assert m.mean_jitter_ms == pytest.approx(mean, rel=1e-9)
    assert m.max_jitter_ms == pytest.approx(peak, rel=1e-9)
    assert m.out_of_order > 0


def test_extend_equals_add():
    seq, ts, times, _ = _stream(7, n=300)
    one, bulk = StreamStats(8000), StreamStats(8000)
    rec = np.zeros(len(seq), dtype=RECORD_DTYPE)
    rec["frame"], rec["time"], rec["seq"], rec["ts"], rec["size"] = np.arange(len(seq)), times, seq, ts, 172
    for r in rec[:100]:
        one.add(int(r["frame"]), float(r["time"]), int(r["seq"]), int(r["ts"]), 0, 0, 172)
        bulk.add(int(r["frame"]), float(r["time"]), int(r["seq"]), int(r["ts"]), 0, 0, 172)
    for r in rec[100:]:
        one.add(int(r["frame"]), float(r["time"]), int(r["seq"]), int(r["ts"]), 0, 0, 172)
    bulk.extend(rec[100:200])
    bulk.extend(rec[200:])
    assert len(one) == len(bulk) == len(seq)
    a, b = one.finish(), bulk.finish()
    assert (a.lost, a.mean_jitter_ms, a.max_delta_ms, a.out_of_order) == (b.lost, b.mean_jitter_ms, b.max_delta_ms,
                                                                         b.out_of_order)


def test_duplicates_and_telephone_events():
    stats = StreamStats(8000, {0: ("PCMU", 8000), 101: ("telephone-event", 8000)})
    t = 0.0
    for i in range(50):
        stats.add(i, t, i, 160 * i, 0, 0, 172)
        t += 0.02
    stats.add(50, t, 49, 160 * 49, 0, 0, 172)  # a duplicate
    for i in range(50, 55):  # an RFC 4733 event: the timestamp stays at the event start
        stats.add(i + 1, t, i, 160 * 50, 101, int(i == 50), 16)
        t += 0.02
    m = stats.finish()
    assert m.duplicates == 1 and m.payload_types == {0: 51, 101: 5}
    assert m.late_packets == 0  # events are kept out of the jitter-buffer simulation


@pytest.mark.parametrize("r,mos", [(93.2, 4.41), (90, 4.34), (80, 4.02), (70, 3.60), (60, 3.10), (50, 2.58)])
def test_r_to_mos_matches_g107_annex_b(r, mos):
    assert r_to_mos(r) == pytest.approx(mos, abs=0.005)


def test_e_model_defaults_and_loss():
    # G.107 with every Table 1 default: R = 93.2.
    assert r_factor() == pytest.approx(93.2, abs=0.05)
    # G.113 G.711 with PLC (Bpl 25.1): Ie,eff at 1 % random loss = 95 * 1 / (1 + 25.1).
    assert effective_equipment_impairment(0, 25.1, 1.0) == pytest.approx(95 / 26.1)
    r, mos = mos_for_stream("PCMU", 0.0)
    assert mos == pytest.approx(4.41, abs=0.01)
    r2, mos2 = mos_for_stream("G729", 0.0)
    assert r2 == pytest.approx(r - 11, abs=0.01)  # G.729A Ie 11
    assert mos_for_stream("PCMU", 5.0)[1] < mos_for_stream("PCMU", 1.0)[1] < mos
    # Delay: 400 ms one-way costs a lot more than 100 ms (G.107 Id).
    assert mos_for_stream("PCMU", 0.0, 400)[1] < mos_for_stream("PCMU", 0.0, 100)[1] < mos + 1e-9


def test_timestamp_jump_is_counted_once():
    stats = StreamStats(8000)
    for i in range(100):
        ts = 160 * i + (8000 * 3 if i >= 60 else 0)  # the RTP clock leaps 3 s at packet 60
        stats.add(i + 1, 0.02 * i, i, ts, 0, 0, 172)
    m = stats.finish()
    assert (m.timestamp_jumps, m.timestamp_jump_frame, m.lost) == (1, 61, 0)
