"""ITU-T G.711 mu-law and A-law with numpy, bit-exact with the G.711 tables (the classic Sun reference
code that G.191 and CPython's audioop use), plus test signals for the active agent.

Linear samples are 16-bit signed (int16); mu-law uses the top 14 bits, A-law the top 13 (G.711 2, 3).
Decoding is a 256-entry table lookup; encoding a 65536-entry table built once from the segment rules.
"""

from __future__ import annotations

import functools

import numpy as np

_BIAS = 0x84
_ULAW_CLIP = 8159  # 14-bit magnitude clip (32635 >> 2)
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t = t << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag)  # first segment whose end >= value
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F))
    return np.roll((code ^ mask).astype(np.uint8), -32768)  # index by uint16 view of the sample


def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)
    s7 = np.minimum(seg, 7)
    low = np.where(s7 < 2, (mag >> 1) & 0x0F, (mag >> s7) & 0x0F)
    code = np.where(seg >= 8, 0x7F, (s7 << 4) | low)
    return np.roll((code ^ mask).astype(np.uint8), -32768)


ULAW_DECODE = _ulaw_decode_table()
ALAW_DECODE = _alaw_decode_table()
_tables: dict[str, np.ndarray] = {}


def _enc(name: str) -> np.ndarray:
    table = _tables.get(name)
    if table is None:
        table = _tables[name] = _ulaw_encode_table() if name == "u" else _alaw_encode_table()
    return table


def _pcm(samples) -> np.ndarray:
    a = np.asarray(samples)
    if a.dtype != np.int16:
        a = np.clip(np.round(a) if a.dtype.kind == "f" else a, -32768, 32767).astype(np.int16)
    return a


def ulaw_encode(samples) -> bytes:
    """int16 samples -> mu-law bytes (G.711 table 2)."""
    return _enc("u")[_pcm(samples).view(np.uint16)].tobytes()


def alaw_encode(samples) -> bytes:
    """int16 samples -> A-law bytes (G.711 table 1, even bits inverted)."""
    return _enc("a")[_pcm(samples).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """mu-law bytes -> int16 samples."""
    return ULAW_DECODE[np.frombuffer(data, np.uint8)]


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return ALAW_DECODE[np.frombuffer(data, np.uint8)]


def encode(codec: str, samples) -> bytes:
    """By codec name: PCMU / PCMA (RFC 3551 4.5.14)."""
    return ulaw_encode(samples) if codec.upper() in ("PCMU", "ULAW", "G711U") else alaw_encode(samples)


def decode(codec: str, data: bytes) -> np.ndarray:
    return ulaw_decode(data) if codec.upper() in ("PCMU", "ULAW", "G711U") else alaw_decode(data)


SILENCE = {"PCMU": 0xFF, "PCMA": 0xD5}  # code of linear 0


# --- test signals ----------------------------------------------------------------------------------

def tone(freq_hz: float, seconds: float, rate: int = 8000, level_dbov: float = -10.0,
         phase: float = 0.0) -> np.ndarray:
    """A sine tone as int16; level in dBov (0 dBov = full-scale sine peak)."""
    n = int(round(seconds * rate))
    amp = 32767 * 10 ** (level_dbov / 20)
    return np.round(amp * np.sin(2 * np.pi * freq_hz * np.arange(n) / rate + phase)).astype(np.int16)


def speech_like(seconds: float, rate: int = 8000, level_dbov: float = -16.0, seed: int = 1) -> np.ndarray:
    """A deterministic speech-like test signal: a gliding 100-220 Hz fundamental with harmonics shaped by
    three formant-like resonances, a 4 Hz syllabic envelope and pauses (talkspurts of ~1-2 s).
    Meant for exercising codecs, echo and VAD paths, not for listening tests (use ITU-T P.501 there).
    Read-only and made once per set of arguments: computing it takes ~0.1 s, which on the event loop of
    N concurrent calls would stall the RTP of the calls already up at each new call."""
    return _speech_like(float(seconds), rate, float(level_dbov), seed)


@functools.lru_cache(maxsize=8)
def _speech_like(seconds: float, rate: int, level_dbov: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = 160 + 60 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.28))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    sig = np.zeros(n)
    for formant, bw in ((500, 120), (1500, 200), (2500, 300)):
        for h in range(1, 25):
            fh = h * f0
            weight = np.exp(-0.5 * ((fh - formant) / bw) ** 2) / h ** 0.5
            sig += weight * np.sin(h * phase) * (fh < rate / 2 - 100)
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6.28))
    gate = np.ones(n)
    pos = 0
    while pos < n:  # alternate talkspurt and pause
        talk = int(rate * rng.uniform(1.0, 2.0))
        pause = int(rate * rng.uniform(0.3, 0.8))
        gate[pos + talk:pos + talk + pause] = 0.0
        pos += talk + pause
    sig *= envelope * gate
    peak = np.max(np.abs(sig)) or 1.0
    amp = 32767 * 10 ** (level_dbov / 20)
    out = np.round(sig / peak * amp * 2).clip(-32768, 32767).astype(np.int16)
    out.flags.writeable = False
    return out


def level_dbov(samples) -> float:
    """RMS level relative to a full-scale sine (dBov), -inf for silence."""
    x = np.asarray(samples, np.float64)
    rms = np.sqrt(np.mean(x * x)) if len(x) else 0.0
    return 20 * np.log10(rms / (32767 / np.sqrt(2))) if rms > 0 else float("-inf")
