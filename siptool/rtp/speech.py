"""Speech activity and levels of one direction of audio, from short frames (10 ms, or one G.711
packet's halves): an energy detector with an adaptive floor, talk spurts, the active speech level
(dBov), clipping, and stretches of digital silence. Sans-I/O and numpy only: the analyser runs it on
captured streams and the agent can run it on what it receives.

Each frame carries its start (seconds, capture clock), its peak |x| (linear, 16-bit scale), its
mean square (NaN when not measured: the G.711 fast path measures one packet in POWER_EVERY) and its
count of full-scale samples. A frame is active when its peak is above the threshold: FLOOR_MARGIN_DB
over the stream's noise floor (the NOISE_PERCENTILE of its frame peaks, at most NOISE_CAP_DBFS, so a
stream of continuous speech still has a floor below its speech), and never below ABS_DBFS. Active
frames closer than MERGE_S are one spurt (the pauses between words, ITU-T P.56 uses a 200 ms hang
time); spurts shorter than MIN_SPURT_S are clicks, not speech. A spurt starts at its first active
frame and ends at the end of its last one: no hang time is added to it.

Why energy, not a trained detector: measured on the fixtures' ground truth (bench/vad.py), this
finds talk spurt edges within one frame, where webrtcvad's hangover moves spurt ends by 60-200 ms,
and it costs a table lookup per G.711 packet on the analyser's fast path. Its limit: steady noise
above about -30 dBFS peak reads as speech, and a pure tone is activity like speech.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FULL_SCALE = 32768.0
SINE_POWER = 32767.0 ** 2 / 2  # mean square of a full-scale sine: 0 dBov (ITU-T G.100.1)
ZERO_PEAK = 8  # G.711's smallest step (A-law has no exact zero): at or below it a frame is digital silence
EDGE_S = 0.01  # a talk spurt's edges are resolved to this: frames longer than it carry its peaks at both ends


@dataclass(frozen=True, slots=True)
class Vad:
    """The detector's settings (defaults: module docstring)."""

    abs_dbfs: float = -50.0  # a frame's peak must be above this to be speech, whatever the floor
    noise_percentile: float = 10.0
    noise_cap_dbfs: float = -40.0
    floor_margin_db: float = 12.0
    merge_s: float = 0.3
    min_spurt_s: float = 0.05
    silence_dbfs: float = -60.0  # a frame whose peak stays below this is silent to a listener
    silence_run_s: float = 1.0  # digital silence runs at least this long are reported


@dataclass(slots=True)
class Frames:
    """A direction's frames, in any order (activity() sorts them). `length` is each frame's duration."""

    start: np.ndarray = field(default_factory=lambda: np.zeros(0))  # s, capture clock
    length: np.ndarray = field(default_factory=lambda: np.zeros(0))  # s
    peak: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # max |x|
    power: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # mean x^2, NaN: not measured
    clipped: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # samples at full scale
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # samples in the frame
    head: np.ndarray | None = None  # peak of its first EDGE_S (None: the frame is that short, as peak)
    tail: np.ndarray | None = None  # peak of its last EDGE_S

    def __post_init__(self) -> None:
        if self.head is None:
            self.head = self.peak
        if self.tail is None:
            self.tail = self.peak


@dataclass(slots=True)
class Activity:
    """What a direction's audio held."""

    spurts: list[tuple[float, float]]  # talk spurts (start, end), s, capture clock
    audio_s: float  # seconds of audio decoded
    speech_s: float  # seconds inside spurts
    level_dbov: float | None  # active speech level: mean power of the speech frames (ITU-T P.56's idea)
    peak_dbfs: float | None  # loudest sample, dB below full scale
    noise_dbov: float | None  # median power of the pauses that are not digital silence; None: none such
    clipped_pct: float  # samples at full scale, % of the speech frames' samples
    silent: bool  # no frame reached the silence level: digital silence, comfort noise or inaudible
    silences: list[tuple[float, float]]  # runs of digital silence of at least Vad.silence_run_s
    threshold_dbfs: float  # the peak a frame needed to count as speech


def dbfs(peak: np.ndarray) -> np.ndarray:
    """Linear peaks to dB below full scale (-inf for 0)."""
    with np.errstate(divide="ignore"):
        return 20 * np.log10(np.asarray(peak, np.float64) / FULL_SCALE)


def dbov(power: float) -> float | None:
    return 10 * float(np.log10(power / SINE_POWER)) if power > 0 else None


