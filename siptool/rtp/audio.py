"""Audio codecs: RTP payloads to 16-bit samples and back, for every codec in the registry that has a
decoder (rtp/codecs.py `decoder`). Sans-I/O: bytes in, numpy samples out; the analyser decodes
captured streams with it and the agent can decode what it receives and encode what it sends.

G.711 and L16 are numpy (table lookups, rtp/g711.py); everything else goes through FFmpeg's
decoders as PyAV's wheel bundles them (libopus, G.722, G.726, G.729, GSM, iLBC, AMR-NB/WB through
opencore-amr, Speex, G.723.1, G.728, QCELP). PyAV is imported on first use only, so `analyze`
starts without it. Which codec a name means is the registry's (rtp/codecs.py `decoder`, `coder`):
this module holds the implementations and reads nothing from the registry module, which imports it. Output is always mono (channels averaged) at the codec's audio rate, which is
not always its RTP clock: G.722 samples at 16 kHz on an 8000 Hz clock (RFC 3551 4.5.2), Opus
decodes at 48 kHz (RFC 7587 4.1).

Payload formats handled before the decoder: AMR and AMR-WB per RFC 4867 (bandwidth-efficient or
octet-aligned, from fmtp; rtp/amr.py), iLBC's 20 or 30 ms mode (RFC 3952: fmtp `mode`, else the
payload length), several frames in one packet (GSM, iLBC), and the 2-byte G.729 Annex B comfort
noise (SID) frame, which decodes to nothing: the time it covers is silence to the caller.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from . import amr, g711


class AudioError(Exception):
    """A codec siptool cannot decode or encode (none in the registry, or no such FFmpeg codec)."""


def _fmtp(fmtp: str) -> dict[str, str]:
    """`a=fmtp` parameters (RFC 8866 6.15): "mode=20; octet-align=1" -> {"mode": "20", ...}."""
    out = {}
    for part in re.split(r"[;\s]+", fmtp or ""):
        key, sep, value = part.partition("=")
        if key:
            out[key.strip().lower()] = value.strip() if sep else ""
    return out


class Decoder:
    """One direction's decoder (codecs with state, such as ADPCM or Opus, need one per stream).
    `decode(payload)` returns the payload's samples (int16, mono, `rate` per second); damaged
    payloads give what could be decoded, possibly nothing, never an exception."""

    codec: str
    clock_rate: int  # RTP timestamp rate
    rate: int  # samples per second of the decoded audio

    def decode(self, payload: bytes) -> np.ndarray:
        raise NotImplementedError


class _Table(Decoder):
    """G.711 mu-law or A-law (RFC 3551 4.5.14): one table lookup per byte."""

    def __init__(self, codec: str, table: np.ndarray) -> None:
        self.codec, self.clock_rate, self.rate, self.table = codec, 8000, 8000, table

    def decode(self, payload: bytes) -> np.ndarray:
        return self.table[np.frombuffer(payload, np.uint8)]


class _Linear(Decoder):
    """L16 (RFC 3551 4.5.11): 16-bit big-endian samples, channels interleaved."""

    def __init__(self, rate: int, channels: int) -> None:
        self.codec, self.clock_rate, self.rate, self.channels = "L16", rate, rate, max(channels, 1)

    def decode(self, payload: bytes) -> np.ndarray:
        n = len(payload) // (2 * self.channels) * self.channels
        x = np.frombuffer(payload[:2 * n], ">i2").astype(np.int16)
        return x if self.channels == 1 else x.reshape(-1, self.channels).mean(axis=1).astype(np.int16)


class _FFmpeg(Decoder):
    """An FFmpeg decoder through PyAV; `split` turns one RTP payload into the packets it decodes."""

    def __init__(self, codec: str, name: str, clock_rate: int, rate: int, channels: int,
                 split: Callable[[bytes], list[bytes]] | None = None, options: dict | None = None,
                 bit_rate: int = 0) -> None:
        import av  # lazy: ~40 ms to import, and only content analysis needs it

        self.codec, self.clock_rate, self.rate = codec, clock_rate, rate
        self._av = av
        try:
            ctx = av.CodecContext.create(name, "r")
        except Exception as exc:  # noqa: BLE001 - PyAV raises several kinds for an unknown codec
            raise AudioError(f"no FFmpeg decoder {name!r} for {codec}: {exc}") from None
        ctx.sample_rate = rate
        ctx.layout = "stereo" if channels == 2 else "mono"
        if bit_rate:
            ctx.bit_rate = bit_rate
        if options:
            ctx.options = options
        self._ctx = ctx
        self._split = split

    def decode(self, payload: bytes) -> np.ndarray:
        parts = self._split(payload) if self._split is not None else [payload]
        out = []
        for part in parts:
            if not part:
                continue
            try:
                frames = self._ctx.decode(self._av.Packet(part))
            except Exception:  # noqa: BLE001 - a damaged frame: FFmpeg says why, the stream goes on
                continue
            out += [_mono(f.to_ndarray(), f.format.is_planar, len(f.layout.channels)) for f in frames]
        return np.concatenate(out) if out else np.zeros(0, np.int16)


def _mono(a: np.ndarray, planar: bool, channels: int) -> np.ndarray:
    """A PyAV frame's samples as int16 mono (float formats are -1..1)."""
    scale = 32768.0 if a.dtype.kind == "f" else 1.0
    if channels > 1:
        a = a.mean(axis=0) if planar else a.reshape(-1, channels).mean(axis=1)
    a = a.reshape(-1)
    if a.dtype != np.int16:
        a = np.clip(np.round(a * scale), -32768, 32767).astype(np.int16)
    return a


