"""One RTP stream's audio content: its payloads in as they arrive, its speech activity out
(rtp/speech.py). Sans-I/O; the analyser keeps one per audio stream while the stream lasts.

Payloads are placed by RTP timestamp, not by arrival (RFC 3550 5.1): each frame's time on the
capture clock is its media time plus the offset of the least-delayed packet around it (within
BLOCK_S; a timestamp that jumps against the arrival clock starts a new offset), so jitter does not
move speech and a sender's clock drift does not pile up (nothing is placed before the stream's first
packet arrived). Lost packets are silence for every codec
(no concealment is invented: a gap is heard as what arrived, and speech activity is never guessed
where nothing came); decoders with state (G.722, G.726, Opus, AMR, iLBC...) carry it across the gap.
Duplicates and packets later than REORDER packets are dropped. Comfort noise (RFC 3389, PT 13) and
the time until the next packet are digital silence. RFC 4733 events are not audio.

G.711 is never decoded to samples here: each 10 ms sub-frame's peak comes from the codes
themselves (mu-law and A-law codes order by magnitude once the sign bit is set, so one minimum per
sub-frame over bytes is the peak), its power from one packet in POWER_EVERY (by sequence number),
and full-scale samples are counted where a peak reaches full scale. `g711_summary` does this for a
whole batch of packets at once on the analyser's fast path (capture/batch.py); the per-packet path
feeds the same function in chunks, so both give the same figures.

`transform`, when given, is applied to every whole RTP packet of the stream before anything else
(one place for SRTP decryption, RFC 3711); a packet it returns None for is skipped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import g711, speech
from .audio import AudioError, Decoder, decoder
from .packet import parse_rtp

POWER_EVERY = 16  # G.711: the power of one packet in this many (sequence number multiple) is measured
SUBFRAME = 80  # G.711 bytes per 10 ms sub-frame
MAX_SUB = 4  # G.711 packets of 10 to 40 ms go the vectorised way; others are decoded
REORDER = 16  # packets held to put late ones back in order before a decoder with state
BLOCK_S = 10.0  # media seconds per playout offset
JUMP_S = 0.5  # a timestamp moving this far against arrival starts a new offset (as rtp/stats.py)
CN_FILL_S = 5.0  # at most this long after a comfort noise packet is filled with silence
PT_CN = (13, 19)
G711 = ("PCMU", "PCMA")

PayloadTransform = Callable[[bytes], "bytes | None"]

# Per packet, what g711_summary measured: sub-frame peak codes (0xFF pad), their powers (NaN when
# not measured), the count of sub-frames, and the count of full-scale samples.
SUMMARY_DTYPE = np.dtype([("codes", "u1", (MAX_SUB,)), ("power", "f4", (MAX_SUB,)), ("nsub", "u1"),
                          ("clipped", "i4")])


def _magnitudes(table: np.ndarray, flip: int) -> np.ndarray:
    """|x| for a transformed code t = (code ^ flip) | 0x80: t falls as the magnitude grows."""
    mag = np.zeros(256, np.float32)
    codes = np.arange(256)
    mag[(codes ^ flip) | 0x80] = np.abs(table.astype(np.int32))
    return mag


_FLIP = {"PCMU": 0x00, "PCMA": 0x2A}  # A-law's even bits are inverted on the wire (G.711 table 1a)
_MAG = {"PCMU": _magnitudes(g711.ULAW_DECODE, 0x00), "PCMA": _magnitudes(g711.ALAW_DECODE, 0x2A)}
_POWER = {"PCMU": g711.ULAW_DECODE.astype(np.float32) ** 2, "PCMA": g711.ALAW_DECODE.astype(np.float32) ** 2}
_FULL = 0x80  # the transformed code of a full-scale sample


def g711_summary(rows: np.ndarray, law: str, seq: np.ndarray) -> np.ndarray:
    """SUMMARY_DTYPE for packets of one G.711 law and one payload length (rows: (k, length) uint8,
    length a multiple of SUBFRAME up to MAX_SUB of them; modified in place)."""
    k, length = rows.shape
    nsub = length // SUBFRAME
    out = np.zeros(k, SUMMARY_DTYPE)
    out["codes"] = 0xFF
    out["power"] = np.nan
    out["nsub"] = nsub
    measured = np.flatnonzero(seq % POWER_EVERY == 0)
    if len(measured):
        out["power"][measured, :nsub] = _POWER[law][rows[measured]].reshape(-1, nsub, SUBFRAME).mean(axis=2)
    words = rows.view(np.uint64)  # eight codes at a time
    if _FLIP[law]:
        words ^= np.uint64(0x2A2A2A2A2A2A2A2A)
    words |= np.uint64(0x8080808080808080)
    codes = rows.reshape(k * nsub, SUBFRAME).min(axis=1).reshape(k, nsub)
    out["codes"][:, :nsub] = codes
    loud = np.flatnonzero(codes.min(axis=1) == _FULL)
    if len(loud):
        out["clipped"][loud] = np.count_nonzero(rows[loud] == _FULL, axis=1)
    return out


def fits_g711_path(length: int) -> bool:
    return length % SUBFRAME == 0 and 0 < length <= MAX_SUB * SUBFRAME


@dataclass(slots=True)
class Result:
    """A stream's content: its speech activity, or why it could not be decoded."""

    codec: str  # the codec decoded ("" when none was)
    activity: speech.Activity | None
    error: str = ""  # why the content could not be analysed
    packets: int = 0  # audio packets used
    dropped: int = 0  # duplicates, and packets too late to put back in order
    comfort_noise: int = 0  # RFC 3389 packets


