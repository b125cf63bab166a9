"""A call's audio as the people on it heard it (`siptool audio`): each stream decoded (rtp/audio.py)
and laid on the capture clock by its RTP timestamps from its first packet's arrival (rtp/content.py:
jitter does not move it, lost packets are silence), so gaps and overlaps are where they happened.

The capture is read twice: once to find the call (its number, its streams), once keeping the
decoded samples of that call's streams only, so memory holds one call's audio, not the capture's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis.content import ContentOptions
from ..report.model import Call, Stream
from .files import analyze_file


@dataclass(slots=True)
class Track:
    """One stream's audio: int16 samples at `rate`, the first heard at capture time `start`."""

    stream: Stream
    side: str  # "caller", "callee" (who sent it), "" when not known
    rate: int
    start: float
    samples: np.ndarray

    @property
    def end(self) -> float:
        return self.start + len(self.samples) / self.rate


def tracks(path, call: Call, tls_keylog: str | None = None, srtp_keys: list | None = None) -> list[Track]:
    """The call's streams decoded from the capture (a second pass, keeping only this call's audio;
    SRTP decrypted with the keys the first pass had: `tls_keylog`, `srtp_keys`). Streams that could
    not be decoded are left out."""
    audio: dict = {}
    again = analyze_file(path, content=ContentOptions(keep=frozenset({call.call_id}), audio=audio),
                         tls_keylog=tls_keylog, srtp_keys=srtp_keys)
    sides = {(s.src, s.dst, s.ssrc): s.content.side for c in again.calls if c.call_id == call.call_id
             for s in c.streams if s.content is not None}
    out = []
    for s in call.streams:
        chunks = audio.get((s.src, s.dst, s.ssrc))
        if not chunks:
            continue
        rate = max(r for _, r, _ in chunks)
        start = min(t for t, _, _ in chunks)
        end = max(t + len(x) / r for t, r, x in chunks)
        samples = np.zeros(int(round((end - start) * rate)) + 1, np.int16)
        for t, r, x in chunks:
            x = resample(x, r, rate)
            i = int(round((t - start) * rate))
            samples[i:i + len(x)] = x[:len(samples) - i]
        out.append(Track(s, sides.get((s.src, s.dst, s.ssrc), ""), rate, start, samples))
    return out


def resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Linear interpolation to another rate (enough to listen to and to measure levels)."""
    if rate == to or not len(x):
        return np.asarray(x, np.int16)
    n = int(round(len(x) * to / rate))
    return np.round(np.interp(np.arange(n) * rate / to, np.arange(len(x)), x)).astype(np.int16)


def on_timeline(track: Track, start: float, length: int, rate: int) -> np.ndarray:
    """A track at `rate`, placed on a timeline of `length` samples that begins at capture time `start`."""
    out = np.zeros(length, np.int32)
    x = resample(track.samples, track.rate, rate)
    i = int(round((track.start - start) * rate))
    a, b = max(i, 0), min(i + len(x), length)
    if a < b:
        out[a:b] = x[a - i:b - i]
    return out


def stereo(ts: list[Track], rate: int | None = None) -> tuple[np.ndarray, int, float]:
    """Caller left, callee right (a track of unknown side goes left): (samples (n, 2), rate, the
    capture time of the first sample). Several streams of one side (an SSRC change) are summed."""
    rate = rate or max(t.rate for t in ts)
    start, end = min(t.start for t in ts), max(t.end for t in ts)
    length = int(round((end - start) * rate))
    out = np.zeros((length, 2), np.int32)
    for t in ts:
        out[:, 1 if t.side == "callee" else 0] += on_timeline(t, start, length, rate)
    return np.clip(out, -32768, 32767).astype(np.int16), rate, start
