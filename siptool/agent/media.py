"""RTP media for the agent: a paced G.711 sender, a receiver with the same metrics as `analyze`
(siptool.rtp.stats, siptool.rtp.mos), symmetric RTP latching (RFC 4961), RFC 4733 DTMF, RTCP SR/RR
(RFC 3550 6.4) and the echo role. Round-trip audio delay is found by cross-correlating the sent
signal with the received one placed by arrival time."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import wave
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import SiptoolError
from ..rtp import g711
from ..rtp.mos import mos_for_stream
from ..rtp.packet import (DTMF_EVENTS, ReportBlock, build_bye, build_rr, build_rtp, build_sdes, build_sr,
                          build_telephone_event, is_rtcp, ntp_middle, parse_rtcp, parse_rtp, round_trip_ms)
from ..rtp.stats import StreamStats
from .stun import Binding
from .transport import sendable



PTIME = 0.020
SAMPLES = 160
NTP_EPOCH = 2208988800
ECHO_RTCP_S = 5.0  # an echo session's RTCP interval
DTMF_PACKETS = 5  # a digit: 100 ms of telephone-event (RFC 4733 2.5), then
DTMF_GAP = 2  # 40 ms of audio before the next one
TAIL_GRACE = 0.2  # s: media may stop this long before the end of the call (packets in flight)


def dtmf_seconds(digits: int, start: float) -> float:
    """Seconds of media the sender needs to send `digits` RFC 4733 digits from `start` on."""
    return start + PTIME * (digits * (DTMF_PACKETS + DTMF_GAP) - DTMF_GAP) if digits else 0.0


@dataclass
class MediaFigures:
    """One direction of a call's audio."""

    packets: int = 0
    lost: int = 0  # received direction: RFC 3550 loss plus the packets due after media stopped
    loss_pct: float = 0.0
    missing_at_end: int = 0  # packets due (at the far end's ptime) between the last one and the end
    jitter_ms: float = 0.0
    max_jitter_ms: float = 0.0  # RFC 3550 jitter's maximum over the voice packets (as analyze judges it)
    mos: float | None = None
    r: float | None = None
    source: str = ""  # "measured" (our receiver) or "rtcp" (far end's receiver report)

    @property
    def judged_jitter_ms(self) -> float:
        """The jitter the thresholds judge: measured, the voice packets' maximum; else the far end's
        RTCP figure, the only one there is for what we sent."""
        return self.max_jitter_ms if self.source == "measured" else self.jitter_ms

    def to_dict(self) -> dict:
        return asdict(self)


def load_wav(path: str) -> np.ndarray:
    """8 kHz mono 16-bit PCM WAV -> int16 samples (other formats: a clear error)."""
    try:
        with wave.open(path, "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != 8000:
                raise SiptoolError(f"{path}: need 8 kHz mono 16-bit PCM WAV (got {w.getframerate()} Hz, "
                                   f"{w.getnchannels()} ch, {8 * w.getsampwidth()} bit); convert with "
                                   "sox in.wav -r 8000 -c 1 -b 16 out.wav")
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
    except OSError as exc:
        raise SiptoolError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (wave.Error, EOFError) as exc:
        raise SiptoolError(f"{path}: not a PCM WAV file ({str(exc) or 'too short'})") from None
    if len(samples) < SAMPLES:
        raise SiptoolError(f"{path}: less than 20 ms of audio")
    return samples


def save_wav(path: str, samples: np.ndarray) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.asarray(samples, "<i2").tobytes())





class _Proto(asyncio.DatagramProtocol):
    def __init__(self, cb) -> None:
        self.cb = cb

    def datagram_received(self, data, addr) -> None:
        self.cb(data, addr[:2])

    def error_received(self, exc) -> None:
        pass


