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

G.711 is never decoded to samples here: a packet is one frame, its peak read from the codes
themselves (mu-law and A-law codes order by magnitude once the sign bit is set, so one minimum over
bytes is the peak), with the peaks of its first and last 10 ms so that talk spurt edges are found
to 10 ms; its power is measured in one packet in POWER_EVERY (by sequence number), and full-scale
samples are counted where a peak reaches full scale. `g711_summary` does this for a whole batch of
packets at once on the analyser's fast path (while the next batch is read: analysis/content.py); the
per-packet path feeds the same function in chunks, so both give the same figures.

`transform`, when given, is applied to every whole RTP packet of the stream before anything else
(one place for SRTP decryption, RFC 3711); a packet it returns None for is skipped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import g711, speech
from .audio import AudioError, Decoder
from .codecs import decoder
from .packet import parse_rtp

POWER_EVERY = 8  # G.711: the power of one packet in this many (sequence number multiple) is measured
SUBFRAME = 80  # G.711 bytes per 10 ms sub-frame
MAX_SUB = 4  # G.711 packets of 10 to 40 ms go the vectorised way; others are decoded
REORDER = 16  # packets held to put late ones back in order before a decoder with state
BLOCK_S = 10.0  # media seconds per playout offset
JUMP_S = 0.5  # a timestamp moving this far against arrival starts a new offset (as rtp/stats.py)
CN_FILL_S = 5.0  # at most this long after a comfort noise packet is filled with silence
PT_CN = (13, 19)
G711 = ("PCMU", "PCMA")

PayloadTransform = Callable[[bytes], "bytes | None"]

# Per G.711 packet, what the content layer keeps: arrival, timestamp, payload type, and what
# g711_summary measured: its 10 ms sub-frames (0: not a packet of this path), the peak codes of the
# whole packet, of its first and of its last sub-frame, its full-scale samples and its power (NaN when
# not measured). Held as bytes per stream, read through this dtype at the end.
SUMMARY_DTYPE = np.dtype([("time", "f8"), ("ts", "u4"), ("pt", "u1"), ("nsub", "u1"), ("peak", "u1"), ("head", "u1"),
                          ("tail", "u1"), ("pad", "u1"), ("clipped", "u2"), ("power", "f4")])


def pack(time, ts, pt, nsub, peak, head, tail, clipped, power) -> np.ndarray:
    """SUMMARY_DTYPE records from its columns."""
    out = np.empty(len(time), SUMMARY_DTYPE)
    for name, values in (("time", time), ("ts", ts), ("pt", pt), ("nsub", nsub), ("peak", peak), ("head", head),
                         ("tail", tail), ("pad", 0), ("clipped", clipped), ("power", power)):
        out[name] = values
    return out


def records(rows) -> np.ndarray:
    """Summary bytes (`pack` records joined) seen as SUMMARY_DTYPE records."""
    return np.frombuffer(rows, SUMMARY_DTYPE)


def _magnitudes(table: np.ndarray, flip: int) -> np.ndarray:
    """|x| for a transformed code t = (code ^ flip) | 0x80: t falls as the magnitude grows."""
    mag = np.zeros(256, np.float32)
    codes = np.arange(256)
    mag[(codes ^ flip) | 0x80] = np.abs(table.astype(np.int32))
    return mag


