"""WAV files (RIFF, 16-bit PCM) of decoded audio: `siptool audio`'s output. Mono or stereo."""

from __future__ import annotations

import wave

import numpy as np


def write(path, samples: np.ndarray, rate: int) -> None:
    """int16 samples, (n,) for mono or (n, channels) interleaved, at `rate` samples per second."""
    x = np.asarray(samples, np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if x.ndim == 1 else x.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.astype("<i2").tobytes())
