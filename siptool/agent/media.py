"""The RTP session's asyncio driver: an RTP/RTCP socket pair (RFC 3550 11: even port, RTCP on the
next), or the echo agent's shared port, the tap, STUN on the RTP socket (RFC 5389), and the session's
one timer. Everything the media does is decided in rtpsession.py; this only moves bytes and time.
WAV files for --play and --record are read and written here."""

from __future__ import annotations

import asyncio
import socket
import struct
import wave
from typing import Callable

import numpy as np

from ..errors import SiptoolError
from ..rtp.audio import resample
from .rtpsession import RtpSession
from .stun import Binding
from .clock import Deadline, stamp

MIN_PLAY_S = 0.02  # the shortest --play or --say file


def read_wav(path: str) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV file (any rate, mono or stereo: channels averaged) -> (int16 samples, rate);
    other formats: a clear error."""
    try:
        with wave.open(path, "rb") as w:
            rate, channels = w.getframerate(), w.getnchannels()
            if w.getsampwidth() != 2 or channels not in (1, 2):
                raise SiptoolError(f"{path}: need 16-bit PCM WAV, mono or stereo (got {channels} ch, "
                                   f"{8 * w.getsampwidth()} bit); convert with sox in.wav -b 16 out.wav")
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)
    except OSError as exc:
        raise SiptoolError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (wave.Error, EOFError) as exc:
        raise SiptoolError(f"{path}: not a PCM WAV file ({str(exc) or 'too short'})") from None
    if channels == 2:
        x = x[:len(x) // 2 * 2].reshape(-1, 2).mean(axis=1).astype(np.int16)
    if len(x) < rate * MIN_PLAY_S:
        raise SiptoolError(f"{path}: less than 20 ms of audio")
    return x, rate


def load_wav(path: str, rate: int = 8000) -> np.ndarray:
    """A WAV file's samples at `rate` (resampled when the file has another rate)."""
    x, have = read_wav(path)
    return resample(x, have, rate)


def save_wav(path: str, samples: np.ndarray, rate: int = 8000) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux <asm-generic/socket.h>; SCM_ the same
_TIMESPEC = struct.Struct("@qq")  # struct timespec on LP64
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
_BATCH = 64  # datagrams read per wake-up at most, so that one busy socket never starves the loop


