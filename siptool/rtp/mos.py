"""Listening/conversational quality estimate: ITU-T G.107 (06/2015) E-model, narrowband.

    R = Ro - Is - Id - Ie,eff + A                                         (G.107 eq. 7-1)

Every transmission parameter keeps its G.107 Table 1 default (SLR 8, RLR 2, STMR 15, LSTR 18, Ds=Dr 3,
TELR 65, WEPL 110, qdu 1, Nc -70, Nfor -64, Ps=Pr 35, A 0), which gives Ro = 94.77, Is = 1.43 and,
with no delay, R = 93.2 (MOS 4.41). What a capture tells us enters through two terms only:
  - Ie,eff from the codec (Ie, Bpl: ITU-T G.113 Appendix I) and the effective packet loss Ppl
    (network loss plus packets a jitter buffer would discard, see jitter_buffer_loss);
  - Id from the one-way mouth-to-ear delay T (Ta = T, round trip Tr = 2T, G.107 7.4).
A passive capture cannot see mouth-to-ear delay; when none is given (no RTCP round trip) T = 0, the
G.107 default, so a clean G.711 call rates the familiar 4.41 and the figure ranks media impairment.

Wideband codecs (G.722, Opus: rtp/codecs.WIDEBAND) are rated by the ITU-T G.107.1 wideband E-model
instead: R_wb = 129 - Id - Ie,eff,wb (Is and A are 0 in G.107.1; Id as above, G.107.1 7.4 keeping
G.107's delay terms; Ie,eff,wb by eq. 7-29 with its constant 95), and MOS from R_wb / 1.29 by the
G.107 Annex B polynomial (G.107.1 Annex A). Their Ie,wb and Bpl are provisional or siptool's own
estimates (rtp/codecs.py says which), so such a MOS is reported with `mos_model` WIDEBAND_MODEL: an
estimate, on another scale than the narrowband one (a clean G.722 call rates 4.34 there).
"""

from __future__ import annotations

import math

import numpy as np

from . import codecs

# G.107 Table 1 defaults.
SLR, RLR, STMR, LSTR, DS, DR = 8.0, 2.0, 15.0, 18.0, 3.0, 3.0
TELR, WEPL, QDU, NC, NFOR, PS, PR, A_FACTOR = 65.0, 110.0, 1.0, -70.0, -64.0, 35.0, 35.0, 0.0
DEFAULT_DELAY_MS = 0.0  # used when no one-way delay is known (G.107 default T = Ta = Tr = 0)

UNKNOWN_CODEC = codecs.UNKNOWN  # unknown names are rated as G.711 with PLC (documented default)


def codec_impairment(codec: str) -> tuple[float, float]:
    """(Ie, Bpl) for a codec name (ITU-T G.113, from the codec registry: rtp/codecs.py)."""
    return codecs.impairment(codec)


def _basic() -> tuple[float, float, float]:
    """Ro (eq. 7-3), No (7-2) and Is (7-8) from the defaults."""
    olr = SLR + RLR
    nos = PS - SLR - DS - 100 + 0.004 * (PS - olr - DS - 14) ** 2  # 7-4
    pre = PR + 10 * math.log10(1 + 10 ** ((10 - LSTR) / 10))  # 7-6
    nor = RLR - 121 + pre + 0.008 * (pre - 35) ** 2  # 7-5
    nfo = NFOR + RLR  # 7-7
    no = 10 * math.log10(10 ** (NC / 10) + 10 ** (nos / 10) + 10 ** (nor / 10) + 10 ** (nfo / 10))
    ro = 15 - 1.5 * (SLR + no)
    xolr = olr + 0.2 * (64 + no - RLR)  # 7-10
    iolr = 20 * ((1 + (xolr / 8) ** 8) ** (1 / 8) - xolr / 8)  # 7-9
    return ro, no, iolr