def frames_of(samples: np.ndarray, rate: int, start: float, frame_s: float = 0.01) -> Frames:
    """Decoded samples (int16, `rate` per second, the first at capture time `start`) as frames."""
    x = np.asarray(samples, np.int16)
    n = max(int(round(rate * frame_s)), 1)
    k = -(-len(x) // n)
    if not k:
        return Frames()
    pad = np.zeros(k * n, np.int32)
    pad[:len(x)] = x
    rows = pad.reshape(k, n)
    a = np.abs(rows)
    counts = np.full(k, n, np.int32)
    counts[-1] = len(x) - (k - 1) * n
    power = (rows.astype(np.float64) ** 2).sum(axis=1) / counts
    return Frames(start=start + np.arange(k) * n / rate, length=counts / rate, peak=a.max(axis=1).astype(np.float32),
                  power=power.astype(np.float32), clipped=(a >= 32767).sum(axis=1).astype(np.int32), samples=counts)


def concat(parts: list[Frames]) -> Frames:
    if not parts:
        return Frames()
    return Frames(*(np.concatenate([getattr(p, name) for p in parts]) for name in Frames.__slots__))


def activity(f: Frames, vad: Vad = Vad()) -> Activity:
    """Talk spurts and levels of one direction's frames (in any order)."""
    order = np.argsort(f.start, kind="stable")
    f = Frames(*(getattr(f, name)[order] for name in Frames.__slots__))
    return activities(f, np.zeros(len(f.start), np.int64), 1, vad)[0]


def activities(f: Frames, seg: np.ndarray, k: int, vad: Vad = Vad(), heads: np.ndarray | None = None) -> list[Activity]:
    """`activity` of k directions at once (segment-aware numpy, so that closing many streams costs
    about what closing one does): f holds their frames sorted by (seg, start), seg[i] is the
    direction of frame i (0..k-1); `heads`, when known, where each direction's frames begin. The
    noise floor's percentile is read from a 1 dB histogram."""
    start, length, peak, power, clipped, samples = f.start, f.length, f.peak, f.power, f.clipped, f.samples
    n = len(start)
    zero = peak <= ZERO_PEAK
    with np.errstate(divide="ignore"):
        level = np.where(zero, -np.inf, 20 * np.log10(peak.astype(np.float32) / np.float32(FULL_SCALE)))
    bins = np.clip(np.floor(level) + 120, 0, 120).astype(np.int64)  # -120..0 dBFS (digital silence: -120)
    hist = np.bincount(seg * 121 + bins, weights=length, minlength=k * 121).reshape(k, 121)
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1]
    target = total * vad.noise_percentile / 100
    floor = np.where(total > 0, (cum < target[:, None] - 1e-9).sum(axis=1) - 120.0, -np.inf)
    threshold = np.maximum(vad.abs_dbfs, np.minimum(floor, vad.noise_cap_dbfs) + vad.floor_margin_db)
    limit = (FULL_SCALE * 10 ** (threshold / 20)).astype(np.float32)  # the threshold, linear, per direction
    active = level > threshold[seg]
    t0 = float(start.min()) if n else 0.0
    key = seg * 1e6 + (start - t0)  # one sorted axis for every direction
    sp_seg, sp_i0, sp_i1, sp_end, sp_key0, sp_key1 = _spurts(np.flatnonzero(active), key, length, seg, start, vad)
    # Edges to EDGE_S: a long frame (a G.711 packet) whose first or last 10 ms stay under the threshold.
    sp_limit = limit[sp_seg]
    sp_first = start[sp_i0] + np.where((f.head[sp_i0] <= sp_limit) & (length[sp_i0] > EDGE_S * 1.5), EDGE_S, 0.0)
    sp_last = sp_end - np.where((f.tail[sp_i1] <= sp_limit) & (length[sp_i1] > EDGE_S * 1.5), EDGE_S, 0.0)
    inside = np.zeros(n, bool)
    if len(sp_key0):
        # (1 us of slack: the keys of another direction's frames are rounded at a larger magnitude)
        i = np.searchsorted(sp_key0, key + 1e-6, side="right") - 1
        inside = (i >= 0) & (key < sp_key1[np.maximum(i, 0)] - 1e-6)
    measured = ~np.isnan(power)
    counted = inside & measured
    in_seg = seg[counted]
    speech_power = _sums(in_seg, power[counted], k) / np.maximum(np.bincount(in_seg, minlength=k), 1)
    pauses = ~inside & ~zero
    pause_s = _sums(seg[pauses], length[pauses], k)
    pauses &= measured
    noise = _medians(seg[pauses], power[pauses], k)
    in_seg = seg[inside]
    clipped_sum = _sums(in_seg, clipped[inside], k) if clipped.any() else np.zeros(k)
    speech_samples = _sums(in_seg, samples[inside], k)
    audio_s = _sums(seg, length, k)
    if heads is None:
        heads = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1]))) if n else np.zeros(0, np.int64)
    top = np.zeros(k)
    if n:
        top[seg[heads]] = np.maximum.reduceat(peak, heads)
    top_dbfs = dbfs(top)
    silences = _runs(start, length, zero, seg, k, vad.silence_run_s)
    spurts: list[list[tuple[float, float]]] = [[] for _ in range(k)]
    for g, a, b in zip(sp_seg.tolist(), sp_first.tolist(), sp_last.tolist()):
        spurts[g].append((a, b))
    silent_below = FULL_SCALE * 10 ** (vad.silence_dbfs / 20)
    out = []
    for g, (audio, power_g, top_g, top_db, noise_g, pause_g, clip_g, samples_g, thr) in enumerate(zip(
            audio_s.tolist(), speech_power.tolist(), top.tolist(), top_dbfs.tolist(), noise.tolist(),
            pause_s.tolist(), clipped_sum.tolist(), speech_samples.tolist(), threshold.tolist())):
        sp = spurts[g]
        out.append(Activity(
            spurts=sp, audio_s=audio, speech_s=float(sum(b - a for a, b in sp)),
            level_dbov=dbov(power_g) if sp else None, peak_dbfs=top_db if top_g > 0 else None,
            noise_dbov=dbov(noise_g) if pause_g >= 0.5 else None,
            clipped_pct=100.0 * clip_g / samples_g if samples_g else 0.0,
            silent=bool(top_g < silent_below), silences=silences[g], threshold_dbfs=thr))
    return out