class KernelTimed:
    """A UDP socket served by the event loop whose datagrams carry the kernel's receive time
    (SO_TIMESTAMPNS, the clock a pcap records), so that a loop busy elsewhere (a loaded machine, many
    calls) is not measured as network jitter: a datagram that waited in the socket's queue keeps the
    time it arrived. Where the option is missing, the time it is read. Sends go straight out (UDP
    does not block; a full buffer drops the datagram as a network would)."""

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, tuple, float], None]) -> None:
        self.sock = sock
        self.on_datagram = on_datagram
        self.kernel_time = False
        if _ANCILLARY:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.kernel_time = True
            except OSError:
                pass
        sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)
        self._closed = False

    def _readable(self) -> None:
        for _ in range(_BATCH):
            try:
                data, ancillary, _flags, addr = self.sock.recvmsg(65535, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP port unreachable for an earlier send and the like: not a datagram
                continue
            now = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(value)
                    now = sec + nsec * 1e-9
            self.on_datagram(data, addr[:2], stamp() if now is None else now)
            if self._closed:
                return

    def sendto(self, data: bytes, addr) -> None:
        if self._closed:
            return
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass  # a full buffer, an unreachable network: the datagram is lost, as on the wire

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


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


class RtpDriver:
    """Moves one RtpSession's datagrams. `shared` (an EchoPort): its thread receives and echoes the
    RTP (an SRTP call's with `secure`, its agent/sdes.Protection); RTCP goes out of its socket."""

    def __init__(self, host: str, session: RtpSession, tap=None, shared=None,
                 on_events: Callable[[list], None] | None = None, secure=None) -> None:
        self.host = host
        self.session = session
        self.tap = tap
        self.shared = shared
        self.secure = secure
        self.on_events = on_events  # the session's events (media stopped, back), as they happen
        self.stun = Binding()  # STUN responses arriving on the RTP port
        self.port = 0
        self._rtp = self._rtcp = None
        self._timer = Deadline(self._fire)  # the session's next deadline
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> "RtpDriver":
        self._loop = asyncio.get_running_loop()
        if self.shared is not None:
            self.port, self._rtcp = self.shared.port, self.shared.rtcp
            return self
        return await self.adopt(*_bind_pair(self.host))

    def bind(self) -> int:
        """Bind the port pair now (the SDP answer needs the port before the loop can wait); `adopt`
        them later. The shared port needs nothing."""
        self._loop = asyncio.get_running_loop()
        if self.shared is not None:
            self.port, self._rtcp = self.shared.port, self.shared.rtcp
        else:
            a, b = _bind_pair(self.host)
            self.port = a.getsockname()[1]
            self._pending = asyncio.ensure_future(self.adopt(a, b))
        return self.port

    async def adopt(self, a: socket.socket, b: socket.socket) -> "RtpDriver":
        """Serve the bound RTP and RTCP sockets `a` and `b`."""
        self._loop = asyncio.get_running_loop()
        self.port = a.getsockname()[1]
        self._rtp, self._rtcp = KernelTimed(a, self._on_rtp), KernelTimed(b, self._on_rtcp)
        if self.session.closed:  # the call ended before the sockets were served
            self._rtp.close()
            self._rtcp.close()
            self._rtp = self._rtcp = None
        return self

    def set_remote(self, address: str, port: int, coder, pt: int, dtmf_pt: int | None,
                   ptime_ms: int | None = None) -> None:
        self.session.set_remote(address, port, coder, pt, dtmf_pt, ptime_ms)
        if self.shared is not None and self.session.remote is not None:
            self.shared.announce(self.session, self.session.remote, self.secure)

    def start(self, signal: np.ndarray, duration: float | None, dtmf: str = "", dtmf_at: float = 1.0,
              source=None) -> None:
        now = stamp()
        self.session.start(now, signal, duration, dtmf, dtmf_at, source)
        self.pump(now)

    def start_rtcp(self) -> None:
        now = stamp()
        self.session.start_rtcp(now)
        self.pump(now)

    async def stun_query(self, server: tuple[str, int], rto: float = 0.5) -> tuple[str, int]:
        """Our RTP socket's address as a STUN server sees it (RFC 5389), before media starts."""
        return await self.stun.query(lambda msg, to: self._rtp.sendto(msg, to), server, rto)

    def close(self) -> None:
        self._timer.cancel()
        now = stamp()
        self.session.close(now)
        self.pump(now)
        if self.shared is not None:
            self.shared.remove(self.session)  # brings the session's count up to date
            self._rtcp = None  # the EchoPort's, not ours to close
        for s in (self._rtp, self._rtcp):
            if s is not None:
                s.close()
        self._rtp = self._rtcp = None

    # --- moving -------------------------------------------------------------------------------------

    def _on_rtp(self, data: bytes, addr, now: float) -> None:
        if self.tap:
            self.tap("in", (self.host, self.port), addr, data, "udp", now)
        if len(data) < 12 or data[0] >> 6 != 2:
            self.stun.feed(data)
            return
        self.session.receive_rtp(data, addr, now)
        self.pump(stamp())  # what it sends leaves now, not when the datagram arrived

    def _on_rtcp(self, data: bytes, addr, now: float) -> None:
        if self.tap:
            self.tap("in", (self.host, self.port + 1), addr, data, "udp", now)
        self.session.receive_rtcp(data, addr, now)

    def pump(self, now: float) -> None:
        """Send what the session queued, pass its events on, and set the timer to its next deadline."""
        for data, addr, rtcp in self.session.datagrams_to_send():
            sock = self._rtcp if rtcp else self._rtp
            if sock is None or sock.is_closing():
                continue
            sock.sendto(data, addr)
            if self.tap:
                self.tap("out", (self.host, self.port + 1 if rtcp else self.port), addr, data, "udp", now)
        if self.session.events and self.on_events is not None:
            events, self.session.events = self.session.events, []
            self.on_events(events)
        if self._loop is not None and not self.session.closed:
            self._timer.at(self.session.next_timer())

    def _fire(self, now: float) -> None:
        self.session.handle_timer(now)
        self.pump(now)
