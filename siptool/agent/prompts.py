"""What a test call or the echo's voice agent says, read before anything is sent: WAV files (16-bit
PCM, any rate, mono or stereo) and words spoken by espeak-ng where it is installed (a clear message
where it is not). A prompt is kept at its own rate and resampled to the codec's once the call's
codec is known (`at_rate`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np

from ..errors import SiptoolError
from ..rtp.audio import resample
from .media import read_wav

ESPEAK = ("espeak-ng", "-v", "en-us", "-s", "170")


@dataclass
class Prompt:
    label: str  # the file name, or the words
    samples: np.ndarray
    rate: int
    _at: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def at_rate(self, rate: int) -> np.ndarray:
        """The prompt's samples at `rate` (resampled once per rate)."""
        if rate not in self._at:
            self._at[rate] = resample(self.samples, self.rate, rate)
        return self._at[rate]


def is_file(text: str) -> bool:
    """A `say` value naming a WAV file (else it is words to speak)."""
    return text.lower().endswith(".wav")


def spoken(words: str) -> tuple[np.ndarray, int]:
    """espeak-ng's speech of `words` (its WAV, 22050 Hz mono)."""
    if shutil.which(ESPEAK[0]) is None:
        raise SiptoolError(f"cannot speak {words!r}: espeak-ng is not installed (apt-get install espeak-ng), "
                           "or give a WAV file (say prompt.wav)")
    fd, path = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        run = subprocess.run([*ESPEAK, "-w", path, words], capture_output=True, text=True, timeout=60)
        if run.returncode != 0:
            raise SiptoolError(f"espeak-ng could not speak {words!r}: {run.stderr.strip() or run.returncode}")
        return read_wav(path)
    finally:
        os.unlink(path)


def load(text: str, where: str = "--say") -> Prompt:
    """A prompt from a WAV file name or words."""
    if is_file(text):
        if not os.path.isfile(text):
            raise SiptoolError(f"{where} {text}: no such file")
        samples, rate = read_wav(text)
    else:
        samples, rate = spoken(text)
    return Prompt(os.path.basename(text) if is_file(text) else text, samples, rate)


def load_all(texts, where: str = "--say") -> dict[str, Prompt]:
    """Every distinct prompt, read (or spoken) once."""
    out: dict[str, Prompt] = {}
    for text in texts:
        if text not in out:
            out[text] = load(text, where)
    return out
