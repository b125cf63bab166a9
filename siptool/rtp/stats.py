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

import numpy as np

_REC = struct.Struct("<qdIHBBI")
_DTYPE = np.dtype([("frame", "<i8"), ("time", "<f8"), ("ts", "<u4"), ("seq", "<u2"), ("pt", "u1"),
                   ("marker", "u1"), ("size", "<u4")])
assert _DTYPE.itemsize == _REC.size
RECORD_DTYPE = _DTYPE  # one packet's record: what `add` packs and `extend` takes in bulk

PT_CN, PT_CN_OLD = 13, 19
JITTER_BUFFER_MS = 60.0  # static jitter buffer used for effective loss (see mos.jitter_buffer_loss)

# RTP clock rates of static payload types: RFC 3551 6 table 4/5, as Wireshark's clock_map has them.
# G.722 (9) uses 8000 although it samples at 16 kHz (RFC 3551 4.5.2). Types not listed: 0 (unknown).
STATIC_CLOCK_RATES = {0: 8000, 1: 8000, 2: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000,
                      9: 8000, 10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025,
                      17: 22050, 18: 8000, 19: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000,
                      33: 90000, 34: 90000}


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

    def records(self) -> np.ndarray:
        """The raw per-packet records as a numpy structured array, in arrival order."""
        if not self._chunks:
            return np.frombuffer(bytes(self._buf), dtype=_DTYPE)
        return np.frombuffer(b"".join(self._chunks) + bytes(self._buf), dtype=_DTYPE)

    def pt_rates(self, counts: np.ndarray) -> np.ndarray:
        """Clock rate per payload type 0-127 (see class docstring)."""
        table = np.zeros(128, np.int64)
        for pt, rate in STATIC_CLOCK_RATES.items():
            table[pt] = rate
        dyn = counts[96:]
        main = 96 + int(np.argmax(dyn)) if dyn.any() else None
        for pt in range(96, 128):
            table[pt] = self.rates.get(pt, self.clock_rate if pt == main else 0)
        for pt, rate in self.rates.items():
            if 0 <= pt < 96 and pt not in STATIC_CLOCK_RATES:
                table[pt] = rate
        return table

    def finish(self, jitter_buffer_ms: float = JITTER_BUFFER_MS) -> StreamMetrics:
        rec = self.records()
        n = len(rec)
        if n == 0:
            return StreamMetrics(clock_rate=self.clock_rate)
        frames = rec["frame"].astype(np.int64)
        t = (rec["time"] - rec["time"][0]) * 1000.0  # ms since the stream's first packet
        seq = rec["seq"].astype(np.int64)
        pt = rec["pt"].astype(np.int64) & 0x7F
        marker = rec["marker"].astype(bool)
        idx = np.arange(n)
        ext_seq = _unwrap(seq, 16)
        ext_ts = _unwrap(rec["ts"].astype(np.int64), 32)
        counts = np.bincount(pt, minlength=128)
        rate = self.pt_rates(counts)[pt]

        # tshark: a packet is "in time sequence" when its extended timestamp is not below the highest
        # seen so far; only such packets become the reference (time, timestamp) for later deltas/jitter.
        prev_max_ts = np.empty(n, np.int64)
        prev_max_ts[0] = ext_ts[0]
        prev_max_ts[1:] = np.maximum.accumulate(ext_ts)[:-1]
        in_time = ext_ts >= prev_max_ts
        ref = np.empty(n, np.int64)
        ref[0] = 0
        ref[1:] = np.maximum.accumulate(np.where(in_time, idx, 0))[:-1]
        delta = t - t[ref]
        delta[0] = 0.0

        # Interarrival jitter, RFC 3550 6.4.1: D = (Rj - Ri) - (Sj - Si), J += (|D| - J)/16.
        # tshark: i is the last in-time packet, the timestamp unit is ms = ticks / (rate // 1000)
        # (integer division, so 44.1 kHz counts as 44), and packets of unknown rate leave J unchanged.
        # tshark: packets of rate 0 (telephone-event) still move the arrival reference on, but not the
        # timestamp reference (its lastnominaltime), so an event burst shows up as jitter on the next packet.
        timed = rate > 0
        timed[0] = False
        ms_per_tick_div = np.maximum(rate // 1000, 1).astype(np.float64)
        ts_ref = np.empty(n, np.int64)
        ts_ref[0] = 0
        ts_ref[1:] = np.maximum.accumulate(np.where(in_time & (rate > 0), idx, 0))[:-1]
        d = np.abs(t - (t[ref] + (ext_ts - ext_ts[ts_ref]) / ms_per_tick_div))
        j_sub = _jitter_recurrence(d[timed])
        upd = np.cumsum(timed)  # number of jitter updates up to and including each packet
        jitter = np.where(upd > 0, np.concatenate(([0.0], j_sub))[upd], 0.0)

        # tshark: only "regular" packets count for min/max/mean delta and jitter: not the first, no
        # marker bit (talkspurt start), not comfort noise (PT 13/19) nor the packet after one, and in
        # time sequence. Means are its running average (x_k weighted by the packet index, see _tshark_mean).
        cn = (pt == PT_CN) | (pt == PT_CN_OLD)
        regular = ~marker & ~cn & in_time
        regular[1:] &= ~cn[:-1]
        regular[0] = False
        reg_idx = idx[regular]
        m = StreamMetrics(packets=n, clock_rate=self.clock_rate, jitter_buffer_ms=jitter_buffer_ms)
        if reg_idx.size:
            rd = delta[reg_idx]
            k = int(np.argmax(rd))
            m.max_delta_ms = float(max(rd[k], 0.0))
            m.max_delta_frame = int(frames[reg_idx[k]]) if rd[k] > 0 else 0
            m.min_delta_ms = float(rd.min())
            m.mean_delta_ms = _tshark_mean(rd, reg_idx)
        reg_timed = reg_idx[rate[reg_idx] > 0]
        if reg_timed.size:
            rj = jitter[reg_timed]
            m.max_jitter_ms = float(max(rj.max(), 0.0))
            m.min_jitter_ms = float(rj.min())
            m.mean_jitter_ms = _tshark_mean(rj, reg_timed)
        m.last_jitter_ms = float(jitter[-1])

        # Loss. tshark: expected = last seq - first seq + 1 + 65536 * cycles, where a cycle is counted
        # when an in-time packet's sequence falls below the first one (or 65535 -> 0) and re-armed once a
        # later in-time packet is above the first one (32-bit unsigned / signed arithmetic as in C).
        start, stop = int(seq[0]), int(seq[-1])
        prev_seq = np.concatenate(([seq[0]], seq[:-1]))
        arm = in_time & ((seq < start) | ((seq == 0) & (prev_seq == 65535)))
        rearm = in_time & (seq > start)
        arm[0] = rearm[0] = False
        ev = arm[arm | rearm].astype(np.int8)
        cycles = int(np.count_nonzero(ev & (np.concatenate(([0], ev[:-1])) == 0)))
        expected = (stop + cycles * 65536 - start + 1) & 0xFFFFFFFF
        lost = (expected - n) & 0xFFFFFFFF
        m.lost = lost - (1 << 32) if lost & 0x80000000 else lost
        m.expected = expected if expected < 0x80000000 else m.lost + n
        m.loss_pct = m.lost * 100.0 / m.expected if m.expected else 0.0
        # RFC 3550 A.3: extended highest - base + 1, base being the first packet (A.1 init_seq).
        m.expected_rfc3550 = int(ext_seq.max() - ext_seq[0] + 1)
        m.lost_rfc3550 = m.expected_rfc3550 - n

        # Duplicates and reordering on the extended sequence.
        _, first_pos = np.unique(ext_seq, return_index=True)
        first = np.zeros(n, bool)
        first[first_pos] = True
        m.duplicates = n - first_pos.size
        prev_max_seq = np.empty(n, np.int64)
        prev_max_seq[0] = ext_seq[0]
        prev_max_seq[1:] = np.maximum.accumulate(ext_seq)[:-1]
        m.out_of_order = int(np.count_nonzero((ext_seq < prev_max_seq) & first))
        # tshark's sequence error counter: its last accepted sequence only moves on in-time packets.
        last_ok = np.empty(n, np.int64)
        last_ok[0] = ext_seq[0]
        last_ok[1:] = np.maximum.accumulate(np.where(in_time, ext_seq, ext_seq[0]))[:-1]
        err = (ext_seq <= last_ok) | (in_time & (ext_seq > last_ok + 1))
        err[0] = False
        m.sequence_errors = int(np.count_nonzero(err))
        m.wrong_timestamps = int(np.count_nonzero(~in_time))
        # Timestamp jumps: consecutive sequence numbers whose RTP clock moved more than 0.5 s away from
        # the arrival clock (sender restarted its clock, or a media server spliced streams).
        if n > 1:
            nxt = (np.diff(ext_seq) == 1) & (rate[1:] > 0) & (rate[:-1] > 0)
            media_dt = np.diff(ext_ts) / np.maximum(rate[1:], 1)
            wall_dt = np.diff(t) / 1000.0
            jump = nxt & (np.abs(media_dt - wall_dt) > 0.5)
            m.timestamp_jumps = int(np.count_nonzero(jump))
            m.timestamp_jump_frame = int(frames[1:][jump][0]) if m.timestamp_jumps else 0
        m.problem = bool(m.sequence_errors or m.wrong_timestamps)

        m.start, m.end = float(rec["time"][0]), float(rec["time"][-1])
        m.first_frame, m.last_frame = int(frames[0]), int(frames[-1])
        dur = (m.end - m.start)
        m.mean_bitrate_kbps = float(rec["size"].sum()) * 8 / dur / 1000 if dur > 0 else 0.0
        m.payload_types = {int(p): int(c) for p, c in enumerate(counts) if c}

        # Effective loss for the E-model: packets a static jitter buffer would have played too late.
        from .mos import jitter_buffer_loss

        media = first & (rate > 0)
        for event_pt in self.events:  # RFC 4733 2.2.1: event timestamps do not advance with time
            media &= pt != event_pt
        main_rate = int(np.bincount(rate[media]).argmax()) if media.any() else 0
        if main_rate:
            sel = media & (rate == main_rate)
            m.late_packets = jitter_buffer_loss(rec["time"][sel], ext_ts[sel], main_rate, jitter_buffer_ms)
        lost_net = max(m.lost_rfc3550, 0)
        m.effective_loss_pct = (lost_net + m.late_packets) * 100.0 / m.expected_rfc3550 if m.expected_rfc3550 else 0.0

        m.frames, m.times, m.jitter_ms, m.delta_ms, m.sequence = frames, t / 1000.0, jitter, delta, ext_seq
        return m


def _unwrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Extend a wrapping counter: each step is taken as the shortest signed distance from the previous
    packet (RFC 3550 A.1; the same rule as Wireshark's calculate_extended_seqno/_timestamp)."""
    mod = 1 << bits
    half = mod >> 1
    steps = (np.diff(values) + half) % mod - half
    out = np.empty(len(values), np.int64)
    out[0] = values[0]
    np.cumsum(steps, out=out[1:])
    out[1:] += values[0]
    return out


def _jitter_recurrence(d: np.ndarray, chunk: int = 256) -> np.ndarray:
    """J_k = J_{k-1} + (d_k - J_{k-1})/16 with J_0 = 0, vectorised. Within a chunk,
    J_j = a^(j+1) J_prev + (1/16) a^j sum_{k<=j} a^-k d_k with a = 15/16; chunks bound a^-k (< 2e7)."""
    out = np.empty(len(d))
    a = 15.0 / 16.0
    powers = a ** np.arange(chunk + 1)
    inv = 1.0 / powers[:chunk]
    j_prev = 0.0
    for s in range(0, len(d), chunk):
        part = d[s:s + chunk]
        L = len(part)
        acc = np.cumsum(part * inv[:L])
        block = powers[1:L + 1] * j_prev + powers[:L] * acc / 16.0
        out[s:s + L] = block
        j_prev = block[-1]
    return out


def _tshark_mean(x: np.ndarray, pos: np.ndarray) -> float:
    """tshark's running mean: at each counted packet (0-based index p in the stream),
    M = (M * (p - 1) + x) / p. When every packet counts this is the plain mean of x; when some are
    skipped it weights differently, and tshark's figure is what we reproduce. Solved in closed form:
    M_K = P_K (M_0 + sum_k (x_k / p_k) / P_k) with P_k = prod_{j<=k} (p_j - 1) / p_j."""
    pos = pos.astype(np.float64)
    x = x.astype(np.float64)
    m0 = 0.0
    if pos[0] <= 1:  # factor 0: the first delta replaces the (zero) mean
        m0, x, pos = float(x[0]), x[1:], pos[1:]
        if not len(x):
            return m0
    p = np.cumprod((pos - 1.0) / pos)
    return float(p[-1] * (m0 + np.sum(x / pos / p)))
