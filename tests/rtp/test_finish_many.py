"""Streams finished together (finish_many) give exactly the figures each gives alone: nothing leaks
from one stream into the next (running maxima, unwrapping, jitter, means, counts all restart)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from siptool.rtp import stats
from siptool.rtp.stats import StreamStats, finish_many


def _stream(rng: np.random.Generator, k: int) -> StreamStats:
    n = int(rng.choice([1, 2, 3, 5, 50, 300, 700, 2000]))
    rates = {101: ("telephone-event", 8000), 96: ("opus", 48000)} if k % 3 == 0 else None
    s = StreamStats(int(rng.choice([8000, 0, 16000])), rates)
    seq0, ts0 = int(rng.integers(0, 65536)), int(rng.integers(0, 2**32))
    t = 1000 + k + np.cumsum(rng.exponential(0.02, n))
    seqs = (seq0 + np.arange(n) + rng.integers(-3, 4, n) * (rng.random(n) < 0.05)) % 65536  # late, dup
    tss = (ts0 + np.arange(n) * 160 + rng.integers(-50000, 50000, n) * (rng.random(n) < 0.02)) % 2**32
    if k % 5 == 0:
        seqs = rng.integers(0, 65536, n)  # not RTP at all
    pts = rng.choice([0, 0, 0, 0, 8, 13, 19, 101, 96, 127], n)  # CN, events, dynamic, unknown
    for i in range(n):
        s.add(frame=k * 10000 + i, time=float(t[i]), seq=int(seqs[i]), ts=int(tss[i]), pt=int(pts[i]),
              marker=int(rng.random() < 0.05), size=int(rng.integers(12, 300)))
    return s


def _differs(a, b) -> str | None:
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        same = np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        if not same:
            return f"{f.name}: {x!r} != {y!r}"
    return None


@pytest.mark.parametrize("group_records", [1 << 14, 50])
def test_together_equals_alone(monkeypatch, group_records):
    monkeypatch.setattr(stats, "GROUP_RECORDS", group_records)  # many groups, and one stream per group
    rng = np.random.default_rng(7)
    streams = [_stream(rng, k) for k in range(120)] + [StreamStats(8000)]  # and an empty one
    alone = [s.finish() for s in streams]
    together = list(finish_many(streams))
    assert len(together) == len(streams)
    problems = [(i, _differs(a, b)) for i, (a, b) in enumerate(zip(alone, together)) if _differs(a, b)]
    assert not problems, problems[:3]
    assert together[-1].packets == 0 and together[0].packets == len(streams[0])
    assert sum(m.lost != 0 for m in together) > 10 and sum(m.mean_jitter_ms > 0 for m in together) > 50


def test_rate_set_after_construction_counts():
    """A caller may learn a payload type's rate after creating the stream (the agent learns its DTMF
    type from the answer): the figures use the rates as they are at the end."""
    def stream(late: bool) -> StreamStats:
        s = StreamStats(8000, None if late else {101: 0})
        for i in range(200):  # PCMU, and an event burst whose timestamp stands still
            event = 80 <= i < 90
            s.add(frame=i + 1, time=i * 0.02, seq=i, ts=80 * 160 if event else i * 160, pt=101 if event else 0,
                  marker=0, size=172)
        if late:
            s.rates[101] = 0
        return s

    early, late = stream(False).finish(), stream(True).finish()
    assert _differs(early, late) is None
    assert late.payload_types == {0: 190, 101: 10}
