"""`siptool echo --greeting WAV ...`: the echo agent as a simple voice agent, for tests and demos,
sans-I/O. It answers, waits `delay_s`, speaks its greeting, listens (listener.py, the content layer's
speech activity), and each time the caller has finished speaking it replies `gap_s` after the end of
the caller's speech with the next reply WAV (in turn). It knows exactly when it spoke, so a latency
test (`call --say`) has a ground truth: its greeting latency is `delay_s` and its response latency
`gap_s`.

Barge-in: by default, when the caller starts speaking while the agent speaks, the agent stops
(within about 50 ms: the shortest talk spurt the detector accepts plus a packet); with
`talk_over` it keeps talking over the caller, the fault `media.talk_over` reports. A reply whose
turn is not over (the caller speaks again before it starts) is dropped.

The end of the caller's speech is known `vad.merge_s` (0.3 s) after its last active frame, so a gap
shorter than about 0.35 s starts late, when the agent can know the caller stopped."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .listener import Listener
from .speaker import Clip, Speaker


@dataclass(frozen=True)
class AgentPlan:
    """What the voice agent says and when: the greeting and replies as (samples, rate)."""

    greeting: tuple[np.ndarray, int] | None = None
    replies: tuple[tuple[np.ndarray, int], ...] = ()
    delay_s: float = 0.5  # answer to the greeting
    gap_s: float = 0.6  # end of the caller's speech to the reply
    talk_over: bool = False  # keep speaking when the caller barges in
    names: tuple[str, ...] = field(default=(), compare=False)  # the greeting's and replies' labels


class VoiceAgent:
    """The RTP session's source for one call: `clips` are the plan's greeting and replies at the
    speaker's rate (the greeting first, None when there is none)."""

    def __init__(self, plan: AgentPlan, clips: list[np.ndarray | None], speaker: Speaker, listener: Listener) -> None:
        self.plan, self.clips, self.speaker, self.listener = plan, clips, speaker, listener
        self.greeted = False
        self.heard_upto = float("-inf")  # the end of the caller's last spurt already answered
        self.replies = 0
        self.placed: list[Clip] = []
        self._reply: Clip | None = None  # the last reply placed
        self.finished = False  # it never finishes on its own: the caller hangs up

    def samples(self, start: int, n: int) -> np.ndarray:
        return self.speaker.samples(start, n)

    def at_frame(self, now: float, start: int) -> None:
        sp, heard, plan = self.speaker, self.listener, self.plan
        if not self.greeted:
            self.greeted = True
            if self.clips[0] is not None:
                self._say(sp.position(sp.t0 + plan.delay_s), self.clips[0], self._label(0))
        pending = self._reply
        if pending is not None and pending.start > start and heard.started_after(now, self.heard_upto) is not None:
            self.speaker.clips.remove(pending)  # the caller went on speaking: not its turn yet
            self.placed.remove(pending)
            self._reply, self.replies = None, self.replies - 1
        playing = sp.playing(start)
        if playing is not None and not plan.talk_over and heard.speaking(now):
            began = heard.spurts(now)[-1][0]
            if began >= sp.time(playing.start):
                sp.cut(start)  # barge-in: stop speaking
        end = heard.ended(now, self.heard_upto)
        if end is not None and len(self.clips) > 1:
            self.heard_upto = end
            k = 1 + self.replies % (len(self.clips) - 1)
            self.replies += 1
            self._reply = self._say(max(sp.position(end + plan.gap_s), start), self.clips[k], self._label(k))

    def _say(self, at: int, samples: np.ndarray, label: str) -> Clip:
        clip = self.speaker.play(at, samples, label)
        self.placed.append(clip)
        return clip

    def _label(self, k: int) -> str:
        return self.plan.names[k] if k < len(self.plan.names) else ("greeting" if k == 0 else f"reply {k}")
