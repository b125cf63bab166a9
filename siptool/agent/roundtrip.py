"""Round-trip audio delay when the far end echoes: the received audio laid out by RTP timestamp and
placed by arrival time, cross-correlated with what was sent. Pure numpy over what the RTP session
kept; the caller runs it in a thread (it takes milliseconds, and other calls' packets keep coming)."""

from __future__ import annotations

import numpy as np


def received_signal(rx_audio: list[tuple[float, int, int, bytes]], pt: int, coder) -> tuple[np.ndarray, float | None]:
    """Received audio of payload type `pt` laid out by RTP timestamp (as a jitter buffer plays it) at
    the coder's audio rate (G.722: 16 kHz on its 8000 Hz clock), decoded in order by a decoder of
    its own, and the time of its sample 0: the median of arrival minus media time over the packets."""
    audio = [(t, ts, p) for t, ts, kind, p in rx_audio if kind == pt and p]
    if not audio or coder is None:
        return np.zeros(0, np.int16), None
    clock, rate = coder.clock_rate, coder.rate
    ts = np.array([a[1] for a in audio], np.int64)
    steps = (np.diff(ts) + (1 << 31)) % (1 << 32) - (1 << 31)
    off = np.concatenate(([0], np.cumsum(steps)))
    off -= off.min()
    arrival = np.array([a[0] for a in audio])
    t0 = float(np.median(arrival - off / clock))  # a packet leaves at its first sample's time (our sender)
    if off.max() > clock * 3600:
        return np.zeros(0, np.int16), None
    decoder = coder.decoder()
    pcm = [decoder.decode(payload) for _, _, payload in audio]
    at = off * rate // clock  # sample positions
    out = np.zeros(int(max(a + len(x) for a, x in zip(at.tolist(), pcm))), np.int16)
    for a, x in zip(at.tolist(), pcm):
        out[a:a + len(x)] = x
    return out, t0


def audio_rtt_ms(sent: np.ndarray, sent_at: float | None, got: np.ndarray, got_at: float | None,
                 rate: int = 8000, max_ms: float = 2000.0) -> float | None:
    """RTT = (got_at - sent_at) + L, L the content lag at the cross-correlation peak between the sent
    signal and the received one. None when the peak is weak (normalised correlation < 0.5: the far
    end does not echo) or either signal is shorter than 0.2 s."""
    if got_at is None or sent_at is None or len(sent) < rate // 5 or len(got) < rate // 5:
        return None
    n = min(len(sent), len(got), rate * 8)
    a = sent[:n].astype(np.float64)
    b = got[:n].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate((np.arange(0, n), np.arange(-n + 1, 0)))
    vals = np.concatenate((corr[:n], corr[size - n + 1:]))
    k = int(np.argmax(vals))
    lag = int(lags[k])
    lo, hi = max(0, lag), min(n, n + lag)  # overlap: b[j] ~ a[j - lag]
    seg_b, seg_a = b[lo:hi], a[lo - lag:hi - lag]
    norm = np.sqrt(np.dot(seg_a, seg_a) * np.dot(seg_b, seg_b))
    if norm <= 0 or vals[k] / norm < 0.5:
        return None
    rtt = (got_at - sent_at) * 1000.0 + lag * 1000.0 / rate
    return round(rtt, 2) if 0 <= rtt <= max_ms else None


def session_rtt_ms(session) -> float | None:
    """The round trip of an RTP session's own audio (agent/rtpsession.RtpSession)."""
    got, t0 = received_signal(session.rx_audio, session.pt, session.coder)
    rate = session.coder.rate if session.coder else 8000
    return audio_rtt_ms(session.sent_signal(rate * 8), session.tx_start, got, t0, rate)
