"""Per-stream RTP metrics: loss, sequence errors, deltas, interarrival jitter (RFC 3550 6.4.1, A.1, A.3).

`StreamStats.add` is the hot path: one struct.pack appended to a bytearray (amortised growth, no
per-packet Python objects kept). `finish` turns the records into numpy arrays and computes everything
vectorised, reproducing `tshark -z rtp,streams` (Wireshark 4.0, ui/tap-rtp-analysis.c
rtppacket_analyse + ui/tap-rtp-common.c rtpstream_info_calculate). Where Wireshark departs from the
RFC the code says so ("tshark:"); RFC values are kept alongside where they differ.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from . import codecs

_REC = struct.Struct("<qdIHBBI")
_DTYPE = np.dtype([("frame", "<i8"), ("time", "<f8"), ("ts", "<u4"), ("seq", "<u2"), ("pt", "u1"),
                   ("marker", "u1"), ("size", "<u4")])
assert _DTYPE.itemsize == _REC.size
RECORD_DTYPE = _DTYPE  # one packet's record: what `add` packs and `extend` takes in bulk

PT_CN, PT_CN_OLD = 13, 19
JITTER_BUFFER_MS = 60.0  # static jitter buffer used for effective loss (see mos.jitter_buffer_loss)

# RTP clock rates of static payload types, reserved ones included, as Wireshark's clock_map has them
# (rtp/codecs.py). Types not listed: 0 (unknown).
STATIC_CLOCK_RATES = {pt: c.clock_rate for pt, c in codecs.STATIC.items()}


@dataclass
class StreamMetrics:
    """What `StreamStats.finish` measured. Times in seconds (capture clock), durations in ms."""

    packets: int = 0
    expected: int = 0  # tshark: last seq - first seq + 1 + 65536 * wraps
    lost: int = 0  # tshark: expected - packets (negative when duplicates outnumber losses)
    loss_pct: float = 0.0
    expected_rfc3550: int = 0  # RFC 3550 A.3: highest extended seq - first extended seq + 1
    lost_rfc3550: int = 0
    duplicates: int = 0
    out_of_order: int = 0  # late arrivals (sequence below one already seen), duplicates excluded
    sequence_errors: int = 0  # tshark's "Seq Errs": jumps, late and duplicate packets
    wrong_timestamps: int = 0  # packets whose RTP timestamp goes back (tshark's "Incorrect timestamp")
    timestamp_jumps: int = 0  # next-in-sequence packets whose timestamp moved > 0.5 s off the arrival clock
    timestamp_jump_frame: int = 0
    problem: bool = False  # tshark's "Problems?" column
    min_delta_ms: float = 0.0
    mean_delta_ms: float = 0.0
    max_delta_ms: float = 0.0
    max_delta_frame: int = 0
    min_jitter_ms: float = 0.0
    mean_jitter_ms: float = 0.0
    max_jitter_ms: float = 0.0
    last_jitter_ms: float = 0.0  # the RFC 3550 J at the end of the stream
    max_voice_jitter_ms: float = 0.0  # max jitter over voice packets only (RFC 4733 events left out)
    mean_bitrate_kbps: float = 0.0  # RTP packet bytes (header + payload) over the stream duration
    start: float = 0.0
    end: float = 0.0
    first_frame: int = 0
    last_frame: int = 0
    clock_rate: int = 0
    payload_types: dict[int, int] = field(default_factory=dict)
    late_packets: int = 0  # arrived after their playout time in a JITTER_BUFFER_MS static buffer
    effective_loss_pct: float = 0.0  # network loss plus jitter buffer discards (MOS input)
    jitter_buffer_ms: float = JITTER_BUFFER_MS
    # per-packet series for plots (arrival order)
    frames: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)
    times: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)  # s since stream start
    jitter_ms: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    delta_ms: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    sequence: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)  # extended

    @property
    def duration(self) -> float:
        return self.end - self.start


class StreamStats:
    """Accumulates one RTP stream (one SSRC in one direction).

    clock_rate: RTP clock of the stream's codec. rates: payload type -> clock rate, or -> (name, rate)
    as SDP rtpmap gives them; a name "telephone-event" (RFC 4733) or a rate 0 keeps those packets out of
    jitter, as their timestamps do not advance with time (RFC 4733 2.2.1). Static types below 96 always
    use the RFC 3551 rate (tshark does the same). A dynamic type missing from `rates` uses `clock_rate`
    when it is the stream's most frequent type, else 0 (tshark without SDP: 0, so pass clock_rate=0).
    """

    __slots__ = ("clock_rate", "rates", "events", "_buf", "_pack", "_chunks")

    def __init__(self, clock_rate: int = 8000, rates: dict | None = None) -> None:
        self.clock_rate = int(clock_rate or 0)
        self.rates: dict[int, int] = {}
        self.events: set[int] = set()  # RFC 4733 payload types
        for pt, v in (rates or {}).items():
            if isinstance(v, tuple):
                name, rate = v[0], int(v[1] or 0)
                if str(name).lower().startswith("telephone-event"):
                    self.events.add(int(pt))
                    rate = 0
            else:
                rate = int(v or 0)
            self.rates[int(pt)] = rate
        self._buf = bytearray()
        self._pack = _REC.pack
        self._chunks: list[bytes] = []  # bulk records from `extend`, joined in `records`

    def add(self, frame: int, time: float, seq: int, ts: int, pt: int, marker, size: int) -> None:
        """Record one packet (arrival order). Cost: one struct.pack and a bytearray append."""
        self._buf += self._pack(frame, time, ts, seq, pt, marker, size)

    def extend(self, records: np.ndarray) -> None:
        """Record many packets at once (a RECORD_DTYPE array, arrival order)."""
        if self._buf:
            self._chunks.append(bytes(self._buf))
            self._buf = bytearray()
        # Raw bytes (a copy): a slice of the caller's batch array would keep the whole batch alive,
        # and one join in `records` is much cheaper than concatenating structured arrays.
        self._chunks.append(np.ascontiguousarray(records, dtype=_DTYPE).tobytes())

    def __len__(self) -> int:
        return (len(self._buf) + sum(len(c) for c in self._chunks)) // _REC.size

    def pieces(self) -> list[bytes]:
        """The raw records as byte strings, in arrival order (joined, they are `records()`)."""
        return [*self._chunks, bytes(self._buf)] if self._buf else self._chunks

    def records(self) -> np.ndarray:
        """The raw per-packet records as a numpy structured array, in arrival order."""
        return np.frombuffer(b"".join(self.pieces()), dtype=_DTYPE)

    def recent(self, seconds: float) -> "StreamStats":
        """The same stream over its last `seconds` of arrivals (a live view's current figures), read
        from the end of the records only: the cost follows the window, not the stream's length."""
        out = StreamStats.__new__(StreamStats)
        out.clock_rate, out.rates, out.events = self.clock_rate, self.rates, self.events
        out._buf, out._pack, out._chunks = bytearray(), _REC.pack, []
        size = _REC.size
        tail: list[np.ndarray] = []
        cutoff = None
        for piece in reversed([*self._chunks, self._buf]):  # the buffer itself: no copy of the whole stream
            n = len(piece) // size
            while n:
                take = min(n, 256)  # records from the end of this piece, a few at a time
                rec = np.frombuffer(piece, dtype=_DTYPE, count=take, offset=(n - take) * size)
                if cutoff is None:
                    cutoff = float(rec["time"][-1]) - seconds
                tail.append(rec)
                n -= take
                if float(rec["time"][0]) < cutoff:
                    break
            else:
                continue
            break
        if tail:
            rec = np.concatenate(tail[::-1])  # a copy: the views on the live buffer end here
            del tail
            out.extend(rec[rec["time"] >= cutoff])
        return out

    def finish(self, jitter_buffer_ms: float = JITTER_BUFFER_MS) -> StreamMetrics:
        return next(finish_many([self], jitter_buffer_ms))


_STATIC_TABLE = np.zeros(128, np.int64)
for _pt, _rate in STATIC_CLOCK_RATES.items():
    _STATIC_TABLE[_pt] = _rate


def pt_rates(streams: list["StreamStats"], counts: np.ndarray) -> np.ndarray:
    """Clock rate per payload type 0-127 for each stream (a row each; counts: packets per type, a row
    each), as the StreamStats docstring says. Static types: RFC 3551. A dynamic type: its rate in
    `rates`, else the stream's clock when it is the stream's most frequent type, else 0 (tshark: a
    dynamic type no rtpmap names has no clock). Rates given for unknown static types are used too."""
    tables = np.tile(_STATIC_TABLE, (len(streams), 1))
    tables[:, 96:] = 0
    main = counts.argmax(axis=1)  # the most frequent type (the smallest on ties)
    has = np.flatnonzero(main >= 96)
    tables[has, main[has]] = [streams[i].clock_rate for i in has.tolist()]
    rows, pts, rates = [], [], []
    for i, s in enumerate(streams):
        for pt, rate in s.rates.items():  # read at the end: a caller may set a rate later (agent: DTMF)
            if 0 <= pt < 128 and (pt >= 96 or pt not in STATIC_CLOCK_RATES):
                rows.append(i)
                pts.append(pt)
                rates.append(rate)
    if rows:
        tables[rows, pts] = rates
    return tables


GROUP_RECORDS = 1 << 14  # records finished together: bounds the temporary arrays (~30 per record)


def finish_many(streams: Iterable["StreamStats"], jitter_buffer_ms: float = JITTER_BUFFER_MS) -> Iterator[StreamMetrics]:
    """`StreamStats.finish` for many streams at once: their records are concatenated and every step
    runs once over all of them, segment-aware (running maxima, unwrapping and sums restart at each
    stream), so closing 50 streams costs about what closing one did. Same figures as one by one.
    Streams are taken in groups of about GROUP_RECORDS records and their figures are yielded in
    order: memory stays that of one group when the caller keeps only what it needs of each."""
    group: list[StreamStats] = []
    size = 0
    for s in streams:
        if group and size + len(s) > GROUP_RECORDS:
            yield from _finish_group(group, jitter_buffer_ms)
            group, size = [], 0
        group.append(s)
        size += len(s)
    if group:
        yield from _finish_group(group, jitter_buffer_ms)


def _finish_group(streams: list["StreamStats"], jitter_buffer_ms: float) -> list[StreamMetrics]:
    from .mos import jitter_buffer_loss_many

    sizes = np.array([len(s) for s in streams], np.int64)
    out: list[StreamMetrics | None] = [None] * len(streams)
    live = np.flatnonzero(sizes).tolist()
    for k in np.flatnonzero(sizes == 0).tolist():
        out[k] = StreamMetrics(clock_rate=streams[k].clock_rate)
    if not live:
        return out  # type: ignore[return-value]
    # one join of every stream's raw records (empty streams add nothing): a single copy
    rec = np.frombuffer(b"".join([piece for s in streams for piece in s.pieces()]), dtype=_DTYPE)
    lens = sizes[live]
    K, n = len(live), int(lens.sum())
    starts = np.zeros(K, np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    lasts = starts + lens - 1
    seg = np.repeat(np.arange(K), lens)
    s0 = starts[seg]  # each packet's stream start
    at_start = np.zeros(n, bool)
    at_start[starts] = True
    idx = np.arange(n)

    frames = rec["frame"].astype(np.int64)
    time = rec["time"]
    t = (time - time[s0]) * 1000.0  # ms since the stream's first packet
    seq = rec["seq"].astype(np.int64)
    pt = rec["pt"].astype(np.int64) & 0x7F
    marker = rec["marker"].astype(bool)
    ext_seq = _unwrap_seg(seq, 16, starts, s0)
    ext_ts = _unwrap_seg(rec["ts"].astype(np.int64), 32, starts, s0)
    counts = np.bincount(seg * 128 + pt, minlength=K * 128).reshape(K, 128)
    tables = pt_rates([streams[k] for k in live], counts)
    rate = tables[seg, pt]

    # tshark 4.0: a packet is "in time sequence" when its 32-bit timestamp is at most 2^31 ticks after
    # the stream's first one (modulo 2^32), whatever came in between: a late packet still is, while
    # a timestamp that jumps back before the first packet (or 2^31 ahead of it) makes this and every
    # later packet "incorrect" until the clock comes back. Only in-time packets become the reference
    # (arrival time, timestamp) for later deltas and jitter, and only they update the jitter.
    nominal = (rec["ts"].astype(np.int64) - rec["ts"][s0].astype(np.int64)) & 0xFFFFFFFF  # ticks since the first
    in_time = nominal < 1 << 31
    ref = _prev_index_seg(in_time, idx, s0, at_start)
    delta = t - t[ref]
    delta[starts] = 0.0

    # Interarrival jitter, RFC 3550 6.4.1: D = (Rj - Ri) - (Sj - Si), J += (|D| - J)/16.
    # tshark: i is the last in-time packet, S is the nominal time above in ms = ticks / (rate // 1000)
    # (integer division, so 44.1 kHz counts as 44), and packets of unknown rate leave J unchanged.
    # tshark: packets of rate 0 (telephone-event) still move the arrival reference on, but not the
    # timestamp reference (its lastnominaltime), so an event burst shows up as jitter on the next packet.
    timed = (rate > 0) & in_time
    timed[starts] = False
    nominal_ms = nominal / np.maximum(rate // 1000, 1).astype(np.float64)
    ts_ref = _prev_index_seg(in_time & (rate > 0), idx, s0, at_start)
    d = np.abs(t - (t[ref] + nominal_ms - nominal_ms[ts_ref]))  # the first packet's nominal_ms is 0
    j_sub = _jitter_recurrence_seg(d[timed], seg[timed])
    upd = np.cumsum(timed)  # jitter updates so far (all streams); minus those before the stream: its own
    own = upd - upd[s0]
    jitter = np.where(own > 0, np.concatenate(([0.0], j_sub))[upd], 0.0)

    # tshark: only "regular" packets count for min/max/mean delta and jitter: not the first, no
    # marker bit (talkspurt start), not comfort noise (PT 13/19) nor the packet after one, and in
    # time sequence. Means are its running average (x_k weighted by the packet index, see _tshark_mean_seg).
    cn = (pt == PT_CN) | (pt == PT_CN_OLD)
    regular = ~marker & ~cn & in_time
    regular[1:] &= ~cn[:-1]
    regular[starts] = False
    local = idx - s0
    max_d, min_d, arg_d, mean_d, has_d = _seg_stats(delta, regular, seg, local, K)
    reg_timed = regular & (rate > 0)
    max_j, min_j, _, mean_j, has_j = _seg_stats(jitter, reg_timed, seg, local, K)

    # Loss. tshark: expected = last seq - first seq + 1 + 65536 * cycles, where a cycle is counted
    # when an in-time packet's sequence falls below the first one (or 65535 -> 0) and re-armed once a
    # later in-time packet is above the first one (32-bit unsigned / signed arithmetic as in C).
    first_seq = seq[s0]
    prev_seq = np.empty(n, np.int64)
    prev_seq[1:] = seq[:-1]
    prev_seq[starts] = seq[starts]
    arm = in_time & ((seq < first_seq) | ((seq == 0) & (prev_seq == 65535)))
    rearm = in_time & (seq > first_seq)
    arm[starts] = rearm[starts] = False
    sel = arm | rearm
    ev, ev_seg = arm[sel], seg[sel]
    prev_ev = np.zeros(len(ev), bool)
    prev_ev[1:] = ev[:-1] & (ev_seg[1:] == ev_seg[:-1])
    cycles = np.bincount(ev_seg[ev & ~prev_ev], minlength=K)

    # Duplicates and reordering on the extended sequence (streams made disjoint by an offset).
    prev_max_seq = _prev_max_seg(ext_seq, starts, seg, at_start)
    if ((ext_seq > prev_max_seq) | at_start).all():  # strictly increasing: no duplicate anywhere
        first = np.ones(n, bool)
    else:
        _, first_pos = np.unique(_disjoint(ext_seq, starts, seg), return_index=True)
        first = np.zeros(n, bool)
        first[first_pos] = True
    out_of_order = np.bincount(seg[(ext_seq < prev_max_seq) & first], minlength=K)
    # tshark's sequence error counter: its last accepted sequence only moves on in-time packets.
    last_ok = prev_max_seq if in_time.all() else \
        _prev_max_seg(np.where(in_time, ext_seq, ext_seq[s0]), starts, seg, at_start)
    err = (ext_seq <= last_ok) | (in_time & (ext_seq > last_ok + 1))
    err[starts] = False
    seq_errors = np.bincount(seg[err], minlength=K)
    wrong_ts = np.bincount(seg[~in_time], minlength=K)
    duplicates = lens - np.bincount(seg[first], minlength=K)
    # Timestamp jumps: consecutive sequence numbers whose RTP clock moved more than 0.5 s away from
    # the arrival clock (sender restarted its clock, or a media server spliced streams).
    nxt = (np.diff(ext_seq) == 1) & (rate[1:] > 0) & (rate[:-1] > 0) & ~at_start[1:]
    media_dt = np.diff(ext_ts) / np.maximum(rate[1:], 1)
    wall_dt = np.diff(t) / 1000.0
    jump = np.flatnonzero(nxt & (np.abs(media_dt - wall_dt) > 0.5)) + 1
    jumps = np.bincount(seg[jump], minlength=K)
    jump_frame = np.zeros(K, np.int64)
    jump_frame[seg[jump][::-1]] = frames[jump][::-1]  # the first jump of each stream wins
    size_sum = np.add.reduceat(rec["size"].astype(np.int64), starts)

    # Effective loss for the E-model: packets a static jitter buffer would have played too late.
    events = np.zeros((K, 128), bool)
    for i, k in enumerate(live):  # RFC 4733 2.2.1: event timestamps do not advance with time
        events[i, list(streams[k].events)] = True
    media = first & (rate > 0) & ~events[seg, pt]
    main_rate = _mode_seg(rate[media], seg[media], K)
    seg_rate = main_rate[seg]
    sel = media & (rate == seg_rate) & (seg_rate > 0)
    if sel.all():  # every packet is media of the main rate (the usual case): no copies
        late = jitter_buffer_loss_many(time, ext_ts, seg_rate, seg, K, jitter_buffer_ms)
    else:
        late = jitter_buffer_loss_many(time[sel], ext_ts[sel], seg_rate[sel], seg[sel], K, jitter_buffer_ms)

    voice_jitter = _voice_jitter(media & in_time, events[seg, pt] & (pt >= 0), seg, starts, t, ext_ts, rate, K)

    cols = [x.tolist() for x in (starts, lasts, cycles, duplicates, out_of_order, seq_errors, wrong_ts, jumps,
                                  jump_frame, max_d, min_d, arg_d, mean_d, has_d, max_j, min_j, mean_j, has_j,
                                  size_sum, late)]
    ends_ext = np.maximum.reduceat(ext_seq, starts)
    cols.append((ends_ext - ext_seq[starts] + 1).tolist())
    types: list[dict[int, int]] = [{} for _ in live]  # payload type -> packets, per stream
    for i, p, c in zip(*np.nonzero(counts), counts[counts > 0].tolist()):
        types[i][int(p)] = c
    for i, k in enumerate(live):
        (a, z, cyc, dup, ooo, serr, wts, jmp, jfr, mxd, mnd, agd, mnd_mean, hd, mxj, mnj, mnj_mean, hj,
         size, late_k, exp_rfc) = (c[i] for c in cols)
        count = z - a + 1
        m = StreamMetrics(packets=count, clock_rate=streams[k].clock_rate, jitter_buffer_ms=jitter_buffer_ms)
        if hd:
            m.max_delta_ms = float(max(mxd, 0.0))
            m.max_delta_frame = int(frames[agd]) if mxd > 0 else 0
            m.min_delta_ms = float(mnd)
            m.mean_delta_ms = mnd_mean
        if hj:
            m.max_jitter_ms = float(max(mxj, 0.0))
            m.min_jitter_ms = float(mnj)
            m.mean_jitter_ms = mnj_mean
        m.last_jitter_ms = float(jitter[z])
        m.max_voice_jitter_ms = m.max_jitter_ms if voice_jitter[i] is None else voice_jitter[i]
        start, stop = int(seq[a]), int(seq[z])
        expected = (stop + cyc * 65536 - start + 1) & 0xFFFFFFFF
        lost = (expected - count) & 0xFFFFFFFF
        m.lost = lost - (1 << 32) if lost & 0x80000000 else lost
        m.expected = expected if expected < 0x80000000 else m.lost + count
        m.loss_pct = m.lost * 100.0 / m.expected if m.expected else 0.0
        m.expected_rfc3550 = exp_rfc
        m.lost_rfc3550 = exp_rfc - count
        m.duplicates, m.out_of_order, m.sequence_errors, m.wrong_timestamps = dup, ooo, serr, wts
        m.timestamp_jumps, m.timestamp_jump_frame = jmp, jfr if jmp else 0
        m.problem = bool(serr or wts)
        m.start, m.end = float(time[a]), float(time[z])
        m.first_frame, m.last_frame = int(frames[a]), int(frames[z])
        dur = m.end - m.start
        m.mean_bitrate_kbps = float(size) * 8 / dur / 1000 if dur > 0 else 0.0
        m.payload_types = types[i]
        m.late_packets = late_k
        lost_net = max(m.lost_rfc3550, 0)
        m.effective_loss_pct = (lost_net + late_k) * 100.0 / exp_rfc if exp_rfc else 0.0
        m.frames, m.times, m.jitter_ms = frames[a:z + 1], t[a:z + 1] / 1000.0, jitter[a:z + 1]
        m.delta_ms, m.sequence = delta[a:z + 1], ext_seq[a:z + 1]
        out[k] = m
    return out  # type: ignore[return-value]


def _voice_jitter(voice: np.ndarray, event: np.ndarray, seg: np.ndarray, starts: np.ndarray, t: np.ndarray,
                  ext_ts: np.ndarray, rate: np.ndarray, K: int) -> list[float | None]:
    """Per stream with RFC 4733 events, the max RFC 3550 jitter of its voice packets alone (events
    neither update it nor serve as reference); None for a stream without events. tshark's figure
    lets an event burst move the arrival reference but not the timestamp one, so the first voice
    packet after a digit shows the burst as jitter: not something the network did."""
    out: list[float | None] = [None] * K
    ends = np.append(starts[1:], len(seg))  # each stream's packets are one run
    for k in np.unique(seg[event]).tolist():
        idx = starts[k] + np.flatnonzero(voice[starts[k]:ends[k]])
        if len(idx) < 2:
            out[k] = 0.0
            continue
        ms_per_tick = np.maximum(rate[idx[1:]] // 1000, 1).astype(np.float64)
        d = np.abs(np.diff(t[idx]) - np.diff(ext_ts[idx]) / ms_per_tick)
        j = _jitter_recurrence_seg(d, np.zeros(len(d), np.int64))
        out[k] = float(j.max())
    return out


def _unwrap_seg(values: np.ndarray, bits: int, starts: np.ndarray, s0: np.ndarray) -> np.ndarray:
    """Extend a wrapping counter, each stream from its first value (restarting at `starts`): each step
    is taken as the shortest signed distance from the previous packet (RFC 3550 A.1; the same rule as
    Wireshark's calculate_extended_seqno/_timestamp)."""
    mod = 1 << bits
    half = mod >> 1
    steps = np.empty(len(values), np.int64)
    steps[0] = 0
    steps[1:] = (np.diff(values) + half) % mod - half
    steps[starts] = 0
    run = np.cumsum(steps)
    return values[s0] + run - run[s0]


def _disjoint(x: np.ndarray, starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """x moved per stream so that every stream's values lie above all of the previous stream's."""
    lo = np.minimum.reduceat(x, starts)
    span = np.maximum.reduceat(x, starts) - lo + 1
    base = np.zeros(len(starts), np.int64)
    np.cumsum(span[:-1], out=base[1:])
    return x - lo[seg] + base[seg]


def _prev_max_seg(x, starts, seg, at_start) -> np.ndarray:
    """The largest x before each packet in its stream (its own x for the first packet)."""
    out = np.empty(len(x), np.int64)
    out[0] = x[0]
    out[1:] = x[:-1]
    if ((x[1:] >= out[1:]) | at_start[1:]).all():  # non-decreasing in every stream (the usual case)
        out[at_start] = x[at_start]
        return out
    if len(starts) == 1:
        shifted, back = x, 0
    else:
        shifted = _disjoint(x, starts, seg)
        back = shifted - x
    acc = np.maximum.accumulate(shifted)
    out[1:] = acc[:-1] - (back[1:] if len(starts) > 1 else 0)
    out[at_start] = x[at_start]
    return out


def _prev_index_seg(flag, idx, s0, at_start) -> np.ndarray:
    """Index of the latest flagged packet before each packet in its stream (the stream's first
    packet when none; for the first packet itself)."""
    out = np.empty(len(idx), np.int64)
    out[0] = 0
    if flag.all():  # every packet flagged (the usual case): the previous one
        out[1:] = idx[:-1]
        out[at_start] = idx[at_start]
        return out
    acc = np.maximum.accumulate(np.where(flag, idx, s0))
    out[1:] = acc[:-1]
    out[at_start] = idx[at_start]
    return out


def _seg_stats(x, mask, seg, local, K):
    """Per stream over the masked packets: max, min, index of the (first) max, tshark mean, any."""
    sel = np.flatnonzero(mask)
    has = np.zeros(K, bool)
    mx, mn, arg, mean = np.zeros(K), np.zeros(K), np.zeros(K, np.int64), np.zeros(K)
    if not sel.size:
        return mx, mn, arg, mean, has
    xs, ss = x[sel], seg[sel]
    bounds = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    who = ss[bounds]
    has[who] = True
    mx[who] = np.maximum.reduceat(xs, bounds)
    mn[who] = np.minimum.reduceat(xs, bounds)
    top = np.flatnonzero(xs == mx[ss])
    arg[ss[top][::-1]] = sel[top][::-1]  # first occurrence, as argmax
    mean[who] = _tshark_mean_seg(xs, local[sel], bounds)
    return mx, mn, arg, mean, has


def _tshark_mean_seg(x: np.ndarray, pos: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """tshark's running mean of each run x[bounds[i]:bounds[i+1]] (`pos`: each value's 0-based index p
    in its stream): at each counted packet M = (M * (p - 1) + x) / p. When every packet counts this is
    the plain mean; when some are skipped it weights differently, and tshark's figure is what we
    reproduce. Closed form: M_K = P_K (M_0 + sum_k x_k / (p_k P_k)), P_k = prod_{j<=k} (p_j - 1) / p_j;
    the sum is taken in order (as tshark's running update), the same for one run or many."""
    x = x.astype(np.float64)
    pos = pos.astype(np.float64)
    ends = np.r_[bounds[1:], len(x)]
    # factor 0 (p <= 1): the run's first value replaces the (zero) mean and leaves the sum
    lead = bounds[pos[bounds] <= 1]
    m0 = np.zeros(len(bounds))
    m0[pos[bounds] <= 1] = x[lead]
    ratio = (pos - 1.0) / pos
    ratio[lead] = 1.0
    p = _cumprod_seg(ratio, bounds, ends - bounds)
    terms = x / pos / p
    terms[lead] = 0.0
    return p[ends - 1] * (m0 + np.add.reduceat(terms, bounds))


def _cumprod_seg(v: np.ndarray, bounds: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """np.cumprod of each run of v (starting at bounds, lens long): one call per run, in place."""
    out = np.empty_like(v)
    for a, b in zip(bounds.tolist(), (bounds + lens).tolist()):
        np.multiply.accumulate(v[a:b], out=out[a:b])
    return out


def _mode_seg(values: np.ndarray, seg: np.ndarray, K: int) -> np.ndarray:
    """Per stream, its most frequent value (the smallest on ties, as bincount().argmax()); 0 if none."""
    out = np.zeros(K, np.int64)
    if not values.size:
        return out
    head = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    if (values == np.repeat(values[head], np.diff(np.r_[head, len(values)]))).all():  # one value each
        out[seg[head]] = values[head]
        return out
    keys, counts = np.unique(seg.astype(np.int64) << 32 | values, return_counts=True)
    kseg = keys >> 32
    order = np.lexsort((keys & 0xFFFFFFFF, -counts, kseg))  # per stream: most counts, then smallest
    best = order[np.r_[True, kseg[order][1:] != kseg[order][:-1]]]
    out[kseg[best]] = keys[best] & 0xFFFFFFFF
    return out


def _jitter_recurrence_seg(d: np.ndarray, seg: np.ndarray, chunk: int = 256) -> np.ndarray:
    """J_k = J_{k-1} + (d_k - J_{k-1})/16 with J_0 = 0 over each stream's run of d (seg: stream of
    each entry), vectorised. Each run is cut in chunks laid out as rows of a matrix (a run's chunks in
    consecutive rows, the last one padded). Within a chunk, J_j = a^(j+1) J_prev + (1/16) a^j
    sum_{k<=j} a^-k d_k with a = 15/16 (chunks bound a^-k below 2e7). J_prev, the J that ends the
    previous chunk of the same run, is E_1 + A E_2 + A^2 E_3 where E_i ends the i-th chunk before
    (computed with J_prev = 0) and A = a^chunk ~ 6.6e-8: A^3 ~ 3e-22 is below a double's precision."""
    m = len(d)
    if not m:
        return np.empty(0)
    bounds = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    lens = np.diff(np.r_[bounds, m])
    rows_per_run = -(-lens // chunk)
    row0 = np.cumsum(rows_per_run) - rows_per_run  # each run's first row
    run = np.repeat(np.arange(len(bounds)), lens)
    pos = np.arange(m) - bounds[run]  # position within the run
    flat = row0[run] * chunk + pos  # position in the padded matrix
    n_rows = int(rows_per_run.sum())
    a = 15.0 / 16.0
    powers = a ** np.arange(chunk + 1)
    grid = np.zeros(n_rows * chunk)
    grid[flat] = d * (1.0 / powers[:chunk])[pos % chunk]
    local = powers[:chunk] * np.cumsum(grid.reshape(n_rows, chunk), axis=1) / 16.0
    first = np.zeros(n_rows, bool)
    first[row0] = True
    carry = np.zeros(n_rows)  # the J ending the previous chunk of the same run (0 for a run's first)
    ends = local[:, -1]
    scale = 1.0
    for _ in range(3):
        ends = np.r_[0.0, ends[:-1]]
        ends[first] = 0.0
        carry += scale * ends
        scale *= powers[chunk]
        first[1:] |= first[:-1]  # further back: the chunk must still be of the same run
    return (powers[1:chunk + 1] * carry[:, None] + local).reshape(-1)[flat]
