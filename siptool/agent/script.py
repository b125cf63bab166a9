"""A test call's prompts (`call --say`, `--pause`, `--script FILE`), sans-I/O: the steps, and the
runner that plays them through a Speaker while a Listener follows the far end.

A script file has one step a line (`#` at the start or after a space starts a comment):

    wait            the far end speaks and then stays quiet END_OF_TURN_S (at most 10 s)
    wait 20         ... at most 20 s
    say hello.wav   a WAV file (16-bit PCM, any rate, mono or stereo)
    say Where is my order?    words, spoken by espeak-ng (agent/prompts.py)
    pause 1.5       this many seconds of silence

`--say A --say B` is the script `wait, say A, wait, say B, wait`: hear the greeting, then each
prompt and its answer. With `--pause S` the waits between and after the prompts are `pause S`
instead (the prompts go out on a fixed schedule, whatever the far end does: to test barge-in).

The runner is the RTP session's `source`: `at_frame(now, start)` comes before each frame is read,
so a prompt starts where its step puts it, to the sample, and `samples(start, n)` is the Speaker's.
`finished` once the last step is done and the last prompt has played; `said` lists what was played
when (capture clock), which the call's report compares with the far end's speech (analysis/voice.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ..errors import SiptoolError
from .listener import Listener
from .speaker import Clip, Speaker

WAIT_MAX_S = 10.0  # how long a wait listens for the far end at most (a script's `wait S` sets it)
END_OF_TURN_S = 1.0  # a wait is over when the far end has been quiet this long after speaking


class Kind(Enum):
    SAY = "say"
    PAUSE = "pause"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Step:
    kind: Kind
    text: str = ""  # say: a .wav file, or words to speak
    seconds: float = 0.0  # pause: its length; wait: the longest wait


def _seconds(word: str, where: str) -> float:
    try:
        value = float(word)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise SiptoolError(f"{where}: {word!r} is not a number of seconds (0 to 3600)")
    return value


def parse(text: str, name: str = "script") -> list[Step]:
    """The steps of a script file (module docstring); one clear line for the first bad one."""
    steps = []
    for n, line in enumerate(text.splitlines(), 1):
        line = re.split(r"(?:^|\s)#", line, maxsplit=1)[0].strip()  # a comment: `#` first or after a space
        if not line:
            continue
        word, _, rest = line.partition(" ")
        rest, where = rest.strip(), f"{name} line {n}"
        if word == "say" and rest:
            steps.append(Step(Kind.SAY, text=rest))
        elif word == "pause" and rest:
            steps.append(Step(Kind.PAUSE, seconds=_seconds(rest, where)))
        elif word == "wait":
            steps.append(Step(Kind.WAIT, seconds=_seconds(rest, where) if rest else WAIT_MAX_S))
        else:
            raise SiptoolError(f"{where}: {line!r}: use say FILE.wav, say WORDS, pause SECONDS or wait [SECONDS]")
    if not any(s.kind is Kind.SAY for s in steps) and not any(s.kind is Kind.WAIT for s in steps):
        raise SiptoolError(f"{name}: no say or wait step")
    return steps


def from_options(says: list[str], pause: float | None) -> list[Step]:
    """`--say` (repeatable) and `--pause S` as steps (module docstring); no prompts: listen to the
    greeting only."""
    between = Step(Kind.PAUSE, seconds=pause) if pause is not None else Step(Kind.WAIT, seconds=WAIT_MAX_S)
    steps = [Step(Kind.WAIT, seconds=WAIT_MAX_S)]
    for text in says:
        steps += [Step(Kind.SAY, text=text), between]
    return steps


@dataclass(slots=True)
class Said:
    """A prompt as it was played: its label and when (capture clock)."""

    label: str
    start: float
    end: float


class Script:
    """Runs the steps: `clips` maps each say step's text to its samples at the speaker's rate, and
    `labels` to what the report calls it (a file's name; the words)."""

    def __init__(self, steps: list[Step], clips: dict[str, np.ndarray], speaker: Speaker, listener: Listener,
                 labels: dict[str, str] | None = None) -> None:
        self.steps, self.clips, self.speaker, self.listener = steps, clips, speaker, listener
        self.labels = labels or {}
        self.i = 0
        self.cursor = 0  # sample position where the last step's sound ends
        self._waiting_since: float | None = None
        self.placed: list[Clip] = []
        self.finished = False

    def samples(self, start: int, n: int) -> np.ndarray:
        return self.speaker.samples(start, n)

    def at_frame(self, now: float, start: int) -> None:
        """Before the frame from sample `start` goes out: take the steps that are due."""
        sp = self.speaker
        while self.i < len(self.steps):
            step = self.steps[self.i]
            if step.kind is Kind.SAY:
                clip = sp.play(max(self.cursor, start), self.clips[step.text], self.labels.get(step.text, step.text))
                self.placed.append(clip)
                self.cursor = clip.end
            elif step.kind is Kind.PAUSE:
                self.cursor = max(self.cursor, start) + int(round(step.seconds * sp.rate))
            else:  # wait: listen once our own sound has played
                if start < self.cursor:
                    return
                since = sp.time(self.cursor)
                end = self.listener.ended(now, since)
                quiet = end is not None and now - end >= END_OF_TURN_S
                if not quiet and now - since < step.seconds:
                    return
                self.cursor = start
            self.i += 1
        self.finished = start >= self.cursor

    @property
    def said(self) -> list[Said]:
        sp = self.speaker
        return [Said(c.label, sp.time(c.start), sp.time(c.end)) for c in self.placed]
