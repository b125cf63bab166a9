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
    """Talk spurts and levels of a direction's frames."""
    order = np.argsort(f.start, kind="stable")
    start, length, peak = f.start[order], f.length[order], f.peak[order]
    power, clipped, samples = f.power[order], f.clipped[order], f.samples[order]
    level = dbfs(peak)
    zero = peak <= ZERO_PEAK
    live = level[~zero]
    floor = float(np.percentile(live, vad.noise_percentile)) if len(live) else -np.inf
    threshold = max(vad.abs_dbfs, min(floor, vad.noise_cap_dbfs) + vad.floor_margin_db)
    active = level > threshold
    spurts = _spurts(start[active], start[active] + length[active], vad)
    inside = _inside(start, spurts)
    measured = inside & ~np.isnan(power)
    speech_power = float(power[measured].mean()) if measured.any() else 0.0
    pauses = ~inside & ~zero
    measured_pauses = pauses & ~np.isnan(power)
    live_pauses = float(length[pauses].sum()) >= 0.5 and measured_pauses.any()
    noise = float(np.median(power[measured_pauses])) if live_pauses else 0.0
    speech_samples = int(samples[inside].sum())
    top = float(peak.max()) if len(peak) else 0.0
    return Activity(
        spurts=spurts, audio_s=float(length.sum()), speech_s=float(sum(b - a for a, b in spurts)),
        level_dbov=dbov(speech_power) if spurts else None, peak_dbfs=float(dbfs(top)) if top > 0 else None,
        noise_dbov=dbov(noise), clipped_pct=100.0 * int(clipped[inside].sum()) / speech_samples if speech_samples else 0.0,
        silent=not len(level) or bool((level < vad.silence_dbfs).all()),
        silences=_runs(start, length, zero, vad.silence_run_s), threshold_dbfs=threshold)


def _spurts(starts: np.ndarray, ends: np.ndarray, vad: Vad) -> list[tuple[float, float]]:
    """Active frames (sorted) joined across pauses shorter than merge_s; short ones dropped."""
    if not len(starts):
        return []
    ends = np.maximum.accumulate(ends)
    cut = np.flatnonzero(starts[1:] - ends[:-1] >= vad.merge_s) + 1
    first = np.r_[0, cut]
    last = np.r_[cut - 1, len(starts) - 1]
    out = []
    for a, b in zip(starts[first].tolist(), ends[last].tolist()):
        if b - a >= vad.min_spurt_s:
            out.append((a, b))
    return out


def _inside(start: np.ndarray, spurts: list[tuple[float, float]]) -> np.ndarray:
    """Frames that start inside a spurt."""
    if not spurts:
        return np.zeros(len(start), bool)
    a = np.array([s for s, _ in spurts])
    b = np.array([e for _, e in spurts])
    i = np.searchsorted(a, start, side="right") - 1
    return (i >= 0) & (start < b[np.maximum(i, 0)])


def _runs(start: np.ndarray, length: np.ndarray, flag: np.ndarray, min_s: float) -> list[tuple[float, float]]:
    """Stretches where consecutive frames are all flagged (a gap of more than a frame between two
    frames breaks a run: lost packets are not silence the sender sent), at least min_s long."""
    if not flag.any():
        return []
    end = start + length
    joined = np.r_[False, (start[1:] - end[:-1] <= 0.005) & flag[1:] & flag[:-1]]
    heads = np.flatnonzero(flag & ~joined)
    tails = np.flatnonzero(flag & ~np.r_[joined[1:], False])
    keep = end[tails] - start[heads] >= min_s
    return list(zip(start[heads][keep].tolist(), end[tails][keep].tolist()))