def _ist(t_ms: float) -> float:
    """Sidetone impairment Ist (eq. 7-11, 7-12)."""
    stmro = -10 * math.log10(10 ** (-STMR / 10) + math.exp(-t_ms / 4) * 10 ** (-TELR / 10))
    return (12 * (1 + ((stmro - 13) / 6) ** 8) ** (1 / 8) - 28 * (1 + ((stmro + 1) / 19.4) ** 35) ** (1 / 35)
            - 13 * (1 + ((stmro - 3) / 33) ** 13) ** (1 / 13) + 29)


def _iq(ro: float) -> float:
    """Quantizing distortion Iq (eq. 7-13 .. 7-16)."""
    q = 37 - 15 * math.log10(QDU)
    g = 1.07 + 0.258 * q + 0.0602 * q * q
    y = (ro - 100) / 15 + 46 / 8.4 - g / 9
    z = 46 / 30 - g / 40
    return 15 * math.log10(1 + 10 ** y + 10 ** z)


def delay_impairment(t_ms: float, ta_ms: float | None = None, tr_ms: float | None = None) -> float:
    """Id = Idte + Idle + Idd (G.107 7.4): talker echo (T), listener echo (Tr), absolute delay (Ta)."""
    ta_ms = t_ms if ta_ms is None else ta_ms
    tr_ms = 2 * t_ms if tr_ms is None else tr_ms
    ro, no, _ = _basic()
    roe = -1.5 * (no - RLR)  # 7-19
    terv = TELR - 40 * math.log10((1 + t_ms / 10) / (1 + t_ms / 150)) + 6 * math.exp(-0.3 * t_ms ** 2)  # 7-21
    if STMR < 9:
        terv += _ist(t_ms) / 2  # 7-22
    re = 80 + 2.5 * (terv - 14)  # 7-20
    idte = ((roe - re) / 2 + math.sqrt((roe - re) ** 2 / 4 + 100) - 1) * (1 - math.exp(-t_ms))  # 7-18
    if STMR > 20:  # 7-23
        idte = idte / 2 + math.sqrt(idte ** 2 / 4 + _ist(t_ms) ** 2)
    rle = 10.5 * (WEPL + 7) * (tr_ms + 1) ** -0.25  # 7-25
    idle = (ro - rle) / 2 + math.sqrt((ro - rle) ** 2 / 4 + 169)  # 7-24
    if ta_ms <= 100:  # 7-26, 7-27
        idd = 0.0
    else:
        x = math.log10(ta_ms / 100) / math.log10(2)
        idd = 25 * ((1 + x ** 6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    return idte + idle + idd


def effective_equipment_impairment(ie: float, bpl: float, ppl_pct: float, burst_r: float = 1.0) -> float:
    """Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)   (G.107 eq. 7-29; BurstR 1 = random loss)."""
    ppl = max(0.0, min(100.0, ppl_pct))
    return ie + (95 - ie) * ppl / (ppl / burst_r + bpl)


def r_factor(ie: float = 0.0, bpl: float = 25.1, ppl_pct: float = 0.0, delay_ms: float | None = None,
             burst_r: float = 1.0, advantage: float = A_FACTOR) -> float:
    """The transmission rating R (G.107 eq. 7-1) with default parameters except those given."""
    t = DEFAULT_DELAY_MS if delay_ms is None else max(0.0, float(delay_ms))
    ro, _, iolr = _basic()
    is_ = iolr + _ist(t) + _iq(ro)
    return ro - is_ - delay_impairment(t) - effective_equipment_impairment(ie, bpl, ppl_pct, burst_r) + advantage


def r_to_mos(r: float) -> float:
    """G.107 Annex B eq. B-4: MOS_CQE from R."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


NARROWBAND_MODEL = "G.107"
WIDEBAND_MODEL = "G.107.1-estimate"  # wideband E-model with estimated codec values (see above)
R_WB = 129.0  # G.107.1: Ro,wb, the wideband scale's top


def mos_model(codec: str) -> str:
    """Which E-model rates a codec: the narrowband G.107, or for G.722 and Opus the wideband G.107.1
    with estimated codec values."""
    return WIDEBAND_MODEL if (codec or "").strip().lower() in codecs.WIDEBAND else NARROWBAND_MODEL


def wideband_r(ie: float, bpl: float, ppl_pct: float = 0.0, delay_ms: float | None = None,
               burst_r: float = 1.0) -> float:
    """R_wb = Ro,wb - Id - Ie,eff,wb (ITU-T G.107.1 eq. 7-1; Is,wb = A = 0)."""
    t = DEFAULT_DELAY_MS if delay_ms is None else max(0.0, float(delay_ms))
    return R_WB - delay_impairment(t) - effective_equipment_impairment(ie, bpl, ppl_pct, burst_r)


def mos_for_stream(codec: str, loss_pct_effective: float, delay_ms: float | None = None,
                   burst_r: float = 1.0) -> tuple[float, float]:
    """(R, MOS) for a stream: codec name, effective loss in percent, one-way delay in ms (None: unknown,
    G.107 default 0 ms is used). For G.722 and Opus R is the wideband R_wb and the MOS is G.107.1
    Annex A's (see mos_model)."""
    wide = codecs.WIDEBAND.get((codec or "").strip().lower())
    if wide is not None:
        r = wideband_r(*wide, loss_pct_effective, delay_ms, burst_r)
        return r, r_to_mos(r / 1.29)
    ie, bpl = codec_impairment(codec)
    r = r_factor(ie, bpl, loss_pct_effective, delay_ms, burst_r)
    return r, r_to_mos(r)


def jitter_buffer_loss(times, rtp_ts, clock_rate: int, depth_ms: float = 60.0) -> int:
    """Packets a static (fixed-delay) jitter buffer of `depth_ms` would discard as late.

    The buffer starts playing `depth_ms` after the first packet arrives and then plays at the RTP
    clock: packet k is due at arrival_0 + depth + (ts_k - ts_0) / clock_rate. A packet arriving after
    its due time is lost to the listener. A timestamp jump of more than 2 s either way (new talkspurt
    base, sender restart) re-anchors the buffer on that packet, as real buffers resynchronise.
    `times` in seconds, `rtp_ts` extended (unwrapped) timestamps, both in arrival order, one entry per
    distinct packet."""
    times = np.asarray(times, np.float64)
    ts = np.asarray(rtp_ts, np.int64)
    if len(times) == 0 or clock_rate <= 0:
        return 0
    transit = times - (ts - ts[0]) / float(clock_rate)  # arrival minus media time, seconds
    # segments: re-anchor where the transit jumps by more than 2 s (timestamp discontinuity)
    jumps = np.flatnonzero(np.abs(np.diff(transit)) > 2.0) + 1
    starts = np.concatenate(([0], jumps))
    anchor = np.repeat(transit[starts], np.diff(np.concatenate((starts, [len(transit)]))))
    late = transit > anchor + depth_ms / 1000.0
    return int(np.count_nonzero(late))


def jitter_buffer_loss_many(times, rtp_ts, rates, seg, count: int, depth_ms: float = 60.0) -> np.ndarray:
    """`jitter_buffer_loss` of many streams at once: entries grouped by stream `seg` (0..count-1, each
    stream's entries contiguous and in arrival order), `rates` the clock rate of each entry's stream.
    Returns the late packets of each stream."""
    out = np.zeros(count, np.int64)
    if not len(times):
        return out
    ts = np.asarray(rtp_ts, np.int64)
    new = np.r_[True, seg[1:] != seg[:-1]]
    first = np.flatnonzero(new)
    base = np.repeat(first, np.diff(np.r_[first, len(ts)]))
    transit = times - (ts - ts[base]) / rates.astype(np.float64)
    anchors = new.copy()
    anchors[1:] |= np.abs(np.diff(transit)) > 2.0
    starts = np.flatnonzero(anchors)
    anchor = np.repeat(transit[starts], np.diff(np.r_[starts, len(transit)]))
    late = transit > anchor + depth_ms / 1000.0
    return np.bincount(seg[late], minlength=count)