def _bind_pair(host: str) -> tuple[socket.socket, socket.socket]:
    """An even RTP port and RTP+1 for RTCP (RFC 3550 11), IPv4 or IPv6 as `host` is."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(64):
        a = socket.socket(fam, socket.SOCK_DGRAM)
        a.bind((host, 0))
        port = a.getsockname()[1]
        if port % 2 == 0 and port < 65535:
            b = socket.socket(fam, socket.SOCK_DGRAM)
            try:
                b.bind((host, port + 1))
                return a, b
            except OSError:
                b.close()
        a.close()
    raise SiptoolError(f"no free RTP/RTCP port pair on {host}")


class RtpSession:
    """One audio stream pair. `echo=True` sends every RTP packet back to where it came from."""

    def __init__(self, host: str, echo: bool = False, tap=None, shared=None) -> None:
        self.host = host
        self.echo = echo
        self.tap = tap
        self.shared = shared if echo and tap is None else None  # EchoPort: one port pair for all echo calls
        self.codec = "PCMU"
        self.pt = 0
        self.dtmf_pt: int | None = 101
        self.remote: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.latched = False
        self.ssrc = random.getrandbits(32)
        self.stats = StreamStats(8000)
        self.rx_ssrc: int | None = None
        self.rx_packets = 0
        self.rx_first: float | None = None
        self.rx_last: float | None = None
        self.rx_ptime = PTIME  # the far end's packet interval (its SDP a=ptime, else 20 ms)
        self.media_start: float | None = None  # wall-clock time our media (and so the call's) began
        self.tx_end: float | None = None  # wall-clock time the sender stopped
        self.stun = Binding()  # STUN responses arriving on the RTP port (RFC 5389)
        self.rx_audio: list[tuple[float, int, int, bytes]] = []  # (arrival, ts, pt, payload) for correlation/record
        self.keep_audio = not echo
        self.tx_packets = 0
        self.tx_octets = 0
        self.tx_start: float | None = None  # wall-clock time of the first audio sample
        self.tx_signal = np.zeros(0, np.int16)
        self.dtmf_sent = ""
        self.echoed = 0
        self.last_sr: tuple[int, float] | None = None  # (LSR middle 32 bits, arrival time)
        self.rtcp_rtt_ms: float | None = None
        self.far_report: ReportBlock | None = None
        self.rtcp_rx = 0
        self._reported = (0, 0)  # (expected, received) at the last report, for its fraction lost (A.3)
        self._rtp = self._rtcp = None
        self._tasks: list[asyncio.Task] = []
        self._dtmf: list[str] = []
        self.port = 0
        self._seq_base = random.getrandbits(16)

    async def open(self) -> "RtpSession":
        if self.shared is not None:  # the EchoPort receives and echoes; RTCP goes out of its socket
            self.port, self._rtcp = self.shared.port, self.shared.rtcp
            return self
        loop = asyncio.get_running_loop()
        a, b = _bind_pair(self.host)
        self._rtp, _ = await loop.create_datagram_endpoint(lambda: _Proto(self._on_rtp), sock=a)
        self._rtcp, _ = await loop.create_datagram_endpoint(lambda: _Proto(self._on_rtcp), sock=b)
        self.port = a.getsockname()[1]
        return self

    def _latch(self, addr) -> None:
        """Symmetric RTP (RFC 4961): answer where the packets come from."""
        if self.remote != addr:
            self.remote, self.latched = addr, True
            self.remote_rtcp = (addr[0], addr[1] + 1)

    def set_remote(self, address: str, port: int, codec: str, pt: int, dtmf_pt: int | None,
                   ptime_ms: int | None = None) -> None:
        self.codec, self.pt, self.dtmf_pt = codec.upper(), pt, dtmf_pt
        if ptime_ms and 0 < ptime_ms <= 200:
            self.rx_ptime = ptime_ms / 1000.0
        if dtmf_pt is not None:  # events keep their timestamp: out of jitter (RFC 4733 2.2.1)
            self.stats.rates[dtmf_pt] = 0
        if not self.latched and sendable((address, port)):  # the SDP's c=/m=, checked before any use
            self.remote = (address, port)
            self.remote_rtcp = (address, port + 1) if port < 65535 else None
            if self.shared is not None:
                self.shared.announce(self, self.remote)

    # --- receive ---------------------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr) -> None:
        now = time.time()
        if self.tap:
            self.tap("in", (self.host, self.port), addr, data, "udp")
        if len(data) < 12 or data[0] >> 6 != 2:
            self.stun.feed(data)
            return
        if is_rtcp(data):  # rtcp-mux (RFC 5761)
            self._on_rtcp(data, addr)
            return
        self._latch(addr)
        if self.echo:
            self._rtp.sendto(data, addr)
            self.echoed += 1
            if self.tap:
                self.tap("out", (self.host, self.port), addr, data, "udp")
            return  # the echo keeps counts only (its caller measures the media)
        h = parse_rtp(data)  # the one RTP header parser (CSRCs, extension and padding)
        if h is None:
            return
        if self.rx_ssrc is None:
            self.rx_ssrc = h.ssrc
        elif h.ssrc != self.rx_ssrc:
            return  # one stream per session; a second SSRC is not mixed into the metrics
        self.stats.add(frame=self.rx_packets, time=now, seq=h.sequence, ts=h.timestamp, pt=h.payload_type,
                       marker=int(h.marker), size=len(data))
        self.rx_packets += 1
        self.rx_last = now
        if self.rx_first is None:
            self.rx_first = now
        if self.keep_audio:
            payload = data[h.payload_offset:h.payload_offset + h.payload_length]
            self.rx_audio.append((now, h.timestamp, h.payload_type, payload))

    def _on_rtcp(self, data: bytes, addr) -> None:
        now = time.time()
        if self.tap:
            self.tap("in", (self.host, self.port + 1), addr, data, "udp")
        self.rtcp_rx += 1
        for p in parse_rtcp(data):
            if p.packet_type == 200:
                self.last_sr = (p.ntp_middle, now)
            for blk in p.reports:
                if blk.ssrc == self.ssrc:
                    self.far_report = blk
                    rtt = round_trip_ms(ntp_middle(now + NTP_EPOCH), blk.lsr, blk.dlsr)
                    if rtt is not None:
                        self.rtcp_rtt_ms = rtt

    # --- send ------------------------------------------------------------------------------------

    def start(self, signal: np.ndarray, duration: float | None, dtmf: str = "", dtmf_at: float = 1.0) -> None:
        """Start the paced sender (and RTCP). The signal repeats until `duration` (None: until stop())."""
        self.media_start = time.time()
        self._tasks.append(asyncio.ensure_future(self._sender(signal, duration, dtmf, dtmf_at)))
        self._tasks.append(asyncio.ensure_future(self._rtcp_loop()))

    async def stun_query(self, server: tuple[str, int], rto: float = 0.5) -> tuple[str, int]:
        """Our RTP socket's address as a STUN server sees it (RFC 5389), before media starts."""
        return await self.stun.query(lambda msg, to: self._rtp.sendto(msg, to), server, rto)

    def start_rtcp(self) -> None:
        self._tasks.append(asyncio.ensure_future(self._rtcp_loop()))

    async def _sender(self, signal: np.ndarray, duration: float | None, dtmf: str, dtmf_at: float) -> None:
        loop = asyncio.get_running_loop()
        n_total = None if duration is None else int(round(duration / PTIME))
        if len(signal) < SAMPLES:
            signal = np.zeros(SAMPLES, np.int16)
        reps = 1 if n_total is None else -(-n_total * SAMPLES // len(signal))
        sig = np.tile(signal, max(reps, 1))
        sig = sig[:n_total * SAMPLES] if n_total is not None else sig[:len(sig) // SAMPLES * SAMPLES]
        frames = len(sig) // SAMPLES
        payload = g711.encode(self.codec, sig)
        self.tx_signal = sig
        seq, ts0 = self._seq_base, random.getrandbits(32)
        t0 = loop.time()
        self.tx_start = time.time()
        digits = list(dtmf)
        dtmf_start = int(dtmf_at / PTIME)
        k = 0
        event: tuple | None = None  # (event code, start ts, packets so far)
        while n_total is None or k < n_total:
            k_off = k % frames
            ts = ts0 + k * SAMPLES
            if self.remote is not None:
                if event is None and digits and self.dtmf_pt is not None and k >= dtmf_start:
                    event = (DTMF_EVENTS.index(digits.pop(0)), ts, 0)
                if event is not None:
                    code, ets, n = event
                    n += 1
                    end = n >= DTMF_PACKETS  # 100 ms tone (5 packets of 20 ms), RFC 4733 2.5
                    body = build_telephone_event(code, end, 10, n * SAMPLES)
                    for _ in range(3 if end else 1):  # end packet sent three times (2.5.1.4)
                        self._send(build_rtp(self.dtmf_pt, seq, ets, self.ssrc, body, marker=(n == 1)))
                        seq += 1
                    event = None if end else (code, ets, n)
                    if end:
                        self.dtmf_sent += DTMF_EVENTS[code]
                        dtmf_start = k + 1 + DTMF_GAP  # audio before the next digit
                else:
                    chunk = payload[k_off * SAMPLES:(k_off + 1) * SAMPLES]
                    self._send(build_rtp(self.pt, seq, ts, self.ssrc, chunk, marker=(k == 0)))
                    seq += 1
            k += 1
            self.tx_end = time.time()
            delay = t0 + k * PTIME - loop.time()
            await asyncio.sleep(max(delay, 0))

    def _send(self, pkt: bytes) -> None:
        if self._rtp is None or self._rtp.is_closing() or self.remote is None:
            return
        self._rtp.sendto(pkt, self.remote)
        self.tx_packets += 1
        self.tx_octets += len(pkt) - 12
        if self.tap:
            self.tap("out", (self.host, self.port), self.remote, pkt, "udp")

    def report_block(self, now: float) -> ReportBlock:
        """The reception report about the far end's stream (RFC 3550 6.4.1, A.3, A.8), from StreamStats."""
        m = self.stats.finish()
        expected, received = max(m.expected_rfc3550, 0), m.packets
        exp_prior, rec_prior = self._reported
        self._reported = (expected, received)
        interval_lost = (expected - exp_prior) - (received - rec_prior)
        fraction = interval_lost * 256 // (expected - exp_prior) if expected > exp_prior and interval_lost > 0 else 0
        lost = max(min(m.lost_rfc3550, 0x7FFFFF), -0x800000)  # signed 24 bits
        highest = int(m.sequence.max()) if len(m.sequence) else 0
        jitter = int(round(m.last_jitter_ms * self.stats.clock_rate / 1000.0))  # in timestamp units
        lsr, dlsr = 0, 0
        if self.last_sr is not None:
            lsr = self.last_sr[0]
            dlsr = int((now - self.last_sr[1]) * 65536)
        return ReportBlock(self.rx_ssrc, min(fraction, 255), lost, highest & 0xFFFFFFFF, jitter, lsr, dlsr)

    def rtcp_packet(self) -> bytes:
        """SR when sending, RR otherwise, with a report block about the received stream (RFC 3550
        6.4.1), plus SDES. Its loss, highest sequence and jitter are StreamStats' own figures: what
        the far end's SBC reads is what `call` reports."""
        now = time.time()
        blocks = []
        if self.rx_ssrc is not None and len(self.stats):
            blocks.append(self.report_block(now))
        ntp = int((now + NTP_EPOCH) * (1 << 32))
        if self.tx_packets:
            head = build_sr(self.ssrc, ntp, int((now - (self.tx_start or now)) * 8000), self.tx_packets,
                            self.tx_octets, blocks)
        else:
            head = build_rr(self.ssrc, blocks)
        return head + build_sdes(self.ssrc, f"siptool@{self.host}")

    def _rtcp_open(self) -> bool:
        """Whether RTCP may go out now. The echo sends nothing to an address it has only been told
        of (a hostile SDP could name anyone's): its RTCP goes where the caller's RTP came from, once
        it has come."""
        return (self.remote_rtcp is not None and self._rtcp is not None and not self._rtcp.is_closing()
                and (self.latched or not self.echo) and sendable(self.remote_rtcp))

    def _send_rtcp(self, pkt: bytes) -> None:
        self._rtcp.sendto(pkt, self.remote_rtcp)
        if self.tap:
            self.tap("out", (self.host, self.port + 1), self.remote_rtcp, pkt, "udp")

    async def _rtcp_loop(self) -> None:
        await asyncio.sleep(0.5)
        while True:
            if self._rtcp_open():
                self._send_rtcp(self.rtcp_packet())
            if self.echo:  # RFC 3550 6.2: 5 s, randomised by 0.5-1.5 (an echo agent carries many calls)
                await asyncio.sleep(ECHO_RTCP_S * (0.5 + random.random()))
            else:
                await asyncio.sleep(1.0 + random.random() * 0.5)  # short interval for short test calls

    async def sending_done(self) -> None:
        if self._tasks:
            await asyncio.wait([self._tasks[0]])

    # --- results ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop; a caller that measured the far end's stream leaves with a last report and an RTCP
        BYE (RFC 3550 6.6), so the far end's view ends with our final figures."""
        for t in self._tasks:
            t.cancel()
        if not self.echo and self.rx_ssrc is not None and self._rtcp_open():
            self._send_rtcp(self.rtcp_packet() + build_bye(self.ssrc))
        if self.shared is not None:
            self.shared.remove(self)
            self._rtcp = None  # the EchoPort's, not ours to close
        for s in (self._rtp, self._rtcp):
            if s is not None:
                s.close()

    def missing_at_end(self, end: float) -> int:
        """Packets the far end should have sent (at its ptime) after its last one arrived, when its
        media stopped more than TAIL_GRACE before `end` (our end of the call): RFC 3550 counts
        loss only up to the highest sequence number received, so a stream that stops is not lost."""
        if self.rx_last is None or end - self.rx_last <= TAIL_GRACE:
            return 0
        return int((end - self.rx_last) / self.rx_ptime)

    def gaps(self, end: float, min_gap: float) -> list[tuple[float, float]]:
        """Stretches of at least `min_gap` s with no RTP from the far end, from the start of our
        media to `end`, in seconds since that start (wall clock, as the packets arrived)."""
        if self.media_start is None or not len(self.stats):
            return []
        t = np.concatenate(([self.media_start], np.sort(self.stats.records()["time"]), [max(end, self.media_start)]))
        d = np.diff(t)
        idx = np.flatnonzero(d >= min_gap)
        return [(round(float(t[i] - t[0]), 2), round(float(t[i + 1] - t[0]), 2)) for i in idx.tolist()]

    def rx_figures(self, delay_ms: float | None = None, end: float | None = None) -> MediaFigures:
        if not len(self.stats):
            return MediaFigures(source="measured")
        m = self.stats.finish()
        tail = self.missing_at_end(end) if end is not None else 0
        expected = max(m.expected_rfc3550, 1) + tail
        lost = max(m.lost_rfc3550, 0) + tail
        effective = (m.effective_loss_pct * max(m.expected_rfc3550, 1) / 100.0 + tail) * 100.0 / expected
        r, mos = mos_for_stream(self.codec, effective, delay_ms)
        return MediaFigures(packets=m.packets, lost=lost, loss_pct=round(lost * 100.0 / expected, 3),
                            missing_at_end=tail,
                            jitter_ms=round(m.mean_jitter_ms, 3), max_jitter_ms=round(m.max_voice_jitter_ms, 3),
                            mos=round(mos, 2), r=round(r, 1), source="measured")

    def tx_figures(self, delay_ms: float | None = None) -> MediaFigures:
        """Our sending direction as the far end saw it: from its RTCP receiver report when one came."""
        f = MediaFigures(packets=self.tx_packets, source="sent")
        blk = self.far_report
        if blk is not None:
            f.lost = max(blk.cumulative_lost, 0)
            f.loss_pct = round(blk.fraction_lost_pct, 2)
            f.jitter_ms = round(blk.jitter / 8.0, 3)
            r, mos = mos_for_stream(self.codec, f.loss_pct, delay_ms)
            f.mos, f.r, f.source = round(mos, 2), round(r, 1), "rtcp"
        return f

    def received_signal(self) -> tuple[np.ndarray, float | None]:
        """Received audio laid out by RTP timestamp (as a jitter buffer plays it), and the wall-clock
        time of its sample 0: the median of arrival minus media time over the packets."""
        audio = [(t, ts, pt, p) for t, ts, pt, p in self.rx_audio if pt in (0, 8) and p]
        if not audio:
            return np.zeros(0, np.int16), None
        ts = np.array([a[1] for a in audio], np.int64)
        steps = (np.diff(ts) + (1 << 31)) % (1 << 32) - (1 << 31)
        off = np.concatenate(([0], np.cumsum(steps)))
        off -= off.min()
        arrival = np.array([a[0] for a in audio])
        lens = np.array([len(a[3]) for a in audio])
        t0 = float(np.median(arrival - off / 8000.0))  # a packet leaves at its first sample's time (our sender)
        if off.max() > 8000 * 3600:
            return np.zeros(0, np.int16), None
        out = np.zeros(int((off + lens).max()), np.int16)
        for (t, _, pt, payload), o in zip(audio, off):
            out[o:o + len(payload)] = g711.decode("PCMU" if pt == 0 else "PCMA", payload)
        return out, t0

    def audio_rtt_ms(self, max_ms: float = 2000.0) -> float | None:
        """Round-trip audio delay when the far end echoes: the cross-correlation peak between the sent
        signal and the received one gives the content lag L; RTT = (t0_rx - t0_tx) + L. None when the
        peak is weak (normalised correlation < 0.5: the far end does not echo)."""
        got, t0 = self.received_signal()
        if t0 is None or self.tx_start is None or len(self.tx_signal) < 1600 or len(got) < 1600:
            return None
        n = min(len(self.tx_signal), len(got), 8000 * 8)
        a = self.tx_signal[:n].astype(np.float64)
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
        rtt = (t0 - self.tx_start) * 1000.0 + lag / 8.0
        return round(rtt, 2) if 0 <= rtt <= max_ms else None

    def record(self, path: str) -> None:
        save_wav(path, self.received_signal()[0])