def _frames_of(size: int) -> Callable[[bytes], list[bytes]]:
    """Several fixed-size frames in one payload (GSM: 33 bytes, RFC 3551 4.5.8)."""
    return lambda p: [p[i:i + size] for i in range(0, len(p) - size + 1, size)]


def _g729(payload: bytes) -> list[bytes]:
    """10-byte G.729 frames; a trailing 2-byte Annex B SID frame carries no speech (RFC 3551 4.5.6)."""
    return [payload[:len(payload) - len(payload) % 10]]


def _ilbc_mode(fmtp: dict[str, str]) -> int:
    return 20 if fmtp.get("mode") == "20" else 30  # RFC 3952 5: no mode means 30 ms


def make_decoder(c, clock_rate: int, channels: int = 1, fmtp: str = "") -> Decoder:
    """The decoder for a registry entry `c` (rtp/codecs.Codec: name, decoder, clock_rate, rate), its
    negotiated clock and channels, and its fmtp. rtp/codecs.decoder looks the entry up by name."""
    key = c.name.lower()
    clock = clock_rate or c.clock_rate
    if key == "pcmu":
        return _Table("PCMU", g711.ULAW_DECODE)
    if key == "pcma":
        return _Table("PCMA", g711.ALAW_DECODE)
    if key == "l16":
        return _Linear(clock, channels or c.channels)
    params = _fmtp(fmtp)
    rate = c.rate or clock
    if key in ("amr", "amr-wb"):
        wide, aligned = key == "amr-wb", params.get("octet-align") == "1"
        return _FFmpeg(c.name, c.decoder, clock, rate, 1, lambda p: amr.unpack(p, wide, aligned))
    if key == "ilbc":
        return _Ilbc(params)
    if key.startswith(("g726", "aal2-g726")):
        bits = int(key.rsplit("-", 1)[1]) // 8  # kbit/s at 8000 samples/s: bits per sample (RFC 3551 4.5.4)
        return _FFmpeg(c.name, c.decoder, clock, rate, 1, options={"bits_per_coded_sample": str(bits)})
    split = {"gsm": _frames_of(33), "g729": _g729}.get(key)
    return _FFmpeg(c.name, c.decoder, clock, rate, channels if key == "opus" else 1, split)


class _Ilbc(Decoder):
    """iLBC in 20 ms (38-byte) or 30 ms (50-byte) frames, several per packet allowed (RFC 3952 3).
    The mode is fmtp's, unless the first payload's length only fits the other one."""

    def __init__(self, params: dict[str, str]) -> None:
        self.codec, self.clock_rate, self.rate = "iLBC", 8000, 8000
        self._mode = _ilbc_mode(params)
        self._inner: _FFmpeg | None = None

    def decode(self, payload: bytes) -> np.ndarray:
        if self._inner is None:
            if len(payload) % 50 and not len(payload) % 38:
                self._mode = 20
            elif len(payload) % 38 and not len(payload) % 50:
                self._mode = 30
            size = 38 if self._mode == 20 else 50
            self._inner = _FFmpeg("iLBC", "ilbc", 8000, 8000, 1, _frames_of(size),
                                  bit_rate=15200 if self._mode == 20 else 13330)
        return self._inner.decode(payload)


# --- encoders ---------------------------------------------------------------------------------

class Encoder:
    """Encodes one packet's worth of samples at a time: `frame_samples` int16 mono samples at `rate`
    in, one RTP payload out; the RTP timestamp advances by `frame_ticks` per packet."""

    codec: str
    rate: int
    clock_rate: int
    frame_samples: int
    frame_ticks: int

    def encode(self, samples: np.ndarray) -> bytes:
        raise NotImplementedError


