"""Content analysis in the analyser: which streams are decoded, how the fast path hands their
payloads over, and the stream's content as the report shows it. The media tracker (media.py) calls
these at four points: a stream starts (`stream_audio`), a batch arrives (`batch_summaries`, then
`feed_bulk` per stream slice), a packet arrives on the per-packet path (StreamAudio.rtp), a stream
ends (`stream_content`). The decoding and speech activity themselves are rtp/content.py and
rtp/speech.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..capture.batch import _gather, take
from ..report.model import Interval, StreamContent
from ..rtp import codecs as registry
from ..rtp.content import MAX_SUB, SUBFRAME, SUMMARY_DTYPE, PayloadTransform, Result, StreamAudio, finish_many, g711_summary
from ..rtp.speech import Vad

# Static audio payload types a stream may carry without an rtpmap (RFC 3551 table 4).
STATIC_AUDIO = {pt: (c.name, c.clock_rate) for pt, c in registry.STATIC.items()
                if c.named and c.media == "audio"}


@dataclass(frozen=True, slots=True)
class ContentOptions:
    """Content analysis settings. `transform(src, dst, ssrc)` may return a function applied to each
    whole RTP packet of that stream before decoding (where SRTP decryption plugs in), or None.
    `keep`: Call-IDs whose streams' decoded samples go into `audio` as each stream ends, keyed
    (src, dst, ssrc): [(capture time, rate, samples), ...] (siptool audio)."""

    vad: Vad = Vad()
    transform: Callable[[str, str, int], PayloadTransform | None] | None = None
    keep: frozenset[str] = frozenset()
    audio: dict | None = None


def stream_audio(options: ContentOptions, codecs: dict, fmtp: dict, channels: dict, pt: int,
                 src: str, dst: str, ssrc: int, call_id: str | None = None) -> StreamAudio | None:
    """The accumulator for a new stream, or None when its first payload type is not audio (comfort
    noise is: a sender with silence suppression may start with it)."""
    known = {**STATIC_AUDIO, **{p: (name, rate) for p, (name, rate) in codecs.items()}}
    name, rate = known.get(pt, ("", 0))
    if registry.media_kind(name, rate) != "audio":
        return None
    transform = options.transform(src, dst, ssrc) if options.transform is not None else None
    return StreamAudio(known, fmtp, channels, options.vad, transform, keep=call_id in options.keep)


def batch_summaries(rtp, buf: np.ndarray) -> np.ndarray:
    """For a batch's RTP candidates (capture/batch.RtpBatch, in capture order), SUMMARY_DTYPE
    records: the g711_summary of each plain G.711 packet (PT 0 or 8, no CSRC, extension or padding,
    10-40 ms), nsub 0 for the others. One gather per law and payload length."""
    sel = rtp.index
    n = len(sel)
    hdr = take(rtp.header, sel)
    pt, b0 = hdr["b1"] & 0x7F, hdr["b0"]
    size = rtp.length[sel] - 12
    out = np.zeros(n, SUMMARY_DTYPE)
    out["time"], out["ts"], out["pt"], out["power"] = rtp.time[sel], hdr["ts"], pt, np.nan
    nsub, rest = np.divmod(size, SUBFRAME)
    plain = (b0 == 0x80) & ((pt == 0) | (pt == 8)) & (rest == 0) & (nsub > 0) & (nsub <= MAX_SUB)
    for law_pt, law in ((0, "PCMU"), (8, "PCMA")):
        mine = plain & (pt == law_pt)
        if not mine.any():
            continue
        for count in np.flatnonzero(np.bincount(nsub[mine])).tolist():  # (no np.unique: a sort per batch)
            length = count * SUBFRAME
            at = np.flatnonzero(mine & (nsub == count))
            rows = _gather(buf, rtp.payload[sel[at]] + 12, np.dtype(f"V{length}")).view(np.uint8).reshape(len(at), length)
            summary = zip(("nsub", "peak", "head", "tail", "clipped", "power"),
                          (count, *g711_summary(rows, law, hdr["seq"][at])))
            if len(at) == n:  # every record (the usual batch of a G.711 trunk)
                for name, values in summary:
                    out[name] = values
            else:
                for name, values in summary:
                    out[name][at] = values
    return out


def summarised(batches):
    """The batches (capture/batch.iter_batches), each with `g711`: batch_summaries of its RTP. Meant
    to run where the batches are read ahead (session._prefetched's thread): numpy releases the GIL
    for the gather and the reductions, so a second core does this work while the first analyses."""
    for batch in batches:
        batch.g711 = batch_summaries(batch.rtp, batch.buf)
        yield batch


def feed_bulk(audio: StreamAudio, rec: np.ndarray, rows: np.ndarray, payload: np.ndarray, buf) -> None:
    """One stream's slice of a batch with packets the G.711 path did not take: those one by one."""
    done = rows["nsub"] > 0 if not audio.keep else np.zeros(len(rows), bool)
    if done.any():
        audio.extend_g711(rows[done])
    for i in np.flatnonzero(~done).tolist():
        start = int(payload[i])
        audio.rtp(float(rec["time"][i]), bytes(buf[start:start + int(rec["size"][i])]))


def others_per_flow(rows: np.ndarray, flows: list) -> list[int]:
    """Per flow of a FlowBatch, its records that are not plain G.711 (RTCP and unusable ones too)."""
    starts = np.array([f[0] for f in flows], np.int64)
    return np.add.reduceat((rows["nsub"] == 0).astype(np.int64), starts).tolist()


__all__ = ["finish_many"]  # media.py closes streams' content through it


def keep_audio(options: ContentOptions, result: Result, src: str, dst: str, ssrc: int) -> None:
    """A kept stream's samples into options.audio (siptool audio)."""
    if result.audio and options.audio is not None:
        options.audio.setdefault((src, dst, ssrc), []).extend(result.audio)


def stream_content(result: Result) -> StreamContent:
    """The report's view of what rtp/content.py found."""
    a = result.activity
    if a is None:
        return StreamContent(codec=result.codec, decoded=False, error=result.error, dropped=result.dropped)
    return StreamContent(
        codec=result.codec, decoded=True, error=result.error, packets=result.packets, dropped=result.dropped,
        comfort_noise=result.comfort_noise, audio_s=round(a.audio_s, 3), speech_s=round(a.speech_s, 3),
        talk_spurts=[Interval(s, e) for s, e in a.spurts],
        level_dbov=_db(a.level_dbov), peak_dbfs=_db(a.peak_dbfs), noise_dbov=_db(a.noise_dbov),
        clipped_pct=round(a.clipped_pct, 3), silent=a.silent,
        digital_silence=[Interval(s, e) for s, e in a.silences],
        speech_threshold_dbfs=_db(a.threshold_dbfs))


def _db(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(value, 1)