def _sums(seg: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Per direction, the sum of its values."""
    return np.bincount(seg, weights=np.asarray(values, np.float64), minlength=k)


def _medians(seg: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Per direction, the median of its values (0 where it has none)."""
    out = np.zeros(k)
    if not len(values):
        return out
    order = np.lexsort((values, seg))
    seg, values = seg[order], values[order]
    heads = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))
    counts = np.diff(np.concatenate((heads, [len(seg)])))
    lo, hi = heads + (counts - 1) // 2, heads + counts // 2
    out[seg[heads]] = (values[lo].astype(np.float64) + values[hi]) / 2
    return out


def _spurts(active: np.ndarray, key: np.ndarray, length: np.ndarray, seg: np.ndarray, start: np.ndarray, vad: Vad):
    """The active frames (indices, in key order) joined across pauses shorter than merge_s within a
    direction; spurts shorter than min_spurt_s dropped. Returns per spurt its direction, first and
    last frame, end (s), and its start and end keys."""
    if not len(active):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0), np.zeros(0), np.zeros(0)
    starts, lengths, segs = key[active], length[active], seg[active]
    ends = starts + lengths
    if not (ends[1:] >= ends[:-1]).all():  # overlapping frames: a spurt lasts to the latest end so far
        ends = np.maximum.accumulate(ends)
    cut = np.flatnonzero((starts[1:] - ends[:-1] >= vad.merge_s) | (segs[1:] != segs[:-1])) + 1
    first = np.concatenate(([0], cut))
    last = np.concatenate((cut - 1, [len(starts) - 1]))
    latest = np.maximum.reduceat(start[active] + lengths, first)
    keep = ends[last] - starts[first] >= vad.min_spurt_s
    first, last = first[keep], last[keep]
    return segs[first], active[first], active[last], latest[keep], starts[first], ends[last]


def _runs(start: np.ndarray, length: np.ndarray, flag: np.ndarray, seg: np.ndarray, k: int, min_s: float) -> list[list]:
    """Per direction, stretches where consecutive frames are all flagged (a gap of more than a
    frame between two frames breaks a run: lost packets are not silence the sender sent), at least
    min_s long."""
    out: list[list[tuple[float, float]]] = [[] for _ in range(k)]
    if not flag.any():
        return out
    end = start + length
    joined = np.concatenate(([False], (start[1:] - end[:-1] <= 0.005) & flag[1:] & flag[:-1] & (seg[1:] == seg[:-1])))
    heads = np.flatnonzero(flag & ~joined)
    tails = np.flatnonzero(flag & ~np.concatenate((joined[1:], [False])))
    keep = end[tails] - start[heads] >= min_s
    for g, a, b in zip(seg[heads][keep].tolist(), start[heads][keep].tolist(), end[tails][keep].tolist()):
        out[g].append((a, b))
    return out
