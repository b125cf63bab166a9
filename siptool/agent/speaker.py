"""What the agent says, sample by sample (sans-I/O): clips placed on the timeline of the audio it
sends, silence (digital zero) between them. The RTP session reads it a frame at a time
(`samples(start, n)`, rtpsession.RtpSession.start's `source`); a script (script.py) or the echo's
voice agent (voice_agent.py) places the clips, and may cut the one playing (barge-in).

Positions are sample indices at the coder's audio rate from the first sample sent (`t0`, the
media's start on the capture clock), so a clip can start inside a packet: where it lands does not
depend on the 20 ms packet grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class Clip:
    """One clip on the timeline: where it starts and ends (samples), its samples, and its name."""

    start: int
    end: int
    samples: np.ndarray
    label: str


class Speaker:
    def __init__(self, rate: int, t0: float = 0.0) -> None:
        self.rate, self.t0 = rate, t0
        self.clips: list[Clip] = []

    def position(self, t: float) -> int:
        """The sample index of capture time t (never before the first sample)."""
        return max(int(round((t - self.t0) * self.rate)), 0)

    def time(self, position: int) -> float:
        return self.t0 + position / self.rate

    def play(self, at: int, samples: np.ndarray, label: str = "") -> Clip:
        """Place a clip from sample `at` on (after what plays there: clips never overlap)."""
        at = max(at, self.busy_until)
        clip = Clip(at, at + len(samples), np.asarray(samples, np.int16), label)
        self.clips.append(clip)
        return clip

    @property
    def busy_until(self) -> int:
        """The end of the last clip placed (0: none)."""
        return self.clips[-1].end if self.clips else 0

    def playing(self, position: int) -> Clip | None:
        """The clip that plays at sample `position`, if any."""
        last = self.clips[-1] if self.clips else None
        return last if last is not None and last.start <= position < last.end else None

    def cut(self, position: int) -> Clip | None:
        """Stop the clip playing at `position` there (barge-in); the clip cut, or None."""
        clip = self.playing(position)
        if clip is not None:
            clip.end = position
        return clip

    def samples(self, start: int, n: int) -> np.ndarray:
        """The n samples from sample `start` on: the clips where they play, zero elsewhere."""
        out = np.zeros(n, np.int16)
        for clip in reversed(self.clips):
            if clip.end <= start:
                break
            a, b = max(clip.start, start), min(clip.end, start + n)
            if a < b:
                out[a - start:b - start] = clip.samples[a - clip.start:b - clip.start]
        return out
