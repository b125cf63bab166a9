"""tshark 4.0's per-stream rules on crafted streams: the oracle (tests/tshark_rtp.py) and siptool's
vectorised statistics both give tshark's `-z rtp,streams` figures, run live on the same capture.

Each case is a stream that separates one reading of rtppacket_analyse from another: a sender that
pauses and resumes with a sequence jump and a timestamp behind the highest one sent (issue 13),
late packets, a timestamp before the first one, 32-bit wraps, jumps of 2^31, RFC 4733 events,
a dynamic type with no rtpmap, comfort noise, duplicates; then seeded random mixes of all of them.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
from crafted_calls import A, B, T0, Dialog, audio, rtp, sdp, write
from support import require_binary
from tshark_rtp import analyse, tshark_streams

from siptool.drivers.files import analyze_file
from siptool.rtp.stats import StreamStats, finish_many

RATES = {101: 0}  # as the SDP below says: telephone-event; 96 has no rtpmap (no known rate)
FIELDS = ("packets", "lost", "min_delta_ms", "mean_delta_ms", "max_delta_ms", "min_jitter_ms", "mean_jitter_ms",
          "max_jitter_ms")


def steady(n=60, seq0=1000, ts0=160000, start=0.0, wobble=0.003):
    """20 ms G.711 packets with a little arrival wobble: (time_s, seq, ts, pt, marker)."""
    return [[start + i * 0.02 + (wobble if i % 3 == 1 else 0.0), (seq0 + i) % 65536, (ts0 + 160 * i) % 2**32, 0, 0]
            for i in range(n)]


def resumed(n_before, pause_s, seq_jump, ts_step, marker=1, n_after=150, ts0=160000):
    """A sender pauses, then resumes keeping its SSRC: sequence + seq_jump, timestamp + ts_step."""
    s = steady(n_before, ts0=ts0)
    t, seq, ts = s[-1][0] + 0.02 + pause_s, s[-1][1] + seq_jump, s[-1][2] + ts_step
    s += [[t + i * 0.02, (seq + i) % 65536, (ts + 160 * i) % 2**32, 0, int(marker and i == 0)] for i in range(n_after)]
    return s


def late(delays):
    s = steady(60)
    for i, ms in delays.items():
        s[i][0] += ms / 1000.0
    return sorted(s, key=lambda p: p[0])


def with_pt(pt, lo=20, hi=26, ts_still=False):
    s = steady(60)
    for i in range(lo, hi):
        s[i][3] = pt
        s[i][4] = int(i == lo)
        if ts_still:
            s[i][2] = s[lo][2]  # RFC 4733 2.2.1: one event, one timestamp
    return s


def comfort_noise():
    s = steady(30)
    s.append([s[-1][0] + 0.02, s[-1][1] + 1, s[-1][2] + 160, 13, 0])
    t, seq, ts = s[-1][0] + 1.5, s[-1][1] + 1, s[-1][2] + 12000
    return s + [[t + i * 0.02, seq + i, ts + 160 * i, 0, int(i == 0)] for i in range(30)]


def duplicated():
    s = steady(60)
    return sorted(s + [[s[i][0] + 0.0002, *s[i][1:]] for i in (10, 11, 40)], key=lambda p: p[0])


def before_first():
    s = steady(40)
    s[0], s[1] = s[1], s[0]  # the first packet to arrive carries seq+1: the next is before it in time
    s[0][0], s[1][0] = 0.0, 0.004
    return s


def random_mix(seed: int):
    """Pauses with sequence and timestamp jumps, late, duplicate, CN, events, unknown types."""
    rnd = random.Random(seed)
    seq, ts, t, out = rnd.randrange(65536), rnd.randrange(2**32), 0.0, []
    for _ in range(rnd.choice([40, 200, 500])):
        r, pt, mark = rnd.random(), 0, 0
        if r < 0.015:
            gap = rnd.uniform(0.5, 6)
            t += gap
            seq += rnd.choice([1, int(gap / 0.02), rnd.randrange(65536)]) - 1
            ts += rnd.choice([0, int(gap * 8000), -rnd.randrange(100000), rnd.randrange(2**32)])
            mark = int(rnd.random() < 0.5)
        elif r < 0.02:
            pt = 13
        elif r < 0.03:
            pt = rnd.choice([8, 18, 96, 101])
        when = t + (rnd.uniform(0.001, 0.08) if 0.5 < r < 0.53 else rnd.gauss(0, 0.002))
        out.append([when, seq % 65536, ts % 2**32, pt, mark])
        if 0.8 < r < 0.81:
            out.append([when + 0.0001, seq % 65536, ts % 2**32, pt, 0])
        seq, ts, t = seq + 1, ts + 160, t + 0.02
    return sorted(out, key=lambda p: p[0])


CASES = {
    # issue 13: a pause of 6 s, the sequence jumps 300 on, the timestamp resumes 3 s behind the highest
    # sent: tshark keeps every packet in time (it judges against the first timestamp only)
    "resume_ts_behind": resumed(1200, 6.0, 300, -24000, n_after=1346),
    "resume_ts_behind_no_marker": resumed(200, 6.0, 300, -24000, marker=0),
    "resume_ts_with_clock": resumed(200, 6.0, 300, 48160),
    "resume_ts_still": resumed(200, 6.0, 300, 160),
    "resume_ts_before_first": resumed(200, 3.0, 150, -200 * 160 - 8000),
    "resume_ts_2_31_ahead": resumed(200, 3.0, 150, 2**31 + 4000),
    "resume_random_base": resumed(200, 2.0, 40000, 0x9E3779B9),
    "late_30_and_70_ms": late({5: 30, 20: 70, 21: 5}),
    "before_first": before_first(),
    "ts_wraps": steady(80, seq0=65500, ts0=2**32 - 3200),
    "telephone_event": with_pt(101, ts_still=True),
    "dynamic_without_rtpmap": with_pt(96),
    "pcma_inside_pcmu": with_pt(8),
    "comfort_noise": comfort_noise(),
    "duplicates": duplicated(),
    **{f"random_{seed}": random_mix(seed) for seed in range(12)},
}
NAMES = list(CASES)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """One call per case (tshark sets up at most 4 m= lines of one SDP); case k flows
    A:20000+2k -> B:30000+2k. Returns the path and tshark's row for each case."""
    path = tmp_path_factory.mktemp("rules") / "rules.pcap"
    packets = []
    for k, name in enumerate(NAMES):
        dialog, pts = Dialog(f"rules-{k}"), (0, 8, 13, 18, 101)
        packets += [dialog.request(A, "INVITE", T0, sdp(A, audio(20000 + 2 * k, pts)), initial=True),
                    dialog.response(200, "OK", T0 + 0.01, sdp(B, audio(30000 + 2 * k, pts))), dialog.ack(T0 + 0.02)]
        for when, seq, ts, pt, marker in CASES[name]:
            packets.append(rtp(A, 20000 + 2 * k, B, 30000 + 2 * k, T0 + 0.1 + when, seq, ts, 0x1000 + k, pt, marker))
    write(path, packets)
    rows = {int(r["dst"].rsplit(":", 1)[1]) - 30000 >> 1: r for r in tshark_streams(require_binary("tshark"), path)}
    assert sorted(rows) == list(range(len(NAMES)))
    return path, rows


