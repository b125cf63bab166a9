"""Who is speaking on the far end, live (sans-I/O): the received payloads decoded as they come and
run through the content layer's speech activity detector (rtp/speech.py, the code `analyze
--content` uses), so a script knows when the far end has answered and stopped, and the echo's voice
agent when the caller has finished a sentence or barges in.

Frames are placed by RTP timestamp plus the smallest arrival delay seen so far (as rtp/content.py
places them, causally): jitter does not move speech. A talk spurt is over once `vad.merge_s` of
audio after its last active frame has been heard (the detector joins speech closer than that), or
that long has passed with no packet at all: `ended(now)` says so. Audio, not the clock, decides, so
packets that come late or in a bunch do not end a spurt early. Only for steering the agent: the
figures a call reports are the Analyzer's, from its own packets (agent/tap.py)."""

from __future__ import annotations

from ..rtp import speech

SILENT_S = 0.1  # no packet for this long: the far end's silence is heard by the clock instead


class Listener:
    def __init__(self, decoder, clock_rate: int, vad: speech.Vad = speech.Vad()) -> None:
        self.decoder, self.clock, self.vad = decoder, clock_rate, vad
        self._frames: list[speech.Frames] = []
        self._ts0: int | None = None
        self._offset: float | None = None  # capture time minus media time, the smallest seen
        self._dirty = False
        self._spurts: list[tuple[float, float]] = []
        self.last_heard: float | None = None  # arrival of the last packet
        self._heard_to = float("-inf")  # media time of the end of the audio heard so far

    def feed(self, now: float, ts: int, payload: bytes) -> None:
        """One received audio payload, arrived at `now`, RTP timestamp `ts`."""
        if self._ts0 is None:
            self._ts0 = ts
        media = (((ts - self._ts0 + 0x80000000) & 0xFFFFFFFF) - 0x80000000) / self.clock
        self._offset = now - media if self._offset is None else min(self._offset, now - media)
        samples = self.decoder.decode(payload)
        if len(samples):
            self._frames.append(speech.frames_of(samples, self.decoder.rate, media))
            self._heard_to = max(self._heard_to, media + len(samples) / self.decoder.rate)
            self._dirty = True
        self.last_heard = now

    def spurts(self, now: float) -> list[tuple[float, float]]:
        """The far end's talk spurts so far, capture clock (the last one may still be going on)."""
        if self._dirty:
            f = speech.concat(self._frames)
            self._frames = [f]
            found = speech.activity(f, self.vad).spurts
            self._spurts = [(a + self._offset, b + self._offset) for a, b in found]
            self._dirty = False
        return self._spurts

    def heard_to(self, now: float) -> float:
        """Up to when the far end has been heard (capture clock): the end of its audio, or now once
        its packets have stopped coming."""
        if self.last_heard is None or now - self.last_heard >= SILENT_S:
            return now
        return self._heard_to + self._offset

    def speaking(self, now: float) -> bool:
        """A talk spurt is going on: less than merge_s of audio heard since its last active frame."""
        sp = self.spurts(now)
        return bool(sp) and self.heard_to(now) - sp[-1][1] < self.vad.merge_s

    def ended(self, now: float, since: float = float("-inf")) -> float | None:
        """The end of the far end's last talk spurt when it is over and it spoke after `since`;
        None while it speaks or when it has not spoken since then."""
        sp = self.spurts(now)
        if not sp or sp[-1][1] <= since or self.speaking(now):
            return None
        return sp[-1][1]

    def started_after(self, now: float, t: float) -> float | None:
        """The start of the first talk spurt that began after `t`, if any."""
        return next((a for a, _ in self.spurts(now) if a >= t), None)