_FLIP = {"PCMU": 0x00, "PCMA": 0x2A}  # A-law's even bits are inverted on the wire (G.711 table 1a)
_MAG = {"PCMU": _magnitudes(g711.ULAW_DECODE, 0x00), "PCMA": _magnitudes(g711.ALAW_DECODE, 0x2A)}
def _pair_power(table: np.ndarray) -> np.ndarray:
    """x^2 + y^2 for every pair of codes, indexed by the two bytes read as one uint16 (native order):
    half the lookups of a per-byte table."""
    sq = table.astype(np.float32) ** 2
    pairs = np.arange(65536, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    return sq[pairs[:, 0]] + sq[pairs[:, 1]]


_POWER = {"PCMU": _pair_power(g711.ULAW_DECODE), "PCMA": _pair_power(g711.ALAW_DECODE)}
_FULL = 0x80  # the transformed code of a full-scale sample


def g711_summary(rows: np.ndarray, law: str, seq: np.ndarray) -> tuple[np.ndarray, ...]:
    """Packets of one G.711 law and one payload length (rows: (k, length) uint8, length a multiple
    of SUBFRAME up to MAX_SUB of them; modified in place): peak codes of each packet, of its first
    and of its last sub-frame, its full-scale samples (at most 65535) and its power (NaN where not
    measured)."""
    k, length = rows.shape
    nsub = length // SUBFRAME
    power = np.full(k, np.nan, np.float32)
    measured = np.flatnonzero(seq % POWER_EVERY == 0)
    if len(measured):
        power[measured] = np.take(_POWER[law], rows[measured].view(np.uint16)).sum(axis=1) / length  # (take: faster than [])
    words = rows.view(np.uint64)  # eight codes at a time
    if _FLIP[law]:
        words ^= np.uint64(0x2A2A2A2A2A2A2A2A)
    words |= np.uint64(0x8080808080808080)
    # (initial: numpy then skips seeding each row from its first byte, a third faster on 80-byte rows)
    codes = np.minimum.reduce(rows.reshape(k * nsub, SUBFRAME), axis=1, initial=255).reshape(k, nsub)
    peak = codes[:, 0]
    for i in range(1, nsub):
        peak = np.minimum(peak, codes[:, i])
    clipped = np.zeros(k, np.uint16)
    loud = np.flatnonzero(peak == _FULL)
    if len(loud):
        clipped[loud] = np.minimum(np.count_nonzero(rows[loud] == _FULL, axis=1), 65535)
    return peak, codes[:, 0], codes[:, nsub - 1], clipped, power


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
    audio: list = field(default_factory=list)  # keep: (capture time, rate, samples) per packet decoded


class StreamAudio:
    """Accumulates one stream. `codecs`: payload type -> (encoding name, clock rate) as the SDP said
    (static types filled from RFC 3551), `fmtp` and `channels` by payload type. `keep` keeps the
    decoded samples for `siptool audio` (then G.711 is decoded too)."""

    def __init__(self, codecs: dict[int, tuple[str, int]], fmtp: dict[int, str] | None = None,
                 channels: dict[int, int] | None = None, vad: speech.Vad = speech.Vad(),
                 transform: PayloadTransform | None = None, keep: bool = False) -> None:
        self.codecs = codecs  # payload type -> (name, clock rate)
        self.fmtp, self.channels = fmtp or {}, channels or {}
        self.vad, self.transform, self.keep = vad, transform, keep
        self._bulk: list[bytes] = []  # G.711 packets, SUMMARY_DTYPE records
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

    def extend_g711(self, rows: np.ndarray) -> None:
        """The fast path's G.711 packets (SUMMARY_DTYPE records with nsub > 0): kept as bytes until
        finish."""
        if len(rows):
            self._bulk.append(rows.tobytes())  # a copy: a view would keep the whole batch alive
            if self._ts0 is None:
                self._ts0 = int(rows["ts"][0])
                self._name(int(rows["pt"][0]))

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
            time, seq, ts, pt, _ = zip(*group)
            rows = np.frombuffer(b"".join(p[4] for p in group), np.uint8).reshape(len(group), length).copy()
            summary = g711_summary(rows, law, np.array(seq))
            self._bulk.append(pack(time, ts, pt, np.full(len(group), length // SUBFRAME), *summary).tobytes())

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
        """Speech activity over everything fed (call once; finish_many does several at once)."""
        return finish_many([self])[0]

    def held(self) -> int:
        """Packets held (roughly: what finishing this stream costs)."""
        return sum(len(b) for b in self._bulk) // SUMMARY_DTYPE.itemsize + len(self._pending) + len(self._frames)

    def _drain(self) -> None:
        """Everything still held back: G.711 packets not yet summarised, packets in the reorder window."""
        self._flush_g711()
        while self._heap:
            self._decode(*heapq.heappop(self._heap))

    def _comfort_noise(self, marks: np.ndarray) -> tuple[speech.Frames, np.ndarray]:
        """Digital-silence frames from each comfort noise packet up to the next packet (`marks`: the
        stream's frame starts), at most CN_FILL_S: the sender said "silence" until then (RFC 3389).
        Returns the frames and their delays (arrival minus media time)."""
        cn = self._media(np.array([t for t, _ in self._cn]))
        marks = np.unique(np.concatenate([cn, marks]))
        parts, delays = [], []
        for t, (_, when) in zip(cn.tolist(), self._cn):
            i = np.searchsorted(marks, t, side="right")
            stop = min(float(marks[i]) if i < len(marks) else t + 0.02, t + CN_FILL_S)
            n = max(int(round((stop - t) / 0.01)), 1)
            parts.append(speech.Frames(start=t + np.arange(n) * 0.01, length=np.full(n, 0.01),
                                       peak=np.zeros(n, np.float32), power=np.zeros(n, np.float32),
                                       clipped=np.zeros(n, np.int32), samples=np.full(n, SUBFRAME, np.int32)))
            delays.append(np.full(n, when - t))
        return speech.concat(parts), np.concatenate(delays)


GROUP_PACKETS = 1 << 15  # streams finished together hold about this many packets (bounds the arrays)


def finish_many(audios: list[StreamAudio]) -> list[Result]:
    """`StreamAudio.finish` for many streams at once: their G.711 packets become frames, are placed on
    the capture clock and run through speech activity together (rtp/speech.activities), so closing
    the hundreds of streams of a trunk costs about what closing one does. Streams are taken in
    groups of about GROUP_PACKETS packets, so memory stays that of one group."""
    out: list[Result] = []
    group: list[StreamAudio] = []
    size = 0
    for a in audios:
        n = a.held()
        if group and size + n > GROUP_PACKETS:
            out += _finish_group(group)
            group, size = [], 0
        group.append(a)
        size += n
    return out + (_finish_group(group) if group else [])


def _finish_group(audios: list[StreamAudio]) -> list[Result]:
    k = len(audios)
    for a in audios:
        a._drain()
    frames, delay, seg, used, dupes = _g711_frames(audios)
    parts, delays, segs = [frames], [delay], [seg]
    for g, a in enumerate(audios):
        if a._frames:
            f = speech.concat(a._frames)
            parts.append(f)
            delays.append(np.concatenate(a._delays))
            segs.append(np.full(len(f.start), g, np.int64))
        if a._cn:
            marks = np.concatenate([p.start[s == g] for p, s in zip(parts, segs)])
            f, d = a._comfort_noise(marks)
            parts.append(f)
            delays.append(d)
            segs.append(np.full(len(f.start), g, np.int64))
    if len(parts) > 1:  # the G.711 frames alone are in (stream, time) order already
        frames, delay, seg = speech.concat(parts), np.concatenate(delays), np.concatenate(segs)
        order = np.lexsort((frames.start, seg))
        frames = speech.Frames(*(getattr(frames, name)[order] for name in speech.Frames.__slots__))
        delay, seg = delay[order], seg[order]
    media = frames.start
    heads = _heads(seg)
    frames.start = _playout(media, delay, heads)
    found = speech.activities(frames, seg, k, audios[0].vad, heads) if k else []
    kept = [_placed(a, media[seg == g], frames.start[seg == g]) if a.kept else [] for g, a in enumerate(audios)]
    has = np.zeros(k, bool)
    has[seg[heads]] = True
    out = []
    for g, a in enumerate(audios):
        codec = a.codec or ("PCMA" if a._bulk and records(a._bulk[0])["pt"][0] == 8 else "PCMU" if a._bulk
                            else "CN" if a._cn else "")
        packets, dropped = a.packets + used[g], a.dropped + dupes[g]
        if has[g]:
            out.append(Result(codec, found[g], a.error, packets, dropped, len(a._cn), kept[g]))
        else:
            out.append(Result(codec, None, a.error or "no audio packets", packets, dropped, len(a._cn)))
    return out


def _heads(seg: np.ndarray) -> np.ndarray:
    """Where each stream's frames begin (seg sorted)."""
    if not len(seg):
        return np.zeros(0, np.int64)
    change = np.empty(len(seg), bool)
    change[0] = True
    np.not_equal(seg[1:], seg[:-1], out=change[1:])
    return np.flatnonzero(change)


def _placed(a: StreamAudio, media: np.ndarray, placed: np.ndarray) -> list[tuple[float, int, np.ndarray]]:
    """A kept stream's decoded packets on the capture clock: each where its first frame was placed."""
    order = np.argsort(media, kind="stable")
    media, placed = media[order], placed[order]
    out = []
    for start, rate, samples in a.kept:
        i = min(int(np.searchsorted(media, start)), len(media) - 1)
        out.append((float(placed[i] + start - media[i]), rate, samples))
    return out


def _g711_frames(audios: list[StreamAudio]):
    """Frames of every stream's G.711 packets in (stream, timestamp) order, duplicates out (the first
    one counts): (frames, their delays, their stream, packets used and duplicates per stream)."""
    k = len(audios)
    counts = [sum(len(b) for b in a._bulk) // SUMMARY_DTYPE.itemsize for a in audios]
    used, dupes = counts, [0] * k
    if not any(counts):
        return speech.Frames(), np.zeros(0), np.zeros(0, np.int64), used, dupes
    pk = records(b"".join([b for a in audios for b in a._bulk]))
    seg = np.repeat(np.arange(k), counts)
    ts0 = np.array([a._ts0 or 0 for a in audios], np.int64).astype(np.uint32)
    rel = (pk["ts"] - ts0[seg]).view(np.int32)  # timestamps within 2^31 ticks of the first (mod 2^32)
    media = rel / 8000.0  # G.711's clock (RFC 3551 4.5.14)
    if len(rel) > 1 and not ((rel[1:] > rel[:-1]) | (seg[1:] != seg[:-1])).all():  # reordered or duplicated
        order = np.lexsort((np.arange(len(media)), media, seg))
        seg, media = seg[order], media[order]
        keep = np.concatenate(([True], (media[1:] != media[:-1]) | (seg[1:] != seg[:-1])))
        pk, seg, media = pk[order][keep], seg[keep], media[keep]
        used = np.bincount(seg, minlength=k).tolist()
        dupes = [c - u for c, u in zip(counts, used)]
    alaw = pk["pt"] == 8
    if alaw.all() or not alaw.any():
        mag = _MAG["PCMA" if len(alaw) and alaw[0] else "PCMU"]
        peak, head, tail = mag[pk["peak"]], mag[pk["head"]], mag[pk["tail"]]
    else:
        peak, head, tail = (np.where(alaw, _MAG["PCMA"][pk[x]], _MAG["PCMU"][pk[x]]) for x in ("peak", "head", "tail"))
    nsub = pk["nsub"]
    f = speech.Frames(start=media, length=nsub * 0.01, peak=peak, power=pk["power"],
                      clipped=pk["clipped"].astype(np.int32), samples=nsub.astype(np.int32) * SUBFRAME,
                      head=head, tail=tail)
    return f, pk["time"] - media, seg, used, dupes


def _playout(media: np.ndarray, delay: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Media times (s; sorted within each stream, the streams starting at `heads`) to capture times.
    `delay`: each frame's packet arrival minus that packet's media time. Per stream, in each block
    of BLOCK_S media seconds and after any jump of the timestamp against arrival, the least-delayed
    packet's offset is every frame's; and nothing before the stream's first packet arrived."""
    n = len(media)
    if not n:
        return media
    sizes = np.diff(np.append(heads, n))
    block = np.floor((media - np.repeat(media[heads], sizes)) / BLOCK_S).astype(np.int64)
    jump = np.abs(np.diff(delay)) > JUMP_S
    jump[heads[1:] - 1] = False
    if jump.any():
        block[1:] += np.cumsum(jump) * 1_000_000
    change = np.empty(n, bool)
    change[0] = True
    np.not_equal(block[1:], block[:-1], out=change[1:])
    change[heads] = True
    starts = np.flatnonzero(change)
    placed = media + np.repeat(np.minimum.reduceat(delay, starts), np.diff(np.append(starts, n)))
    arrived = np.minimum.reduceat(media + delay, heads)  # each stream's first packet
    return np.maximum(placed, np.repeat(arrived, sizes), out=placed)