def _close(ours: dict, theirs: dict, name: str) -> None:
    assert (ours["packets"], ours["lost"]) == (theirs["packets"], theirs["lost"]), name
    for f in FIELDS[2:]:
        assert ours[f] == pytest.approx(theirs[f], abs=0.0015), (name, f)  # tshark prints 3 decimals


@pytest.mark.parametrize("name", NAMES)
def test_oracle_equals_tshark(capture, name):
    _, rows = capture
    ours = dataclasses.asdict(analyse(CASES[name], RATES))
    _close(ours, rows[NAMES.index(name)], name)


def _stats(packets, start: float = T0) -> StreamStats:
    s = StreamStats(8000, {0: ("PCMU", 8000), 8: ("PCMA", 8000), 13: ("CN", 8000), 101: ("telephone-event", 8000)})
    for i, (when, seq, ts, pt, marker) in enumerate(packets):
        s.add(frame=i + 1, time=start + when, seq=seq, ts=ts, pt=pt, marker=marker, size=172)
    return s


def test_finish_many_equals_tshark(capture):
    _, rows = capture
    figures = list(finish_many([_stats(CASES[name]) for name in NAMES]))
    for k, (name, m) in enumerate(zip(NAMES, figures)):
        theirs = rows[k]
        ours = {f: getattr(m, f) for f in FIELDS}
        for f in ("min_delta_ms", "min_jitter_ms"):
            if theirs[f] < 0:  # no packet counted: tshark prints -1, siptool keeps 0
                assert ours[f] == 0.0, (name, f)
                ours[f] = theirs[f]
        _close(ours, theirs, name)


