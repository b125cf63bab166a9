"""Speech activity (rtp/speech.py) and a stream's content (rtp/content.py) on signals whose speech is
where the test put it: spurt edges, levels, clipping, digital silence, comfort noise, loss,
reordering and duplicates, G.711 without decoding against decoding, many streams at once."""

from __future__ import annotations

import numpy as np
import pytest

from siptool.rtp import g711, speech
from siptool.rtp.content import StreamAudio, finish_many

RATE = 8000
T0 = 1000.0


def burst(seconds: float, level_dbov: float = -20.0, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """Speech-like sound: a 4 Hz modulated mix of harmonics at about `level_dbov`."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = sum(np.sin(2 * np.pi * f * t + seed) / k for k, f in enumerate((180, 360, 720, 1100), 1))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    x /= np.sqrt(np.mean(x ** 2))
    return x * 32767 / np.sqrt(2) * 10 ** (level_dbov / 20)


def timeline(seconds: float, spurts: list[tuple[float, float]], level: float = -20.0, noise: float = 0.0,
             rate: int = RATE) -> np.ndarray:
    x = np.random.default_rng(1).normal(0, noise, int(seconds * rate)) if noise else np.zeros(int(seconds * rate))
    for a, b in spurts:
        i, j = int(round(a * rate)), int(round(b * rate))
        x[i:j] += burst((j - i) / rate, level, rate)[:j - i]
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def feed_pcmu(audio: StreamAudio, pcm: np.ndarray, order=None, seq0: int = 65000, ts0: int = 4294960000,
              jitter: float = 0.0) -> None:
    payload = g711.ulaw_encode(pcm)
    n = len(payload) // 160
    rng = np.random.default_rng(3)
    for i in (order if order is not None else range(n)):
        audio.packet(T0 + i * 0.02 + rng.uniform(0, jitter), (seq0 + i) & 0xFFFF, (ts0 + 160 * i) & 0xFFFFFFFF, 0,
                     payload[i * 160:(i + 1) * 160])


def pcmu(**kw) -> StreamAudio:
    return StreamAudio({0: ("PCMU", 8000), 13: ("CN", 8000)}, **kw)


def spurts(result) -> list[tuple[float, float]]:
    return [(round(a - T0, 3), round(b - T0, 3)) for a, b in result.activity.spurts]


def test_spurt_edges_within_10_ms_through_seq_and_timestamp_wraps():
    truth = [(0.505, 1.237), (2.013, 3.5)]
    a = pcmu()
    feed_pcmu(a, timeline(4.0, truth, noise=6))
    got = spurts(a.finish())
    assert len(got) == 2
    for (x, y), (u, v) in zip(got, truth):
        assert abs(x - u) <= 0.011 and abs(y - v) <= 0.011


def test_g711_without_decoding_equals_decoding():
    """The code-domain path (peaks from the codes, power of one packet in 8) finds what decoding
    every sample (keep=True) finds: the same spurts, levels within 1.5 dB."""
    pcm = timeline(5.0, [(0.3, 1.9), (2.4, 4.2)], noise=6)
    fast, slow = pcmu(), pcmu(keep=True)
    feed_pcmu(fast, pcm)
    feed_pcmu(slow, pcm)
    f, s = fast.finish(), slow.finish()
    assert spurts(f) == spurts(s)
    assert abs(f.activity.level_dbov - s.activity.level_dbov) < 1.5
    assert abs(s.activity.level_dbov + 20) < 0.6
    assert len(slow.kept) == 250 and sum(len(x) for _, _, x in slow.kept) == 40000


def test_jitter_reordering_duplicates_and_loss():
    """Placed by RTP timestamp, not by arrival: 15 ms of jitter, reordered and duplicated packets
    leave the spurts where they were; lost packets are silence, not speech."""
    pcm = timeline(4.0, [(0.5, 1.5), (2.0, 3.0)])
    clean = pcmu()
    feed_pcmu(clean, pcm)
    order = list(range(200))
    order[10], order[11] = order[11], order[10]
    order += [40, 41]  # duplicates, late
    messy = pcmu()
    feed_pcmu(messy, pcm, order=order, jitter=0.015)
    c, m = clean.finish(), messy.finish()
    assert spurts(c) == spurts(m) and m.dropped == 2 and m.packets == 200
    lossy = pcmu()
    feed_pcmu(lossy, pcm, order=[i for i in range(200) if not 2.2 <= i * 0.02 < 2.8])  # 600 ms lost mid-spurt
    got = spurts(lossy.finish())
    assert got[1][1] - got[1][0] < 0.5 or len(got) == 3  # the gap is not speech


def test_levels_clipping_and_silence():
    loud = pcmu()
    feed_pcmu(loud, np.clip(timeline(3.0, [(0.5, 2.5)], level=-20) * 10.0, -32768, 32767).astype(np.int16))
    r = loud.finish().activity
    assert r.clipped_pct > 5 and r.peak_dbfs > -0.2  # mu-law's largest step is 32124
    quiet = pcmu()
    feed_pcmu(quiet, timeline(3.0, [(0.5, 2.5)], level=-45))
    q = quiet.finish().activity
    assert len(q.spurts) == 1 and abs(q.level_dbov + 45) < 2 and q.clipped_pct == 0
    zero = pcmu()
    feed_pcmu(zero, np.zeros(24000, np.int16))
    z = zero.finish().activity
    assert z.silent and not z.spurts and z.peak_dbfs is None and z.silences == [(T0, T0 + 3.0)]


def test_comfort_noise_is_silence_until_the_next_packet():
    """RFC 3389: after speech, CN packets every 200 ms and no audio: the time they cover is digital
    silence (a run), not missing."""
    a = pcmu()
    feed_pcmu(a, timeline(1.0, [(0.2, 0.8)]))
    for k in range(10):
        a.packet(T0 + 1.0 + 0.2 * k, (65000 + 50 + k) & 0xFFFF, (4294960000 + 8000 + 1600 * k) & 0xFFFFFFFF, 13, b"\x40")
    r = a.finish()
    assert r.comfort_noise == 10 and r.activity.audio_s == pytest.approx(1.0 + 9 * 0.2 + 0.02)  # the last: 20 ms
    assert r.activity.silences and r.activity.silences[-1][1] - r.activity.silences[-1][0] >= 1.9


def test_comfort_noise_only_is_silent():
    a = pcmu()
    for k in range(20):
        a.packet(T0 + 0.2 * k, k, 1600 * k, 13, b"\x40")
    r = a.finish()
    assert r.codec == "CN" and r.activity.silent and not r.activity.spurts


def test_events_and_unknown_payload_types_are_not_audio():
    a = StreamAudio({0: ("PCMU", 8000), 101: ("telephone-event", 8000)})
    for k in range(50):
        a.packet(T0 + 0.02 * k, k, 160 * k, 101, b"\x05\x0a\x00\xa0")
        a.packet(T0 + 0.02 * k, 1000 + k, 160 * k, 97, b"\x00" * 40)
    r = a.finish()
    assert r.activity is None and r.error == "no audio packets"


def test_undecodable_codec_says_why():
    a = StreamAudio({96: ("SILK", 16000)})
    for k in range(20):
        a.packet(T0 + 0.02 * k, k, 320 * k, 96, b"\x01\x02")
    r = a.finish()
    assert r.activity is None and "SILK" in r.error


def test_many_streams_at_once_equal_one_by_one():
    """finish_many (segment-aware, as the analyser closes streams) = each stream's own finish."""
    pcms = [timeline(3.0, [(0.1 * k, 1.0 + 0.2 * k)], level=-18 - k, noise=4 * k) for k in range(5)]
    alone, together = [], [pcmu() for _ in pcms]
    for pcm, t in zip(pcms, together):
        a = pcmu()
        feed_pcmu(a, pcm)
        alone.append(a.finish())
        feed_pcmu(t, pcm)
    for x, y in zip(alone, finish_many(together)):
        assert x.activity == y.activity and (x.codec, x.packets) == (y.codec, y.packets)


def test_frames_of_decoded_audio():
    f = speech.frames_of(timeline(1.0, [(0.25, 0.75)], rate=16000), 16000, T0)
    assert len(f.start) == 100 and f.start[1] - f.start[0] == pytest.approx(0.01)
    r = speech.activity(f)
    assert [(round(a - T0, 2), round(b - T0, 2)) for a, b in r.spurts] == [(0.25, 0.75)]
