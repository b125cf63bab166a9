"""An RTP session, sans-I/O (RFC 3550, RFC 3551, RFC 4733, RFC 4961): datagrams and the clock go in,
datagrams and events come out. media.py moves them through sockets; tests move them in memory.

    s.receive_rtp(data, addr, now), s.receive_rtcp(data, addr, now)
    s.handle_timer(now)              at (or after) s.next_timer()
    s.datagrams_to_send()            [(bytes, addr, is_rtcp)]
    s.events                         [MediaStopped | MediaResumed], each with the time it happened

Sending is a packetiser: one frame per ptime, the RTP timestamp advancing by the codec's clock
(rtp/codecs.py through the coder), RFC 4733 digits in between (2.5: 100 ms a digit, the end packet
three times). Receiving is StreamStats (rtp/stats.py), the statistics `analyze` computes with, and
the RTCP SR/RR (6.4) carry its figures: what the far end's SBC reads is what the agent measured.
The source of the first RTP packet is where media and RTCP go from then on (symmetric RTP, RFC 4961).

A codec is a coder object (rtp/codecs.coder: `name`, `clock_rate` for timestamps, `rate` and
`frame_samples` for audio, `frame_ticks`, `encode(pcm)`, `decode(payload)`): G.711, G.722 (16 kHz
audio on an 8000 Hz clock, RFC 3551 4.5.2) and Opus (48 kHz, RFC 7587) alike. The signal to send is
at the coder's audio rate. `protect`/`unprotect`, when given, transform every RTP/RTCP packet
on its way out and in (where SRTP, RFC 3711, goes: agent/sdes.Protection); an echo session with them
decrypts each packet and protects it again with its own key (a key per direction), never sending
the caller's cipher text back.
"""

from __future__ import annotations

import random
from typing import Callable

import numpy as np

from ..rtp.packet import (DTMF_EVENTS, ReportBlock, build_bye, build_rr, build_rtp, build_sdes, build_sr,
                          build_telephone_event, is_rtcp, ntp_middle, parse_rtcp, parse_rtp, round_trip_ms)
from ..rtp.stats import StreamStats
from .events import MediaResumed, MediaStopped, PromptsDone, Said
from .transport import sendable

Addr = tuple[str, int]
PTIME = 0.020
NTP_EPOCH = 2208988800
DTMF_PACKETS = 5  # a digit: 100 ms of telephone-event (RFC 4733 2.5), then
DTMF_GAP = 2  # 40 ms of audio before the next one
# a digit's duration counts telephone-event/8000's clock (what agent/sdp.py offers, RFC 4733 2.3.5),
# whatever the audio's: 160 per 20 ms packet; its timestamp is the audio's, as the stream's
EVENT_TICKS = 160
TAIL_GRACE = 0.2  # s: media may stop this long before the end of the call (packets in flight)
RTCP_FIRST = 0.5  # s after the start: the first report
ECHO_RTCP_S = 5.0  # an echo session's RTCP interval (RFC 3550 6.2, randomised 0.5-1.5)


def dtmf_seconds(digits: int, start: float) -> float:
    """Seconds of media the sender needs to send `digits` RFC 4733 digits from `start` on."""
    return start + PTIME * (digits * (DTMF_PACKETS + DTMF_GAP) - DTMF_GAP) if digits else 0.0