def test_issue_case_keeps_every_packet_in_time(capture):
    """The resumed stream of issue 13: the timestamp went back below the highest one sent, yet tshark
    judges every packet in time: the jitter takes the step once, |D| = 6.02 s + 3 s at the resumed
    packet (marked, so neither its delta nor its jitter is counted), and settles again. Guards that
    the case still discriminates the two readings (a running maximum of timestamps would hold the
    reference before the pause while the jitter climbed to the whole offset)."""
    packets = CASES["resume_ts_behind"]
    assert len(packets) == 2546
    peak = max(p[2] for p in packets[:1200])
    assert packets[1200][2] < peak
    m = _stats(packets).finish()
    assert m.wrong_timestamps == 0
    assert m.max_delta_ms < 30 and 9020 / 16 * 15 / 16 < m.max_jitter_ms < 9020 / 16


@pytest.mark.parametrize("seed", range(40))
def test_finish_equals_oracle_on_random_streams(seed):
    """The vectorised figures equal the packet-by-packet oracle on any mix (no tshark needed)."""
    packets = random_mix(1000 + seed)
    m = _stats(packets, start=0.0).finish()  # the oracle's clock: no rounding of a 1.7e9 s epoch
    f = analyse(packets, RATES)
    assert (m.packets, m.lost, m.wrong_timestamps) == (f.packets, f.lost, f.wrong_timestamps)
    for name in ("max_delta_ms", "mean_delta_ms", "mean_jitter_ms", "max_jitter_ms"):
        assert getattr(m, name) == pytest.approx(getattr(f, name), rel=1e-9, abs=1e-9), name
    if f.min_delta_ms >= 0:
        assert m.min_delta_ms == pytest.approx(f.min_delta_ms, rel=1e-9, abs=1e-9)


def test_analyze_equals_tshark(capture):
    """The whole path (SDP, flows, batches) gives tshark's figures for every crafted stream."""
    path, rows = capture
    report = analyze_file(path)
    assert len(report.calls) == len(NAMES) and not report.streams
    streams = [s for c in report.calls for s in c.streams]
    ours = {int(s.dst.rsplit(":", 1)[1]) - 30000 >> 1: s for s in streams}
    assert sorted(ours) == sorted(rows) and len(streams) == len(rows)
    for k, t in rows.items():
        s = ours[k]
        assert (s.packets, s.lost) == (t["packets"], t["lost"]), NAMES[k]
        for f in ("max_delta_ms", "mean_jitter_ms", "max_jitter_ms"):
            assert getattr(s, f) == pytest.approx(t[f], abs=0.0015), (NAMES[k], f)
    assert all(s.from_sdp for s in streams)