class StreamAudio:
    """Accumulates one stream. `codecs`: payload type -> (encoding name, clock rate) as the SDP said
    (static types filled from RFC 3551), `fmtp` and `channels` by payload type. `keep` keeps the
    decoded samples for `siptool audio` (then G.711 is decoded too)."""

    def __init__(self, codecs: dict[int, tuple[str, int]], fmtp: dict[int, str] | None = None,
                 channels: dict[int, int] | None = None, vad: speech.Vad = speech.Vad(),
                 transform: PayloadTransform | None = None, keep: bool = False) -> None:
        self.codecs = {pt: (str(name), int(rate or 0)) for pt, (name, rate) in codecs.items()}
        self.fmtp, self.channels = fmtp or {}, channels or {}
        self.vad, self.transform, self.keep = vad, transform, keep
        self._bulk: list[tuple[str, np.ndarray, np.ndarray]] = []  # (law, records, summaries)
        self._pending: list[tuple[float, int, int, int, bytes]] = []  # G.711 packets awaiting g711_summary
        self._frames: list[speech.Frames] = []  # decoded codecs, media time in .start
        self._delays: list[np.ndarray] = []  # each of those frames' packet arrival - packet media time
        self._cn: list[tuple[int, float]] = []  # (RTP timestamp, arrival) of comfort noise packets
        self._decoders: dict[int, Decoder | None] = {}
        self._heap: list = []  # (extended seq, arrival, timestamp, pt, payload) held back for reordering
        self._last_seq: int | None = None
        self._ext_seq = 0
        self._decoded_seq: int | None = None
        self._ts0: int | None = None  # the first packet's timestamp: media time 0
        self._clock = 0  # the audio's RTP clock (the first audio payload type's)
        self.kept: list[tuple[float, int, np.ndarray]] = []  # keep: (media time, rate, samples)
        self.codec = ""
        self.error = ""
        self.packets = self.dropped = 0

    # --- input -----------------------------------------------------------------------------

    def rtp(self, time: float, packet: bytes) -> None:
        """A whole RTP packet (the transform, if any, is applied first)."""
        if self.transform is not None:
            packet = self.transform(packet)
            if packet is None:
                return
        h = parse_rtp(packet)
        if h is None:
            return
        end = h.payload_offset + h.payload_length
        self.packet(time, h.sequence, h.timestamp, h.payload_type, packet[h.payload_offset:end])

    def packet(self, time: float, seq: int, ts: int, pt: int, payload: bytes) -> None:
        """One packet's payload (after its header and padding)."""
        if self._ts0 is None:
            self._ts0 = ts
        if pt in PT_CN or self.codecs.get(pt, ("",))[0].upper() == "CN":
            self._cn.append((ts, time))
            return
        name = self._name(pt)
        if name is None:
            return
        if name in G711 and not self.keep and fits_g711_path(len(payload)):
            self._pending.append((time, seq, ts, pt, payload))
            if len(self._pending) >= 256:
                self._flush_g711()
            return
        ext_seq = self._extend(seq)
        heapq.heappush(self._heap, (ext_seq, time, ts, pt, payload))
        if len(self._heap) > REORDER:
            self._decode(*heapq.heappop(self._heap))

    def extend_g711(self, records: np.ndarray, summaries: np.ndarray) -> None:
        """The fast path's G.711 packets of one payload type (stats.RECORD_DTYPE records and
        their g711_summary)."""
        if len(records):
            law = self._name(int(records["pt"][0]))
            if law in G711:
                if self._ts0 is None:
                    self._ts0 = int(records["ts"][0])
                self._bulk.append((law, records[["time", "seq", "ts", "pt"]], summaries))

    def _name(self, pt: int) -> str | None:
        """The payload type's audio codec name, upper-cased for G.711; None for events and unknowns."""
        name, rate = self.codecs.get(pt, ("", 0))
        if not name or name.lower() in ("telephone-event", "tone"):
            return None
        self._clock = self._clock or rate
        return name.upper() if name.upper() in G711 else name

    def _media(self, ts):
        """Media seconds since the first packet (timestamps within 2^31 ticks of it)."""
        rel = (np.asarray(ts, np.int64) - self._ts0 + 0x80000000) % 0x100000000 - 0x80000000
        return rel / (self._clock or 8000)

    def _flush_g711(self) -> None:
        pending, self._pending = self._pending, []
        groups: dict[tuple[str, int], list] = {}
        for p in pending:
            groups.setdefault((self._name(p[3]), len(p[4])), []).append(p)
        for (law, length), group in groups.items():
            rec = np.zeros(len(group), [("time", "f8"), ("seq", "u2"), ("ts", "u4"), ("pt", "u1")])
            for name, col in zip(("time", "seq", "ts", "pt"), zip(*[p[:4] for p in group])):
                rec[name] = col
            rows = np.frombuffer(b"".join(p[4] for p in group), np.uint8).reshape(len(group), length).copy()
            self._bulk.append((law, rec, g711_summary(rows, law, rec["seq"])))

    # --- codecs with state: in sequence order ----------------------------------------------

    def _extend(self, seq: int) -> int:
        """The sequence number extended across wraps (RFC 3550 A.1), from the latest packet's."""
        if self._last_seq is None:
            self._ext_seq = seq
        else:
            self._ext_seq += (seq - self._last_seq + 0x8000) % 0x10000 - 0x8000
        self._last_seq = seq
        return self._ext_seq

    def _decode(self, ext_seq: int, time: float, ts: int, pt: int, payload: bytes) -> None:
        if self._decoded_seq is not None and ext_seq <= self._decoded_seq:
            self.dropped += 1  # a duplicate, or later than the reorder window
            return
        self._decoded_seq = ext_seq
        if pt not in self._decoders:
            name, clock = self._name(pt), self.codecs[pt][1]
            try:
                self._decoders[pt] = decoder(name, clock, self.channels.get(pt, 1), self.fmtp.get(pt, ""))
                self.codec = self.codec or self._decoders[pt].codec
            except AudioError as exc:
                self._decoders[pt], self.error = None, str(exc)
        dec = self._decoders[pt]
        if dec is None:
            return
        samples = dec.decode(payload)
        self.packets += 1
        start = float(self._media(ts))
        if self.keep:
            self.kept.append((start, dec.rate, samples))
        f = speech.frames_of(samples, dec.rate, start)
        self._frames.append(f)
        self._delays.append(np.full(len(f.start), time - start))

    # --- output ----------------------------------------------------------------------------

    def finish(self) -> Result:
        """Speech activity over everything fed (call once)."""
        self._flush_g711()
        while self._heap:
            self._decode(*heapq.heappop(self._heap))
        parts, delays = list(self._frames), list(self._delays)
        if self._bulk:
            f, delay, used, dropped = self._g711_frames()
            parts.append(f)
            delays.append(delay)
            self.packets += used
            self.dropped += dropped
            self.codec = self.codec or self._bulk[0][0]
        if self._cn:
            parts, delays = self._with_comfort_noise(parts, delays)
        if not parts:
            return Result(self.codec, None, self.error or "no audio packets", 0, self.dropped)
        frames = speech.concat(parts)
        delay = np.concatenate(delays)
        # No sound before the stream's first packet arrived (a delayed first packet would place it so).
        frames.start = np.maximum(_playout(frames.start, delay), (frames.start + delay).min())
        return Result(self.codec or "CN", speech.activity(frames, self.vad), self.error, self.packets,
                      self.dropped, len(self._cn))

    def _g711_frames(self) -> tuple[speech.Frames, np.ndarray, int, int]:
        """Frames of the G.711 packets in timestamp order, duplicates out (the first one counts)."""
        rec = np.concatenate([r for _, r, _ in self._bulk])
        summ = np.concatenate([s for _, _, s in self._bulk])
        alaw = np.concatenate([np.full(len(r), law == "PCMA") for law, r, _ in self._bulk])
        media = self._media(rec["ts"])
        order = np.lexsort((np.arange(len(media)), media))
        keep = order[np.r_[True, media[order][1:] != media[order][:-1]]]
        rec, summ, alaw, media = rec[keep], summ[keep], alaw[keep], media[keep]
        nsub = summ["nsub"].astype(np.int64)
        packet = np.repeat(np.arange(len(rec)), nsub)
        sub = np.arange(len(packet)) - np.repeat(np.cumsum(nsub) - nsub, nsub)
        codes = summ["codes"][packet, sub]
        peak = np.where(alaw[packet], _MAG["PCMA"][codes], _MAG["PCMU"][codes])
        f = speech.Frames(start=media[packet] + sub * 0.01, length=np.full(len(packet), 0.01), peak=peak,
                          power=summ["power"][packet, sub], clipped=np.where(sub == 0, summ["clipped"][packet], 0),
                          samples=np.full(len(packet), SUBFRAME, np.int32))
        return f, (rec["time"] - media)[packet], len(rec), len(order) - len(keep)

    def _with_comfort_noise(self, parts: list, delays: list) -> tuple[list, list]:
        """Digital-silence frames from each comfort noise packet up to the next packet (at most
        CN_FILL_S): the sender said "silence" until then (RFC 3389)."""
        cn = self._media(np.array([t for t, _ in self._cn]))
        marks = np.unique(np.concatenate([cn] + [p.start for p in parts]))
        out, times = list(parts), list(delays)
        for t, (_, when) in zip(cn.tolist(), self._cn):
            i = np.searchsorted(marks, t, side="right")
            stop = min(float(marks[i]) if i < len(marks) else t + 0.02, t + CN_FILL_S)
            n = max(int(round((stop - t) / 0.01)), 1)
            out.append(speech.Frames(start=t + np.arange(n) * 0.01, length=np.full(n, 0.01),
                                     peak=np.zeros(n, np.float32), power=np.zeros(n, np.float32),
                                     clipped=np.zeros(n, np.int32), samples=np.full(n, SUBFRAME, np.int32)))
            times.append(np.full(n, when - t))
        return out, times


def _playout(media: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """Media times (s) to capture times. `delay`: each frame's packet arrival minus that packet's
    media time. In each block of BLOCK_S media seconds, and after any jump of the timestamp against
    arrival, the least-delayed packet's offset is every frame's."""
    if not len(media):
        return media
    order = np.argsort(media, kind="stable")
    m, d = media[order], delay[order]
    jump = np.r_[False, np.abs(np.diff(d)) > JUMP_S]
    block = np.cumsum(jump) * 1_000_000 + np.floor((m - m[0]) / BLOCK_S).astype(np.int64)
    heads = np.r_[0, np.flatnonzero(np.diff(block)) + 1]
    offset = np.minimum.reduceat(d, heads)
    out = np.empty_like(media)
    out[order] = m + np.repeat(offset, np.diff(np.r_[heads, len(m)]))
    return out