class RtpSession:
    """One audio stream pair. `echo=True`: every RTP packet goes back to where it came from, and only
    tallies are kept (the echo agent's per-call mode; its shared port does the same in a thread)."""

    def __init__(self, coder=None, *, echo: bool = False, cname: str = "siptool", gap_s: float | None = None,
                 keep_audio_s: float | None = 10.0, rng: random.Random | None = None,
                 protect: Callable[[bytes], bytes] | None = None,
                 unprotect: Callable[[bytes], bytes | None] | None = None) -> None:
        self.rng = rng or random.Random()
        self.coder = coder
        self.echo = echo
        self.cname = cname
        self.gap_s = gap_s  # say when the far end's RTP stops this long (None: do not watch)
        self.keep_audio_s = keep_audio_s  # received payloads kept for correlation (None: all, to record)
        self.protect, self.unprotect = protect, unprotect
        self.pt = 0
        self.dtmf_pt: int | None = 101
        self.remote: Addr | None = None
        self.remote_rtcp: Addr | None = None
        self.latched = False
        self.ssrc = self.rng.getrandbits(32)
        self.stats = StreamStats(8000)
        self.rx_ssrc: int | None = None
        self.rx_packets = 0
        self.rx_first: float | None = None
        self.rx_last: float | None = None
        self.rx_ptime = PTIME  # the far end's packet interval (its SDP a=ptime, else 20 ms)
        self.rx_audio: list[tuple[float, int, int, bytes]] = []  # (arrival, ts, pt, payload)
        self.media_start: float | None = None  # when our media (and so the call's) began
        self.tx_start: float | None = None  # time of the first audio sample sent
        self.tx_end: float | None = None  # when the sender stopped
        self.tx_packets = 0
        self.tx_octets = 0
        self.dtmf_sent = ""
        self.echoed = 0
        self.last_sr: tuple[int, float] | None = None  # (LSR middle 32 bits, arrival time)
        self.rtcp_rtt_ms: float | None = None
        self.far_report: ReportBlock | None = None  # the far end's last report block about our stream
        self.far_reports = 0
        self.rtcp_rx = 0
        self.events: list[tuple[float, object]] = []
        self.closed = False
        self._reported = (0, 0)  # (expected, received) at the last report, for its fraction lost (A.3)
        self._out: list[tuple[bytes, Addr, bool]] = []
        self._signal = np.zeros(0, np.int16)
        self.source = None  # a script or voice agent whose speaker the sender plays (start)
        self.listener = None  # agent/listener.Listener following the far end's speech, when set
        self._said = 0  # the source's clips already told as Said events
        self._next_send: float | None = None
        self._next_rtcp: float | None = None
        self._quiet = False
        self._sender: dict = {}

    @property
    def codec(self) -> str:
        return self.coder.name if self.coder is not None else ""

    @property
    def frame_samples(self) -> int:
        """Audio samples per packet (at the coder's audio rate)."""
        return self.coder.frame_samples if self.coder is not None else int(round(8000 * PTIME))

    @property
    def frame_ticks(self) -> int:
        """RTP timestamp units per packet (the codec's clock)."""
        return self.coder.frame_ticks if self.coder is not None else int(round(8000 * PTIME))

    # --- where media goes -----------------------------------------------------------------------

    def latch(self, addr: Addr) -> None:
        """Symmetric RTP (RFC 4961): answer where the packets come from."""
        if self.remote != addr:
            self.remote = addr
            self.remote_rtcp = (addr[0], addr[1] + 1)
        self.latched = True  # media came from there (also when that is where the SDP said)

    def set_remote(self, address: str, port: int, coder, pt: int, dtmf_pt: int | None,
                   ptime_ms: int | None = None) -> None:
        """What the SDP says: the far end's media address (checked before any use), codec and events."""
        self.coder, self.pt, self.dtmf_pt = coder, pt, dtmf_pt
        if ptime_ms and 0 < ptime_ms <= 200:
            self.rx_ptime = ptime_ms / 1000.0
        self.stats = StreamStats(coder.clock_rate if coder is not None else 8000)
        if dtmf_pt is not None:  # events keep their timestamp: out of jitter (RFC 4733 2.2.1)
            self.stats.rates[dtmf_pt] = 0
        if not self.latched and sendable((address, port)):
            self.remote = (address, port)
            self.remote_rtcp = (address, port + 1) if port < 65535 else None

    # --- in ---------------------------------------------------------------------------------------

    def receive_rtp(self, data: bytes, addr: Addr, now: float) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if is_rtcp(data):  # rtcp-mux (RFC 5761)
            self.receive_rtcp(data, addr, now)
            return
        self.latch(addr)
        if self.echo:
            if self.unprotect is not None and (data := self.unprotect(data)) is not None:
                data = self.protect(data)
            if data is None:
                return  # SRTP that fails authentication or replays: dropped (counted by the context)
            if not self.closed:
                self._out.append((data, addr, False))
            self.echoed += 1
            return  # the echo keeps counts only (its caller measures the media)
        if self.unprotect is not None and (data := self.unprotect(data)) is None:
            return
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
        if self.keep_audio_s is None or now - self.rx_first <= self.keep_audio_s:
            self.rx_audio.append((now, h.timestamp, h.payload_type,
                                  data[h.payload_offset:h.payload_offset + h.payload_length]))
        if self.listener is not None and h.payload_type == self.pt:
            self.listener.feed(now, h.timestamp, data[h.payload_offset:h.payload_offset + h.payload_length])
        if self._quiet:
            self._quiet = False
            self.events.append((now, MediaResumed("", None)))

    def receive_rtcp(self, data: bytes, addr: Addr, now: float) -> None:
        if self.unprotect is not None and (data := self.unprotect(data)) is None:
            return
        self.rtcp_rx += 1
        for p in parse_rtcp(data):
            if p.packet_type == 200:
                self.last_sr = (p.ntp_middle, now)
            for blk in p.reports:
                if blk.ssrc == self.ssrc:  # the far end's report about our stream
                    self.far_report = blk
                    self.far_reports += 1
                    rtt = round_trip_ms(ntp_middle(now + NTP_EPOCH), blk.lsr, blk.dlsr)
                    if rtt is not None:
                        self.rtcp_rtt_ms = rtt

    # --- out --------------------------------------------------------------------------------------

    def start(self, now: float, signal: np.ndarray, duration: float | None, dtmf: str = "",
              dtmf_at: float = 1.0, source=None) -> None:
        """Start the paced sender (and RTCP): the signal (at the coder's audio rate) repeats until
        `duration` (None: until close). `source`, when given, is read instead: a script or voice
        agent (agent/script.py, agent/voice_agent.py) whose `at_frame(now, start)` comes before each
        frame and whose `samples(start, n)` gives its n samples from sample `start` on; PromptsDone
        is said once it has `finished`."""
        n = self.frame_samples
        self.media_start = self.tx_start = now
        self.source = source
        if source is not None:
            source.speaker.t0 = now  # its sample 0 is the first one sent
        self._signal = signal if len(signal) >= n else np.zeros(n, np.int16)
        self._sender = {"t0": now, "k": 0, "total": None if duration is None else int(round(duration / PTIME)),
                        "seq": self.rng.getrandbits(16), "ts0": self.rng.getrandbits(32), "digits": list(dtmf),
                        "dtmf_start": int(dtmf_at / PTIME), "event": None}
        self._next_send = now
        self.start_rtcp(now)
        self.handle_timer(now)

    def start_rtcp(self, now: float) -> None:
        self._next_rtcp = now + RTCP_FIRST

    def sent_signal(self, samples: int) -> np.ndarray:
        """The first `samples` of the audio the sender sent (the signal, repeated)."""
        if self.source is not None:
            return self.source.samples(0, samples)
        if not len(self._signal):
            return np.zeros(0, np.int16)
        return np.take(self._signal, np.arange(samples) % len(self._signal))

    def _frame(self, now: float) -> None:
        """One ptime of media: a telephone-event packet while a digit is due, else an audio frame. A
        source (a script, the voice agent) takes its steps first, at the frame's time."""
        s, n, ticks = self._sender, self.frame_samples, self.frame_ticks
        k = s["k"]
        src = self.source
        if src is not None and not src.finished:
            src.at_frame(now, k * n)
            for clip in src.placed[self._said:]:  # told at the time it starts playing
                self.events.append((src.speaker.time(clip.start),
                                    Said("", None, text=clip.label, seconds=(clip.end - clip.start) / src.speaker.rate)))
            self._said = len(src.placed)
            if src.finished:
                self.events.append((now, PromptsDone("", None)))
        ts = (s["ts0"] + k * ticks) & 0xFFFFFFFF
        if self.remote is None:
            return
        if s["event"] is None and s["digits"] and self.dtmf_pt is not None and k >= s["dtmf_start"]:
            s["event"] = (DTMF_EVENTS.index(s["digits"].pop(0)), ts, 0)
        if s["event"] is not None:
            code, ets, count = s["event"]
            count += 1
            end = count >= DTMF_PACKETS  # 100 ms tone (5 packets of 20 ms), RFC 4733 2.5
            body = build_telephone_event(code, end, 10, count * EVENT_TICKS)
            for _ in range(3 if end else 1):  # end packet sent three times (2.5.1.4)
                self._send_rtp(build_rtp(self.dtmf_pt, s["seq"], ets, self.ssrc, body, marker=(count == 1)))
                s["seq"] += 1
            s["event"] = None if end else (code, ets, count)
            if end:
                self.dtmf_sent += DTMF_EVENTS[code]
                s["dtmf_start"] = k + 1 + DTMF_GAP  # audio before the next digit
            return
        pcm = self.sent_signal_at(k * n, n)
        self._send_rtp(build_rtp(self.pt, s["seq"], ts, self.ssrc, self.coder.encode(pcm), marker=(k == 0)))
        s["seq"] += 1

    def sent_signal_at(self, start: int, n: int) -> np.ndarray:
        """The n samples the sender sends from sample `start` of its media on."""
        if self.source is not None:
            return self.source.samples(start, n)
        return np.take(self._signal, np.arange(start, start + n) % len(self._signal))

    def _send_rtp(self, pkt: bytes) -> None:
        self.tx_packets += 1
        self.tx_octets += len(pkt) - 12
        self._out.append((self.protect(pkt) if self.protect else pkt, self.remote, False))

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

    def rtcp_packet(self, now: float) -> bytes:
        """SR when sending, RR otherwise, with a report block about the received stream (RFC 3550
        6.4.1), plus SDES. Its loss, highest sequence and jitter are StreamStats' own figures."""
        blocks = []
        if self.rx_ssrc is not None and len(self.stats):
            blocks.append(self.report_block(now))
        ntp = int((now + NTP_EPOCH) * (1 << 32))
        if self.tx_packets:
            rate = self.coder.clock_rate if self.coder else 8000
            head = build_sr(self.ssrc, ntp, int((now - (self.tx_start or now)) * rate), self.tx_packets,
                            self.tx_octets, blocks)
        else:
            head = build_rr(self.ssrc, blocks)
        return head + build_sdes(self.ssrc, self.cname)

    def rtcp_open(self) -> bool:
        """Whether RTCP may go out now. The echo sends nothing to an address it has only been told
        of (a hostile SDP could name anyone's): its RTCP goes where the caller's RTP came from, once
        it has come."""
        return (not self.closed and self.remote_rtcp is not None and (self.latched or not self.echo)
                and sendable(self.remote_rtcp))

    def _send_rtcp(self, pkt: bytes) -> None:
        self._out.append((self.protect(pkt) if self.protect else pkt, self.remote_rtcp, True))

    # --- the clock --------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        due = [t for t in (self._next_send, self._next_rtcp, self._gap_due()) if t is not None]
        return min(due) if due else None

    def _gap_due(self) -> float | None:
        if self.gap_s is None or self._quiet or self.media_start is None or self.closed:
            return None
        return (self.rx_last or self.media_start) + self.gap_s

    def handle_timer(self, now: float) -> None:
        s = self._sender
        while self._next_send is not None and self._next_send <= now and not self.closed:
            self._frame(now)
            s["k"] += 1
            self.tx_end = now
            total = s["total"]
            self._next_send = None if total is not None and s["k"] >= total else s["t0"] + s["k"] * PTIME
        if self._next_rtcp is not None and self._next_rtcp <= now and not self.closed:
            if self.rtcp_open():
                self._send_rtcp(self.rtcp_packet(now))
            # RFC 3550 6.2: an echo carrying many calls reports every 5 s (randomised); a short test
            # call more often
            jitter = self.rng.random()
            self._next_rtcp = now + (ECHO_RTCP_S * (0.5 + jitter) if self.echo else 1.0 + jitter * 0.5)
        gap = self._gap_due()
        if gap is not None and gap <= now:
            self._quiet = True
            self.events.append((now, MediaStopped("", None, seconds=self.gap_s, never=self.rx_last is None)))

    @property
    def sending(self) -> bool:
        """The sender still has frames to send."""
        return self._next_send is not None

    def datagrams_to_send(self) -> list[tuple[bytes, Addr, bool]]:
        out, self._out = self._out, []
        return out

    def close(self, now: float) -> None:
        """Stop; a caller that measured the far end's stream leaves with a last report and an RTCP
        BYE (RFC 3550 6.6), so the far end's view ends with our final figures."""
        if self.closed:
            return
        if not self.echo and self.rx_ssrc is not None and self.rtcp_open():
            self._send_rtcp(self.rtcp_packet(now) + build_bye(self.ssrc))
        self.closed = True
        self._next_send = self._next_rtcp = None

    # --- what the agent alone knows, at the end ------------------------------------------------------

    def missing_at_end(self, end: float) -> int:
        """Packets the far end should have sent (at its ptime) after its last one arrived, when its
        media stopped more than TAIL_GRACE before `end` (our end of the call): RFC 3550 counts
        loss only up to the highest sequence number received, so a stream that stops is not lost."""
        if self.rx_last is None or end - self.rx_last <= TAIL_GRACE:
            return 0
        return int((end - self.rx_last) / self.rx_ptime)

    def gaps(self, end: float, min_gap: float) -> list[tuple[float, float]]:
        """Stretches of at least `min_gap` s with no RTP from the far end, from the start of our
        media to `end`, in seconds since that start (as the packets arrived)."""
        if self.media_start is None or not len(self.stats):
            return []
        t = np.concatenate(([self.media_start], np.sort(self.stats.records()["time"]), [max(end, self.media_start)]))
        d = np.diff(t)
        idx = np.flatnonzero(d >= min_gap)
        return [(round(float(t[i] - t[0]), 2), round(float(t[i + 1] - t[0]), 2)) for i in idx.tolist()]