class _G711Encoder(Encoder):
    def __init__(self, codec: str, ptime_ms: int) -> None:
        self.codec, self.rate, self.clock_rate = codec, 8000, 8000
        self.frame_samples = self.frame_ticks = 8 * ptime_ms

    def encode(self, samples: np.ndarray) -> bytes:
        return g711.encode(self.codec, samples)


class _FFmpegEncoder(Encoder):
    """G.722 (16 kHz audio on an 8000 Hz clock) and Opus (libopus, 48 kHz, RFC 7587) through PyAV."""

    def __init__(self, codec: str, name: str, rate: int, clock_rate: int, ptime_ms: int,
                 bit_rate: int = 0, options: dict | None = None) -> None:
        import av

        self._av = av
        ctx = av.CodecContext.create(name, "w")
        ctx.sample_rate, ctx.layout, ctx.format = rate, "mono", "s16"
        if bit_rate:
            ctx.bit_rate = bit_rate
        if options:
            ctx.options = options
        ctx.open()
        self._ctx, self._pts = ctx, 0
        self.codec, self.rate, self.clock_rate = codec, rate, clock_rate
        self.frame_samples = rate * ptime_ms // 1000
        self.frame_ticks = clock_rate * ptime_ms // 1000

    def encode(self, samples: np.ndarray) -> bytes:
        x = np.zeros(self.frame_samples, np.int16)
        s = np.asarray(samples, np.int16)[:self.frame_samples]
        x[:len(s)] = s
        frame = self._av.AudioFrame.from_ndarray(x[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts = self.rate, self._pts
        self._pts += self.frame_samples
        return b"".join(bytes(p) for p in self._ctx.encode(frame))


def encoder(name: str, ptime_ms: int = 20, fmtp: str = "", bit_rate: int = 0) -> Encoder:
    """An encoder for PCMU, PCMA, G722 or opus (RFC 7587: `useinbandfec=1` in fmtp turns Opus
    in-band FEC on; `maxaveragebitrate` caps its bit rate). Raises AudioError for others."""
    key = (name or "").strip().lower()
    if key in ("pcmu", "pcma"):
        return _G711Encoder(key.upper(), ptime_ms)
    if key == "g722":
        return _FFmpegEncoder("G722", "g722", 16000, 8000, ptime_ms)
    if key == "opus":
        params = _fmtp(fmtp)
        rate = bit_rate or int(params.get("maxaveragebitrate") or 0) or 32000
        options = {"application": "voip", "fec": "1" if params.get("useinbandfec") == "1" else "0"}
        return _FFmpegEncoder("opus", "libopus", 48000, 48000, ptime_ms, rate, options)
    raise AudioError(f"no encoder for {name}")


class Coder:
    """A codec as the agent's RTP session (agent/rtpsession.py) takes one: `name`, `clock_rate` (RTP
    timestamps), `rate` (audio samples per second; G.722: 16000 on an 8000 Hz clock), and per packet
    `frame_samples` of audio and `frame_ticks` of timestamp; `encode(pcm)` one frame to a payload;
    `decode(payload)` in arrival order through its own decoder; `decoder()` a fresh decoder (codecs
    with state need one per reader). Encoder and decoder are made on first use: the echo agent's
    sessions only read the clock. rtp/codecs.coder makes one from the registry."""

    __slots__ = ("name", "clock_rate", "rate", "frame_samples", "frame_ticks", "fmtp", "_make_enc", "_new",
                 "_enc", "_dec")

    def __init__(self, name: str, clock_rate: int, rate: int, ptime_ms: int, new_encoder: Callable[[], Encoder],
                 new_decoder: Callable[[], Decoder], fmtp: str = "") -> None:
        self.name, self.clock_rate, self.rate, self.fmtp = name, clock_rate, rate, fmtp
        self.frame_samples, self.frame_ticks = rate * ptime_ms // 1000, clock_rate * ptime_ms // 1000
        self._make_enc, self._new = new_encoder, new_decoder
        self._enc: Encoder | None = None
        self._dec: Decoder | None = None

    def encode(self, pcm) -> bytes:
        if self._enc is None:
            self._enc = self._make_enc()
        return self._enc.encode(pcm)

    def decode(self, payload: bytes) -> np.ndarray:
        if self._dec is None:
            self._dec = self._new()
        return self._dec.decode(payload)

    def decoder(self) -> Decoder:
        return self._new()


def resample(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """int16 mono samples from `rate` to `to` samples per second (FFmpeg's swresample through PyAV;
    numpy alone for the same rate). For prompts and test signals before they are encoded."""
    x = np.asarray(samples, np.int16)
    if rate == to or not len(x):
        return x.copy()
    import av

    r = av.AudioResampler(format="s16", layout="mono", rate=to)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, :]), format="s16", layout="mono")
    frame.sample_rate = rate
    out = [f.to_ndarray().reshape(-1) for f in r.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in r.resample(None)]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)
