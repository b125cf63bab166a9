"""One RTP/RTCP port pair shared by every call of an echo agent, echoed in batches off the event loop.

Like SIPp's -rtp_echo, every answer announces the same media port; a thread receives up to 64
datagrams per system call and sends them back to their sources in one more (agent/mmsg.py), which is
what lets `siptool echo` carry as many concurrent G.711 calls as SIPp does (bench/echo_capacity.py).
Echoing needs no demultiplexing: each packet goes back where it came from. Each call's counts and
latched address (for its RTCP) come from the source addresses, tallied every 0.25 s: a source is the
call that announced it in SDP, else (NAT) the oldest answered call that has had no media yet.
RTCP (on PORT+1, or multiplexed on PORT) goes to the call on the event loop.

SRTP calls (RFC 3711) cannot be echoed that way: the caller's packets are protected with the
caller's key, and what goes back must be protected with the echo's own (a key per direction; the
caller could not authenticate its own cipher text). While an SRTP call is up, each batch goes
through `_mixed`: a packet from an SRTP call's source is decrypted and protected again with that
call's keys (agent/sdes.Protection.echo: a few microseconds of libsrtp and some Python per packet,
bench/echo_capacity.py measures the cost); the rest are echoed as they came. A source belongs to
an SRTP call when its SDP announced it, or (NAT) when that call's key authenticates its first
packet: only the right key does, so no source is ever given to the wrong call.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import threading
import time

import numpy as np

from ..errors import SiptoolError
from . import mmsg
from .clock import stamp

RING = 1 << 15  # source addresses kept between tallies
TALLY = 0.25  # seconds
_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    from .media import _bind_pair as any_pair

    if not port:
        return any_pair(host)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    a, b = socket.socket(fam, socket.SOCK_DGRAM), socket.socket(fam, socket.SOCK_DGRAM)
    try:
        a.bind((host, port))
        b.bind((host, port + 1))
    except OSError as exc:
        a.close()
        b.close()
        raise SiptoolError(f"cannot use media ports {port}/{port + 1} on {host}: {exc.strerror}") from None
    return a, b


def _echoable() -> np.ndarray:
    """Indexed by a datagram's first two bytes (native uint16): True for RTP to echo. Not echoed:
    other versions than 2, and RTCP multiplexed on the RTP port (RFC 5761 4: second byte 192-223)."""
    ok = np.zeros(1 << 16, bool)
    for b0 in range(0x80, 0xC0):
        for b1 in (*range(0, 192), *range(224, 256)):
            ok[int.from_bytes(bytes((b0, b1)), sys.byteorder)] = True
    return ok


def _keys(rows: np.ndarray) -> np.ndarray:
    """One 64-bit key per source address (as the tally computes it)."""
    return rows[:, 0] ^ (rows[:, 1] * _K1) ^ (rows[:, 2] * _K2)


def _address(row: np.ndarray) -> tuple[str, int]:
    raw = row.tobytes()
    port = int.from_bytes(raw[2:4], "big")
    if int.from_bytes(raw[0:2], sys.byteorder) == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return socket.inet_ntop(socket.AF_INET, raw[4:8]), port


class EchoPort:
    def __init__(self, host: str, port: int = 0) -> None:
        self._sock, self._rtcp_sock = _bind_pair(host, port)
        self.port = self._sock.getsockname()[1]
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        # blocking with kernel timeouts (not Python's settimeout, which makes the fd non-blocking):
        # the thread looks at its stop flag every 0.2 s; a full send buffer drops after 10 ms
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200_000))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 10_000))
        self.rtcp: asyncio.DatagramTransport | None = None
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, int], object] = {}  # RTP source -> session
        self._by_key: dict[int, object] = {}  # the same, by the tally's address key
        self._waiting: dict[object, None] = {}  # answered, no media yet: latch candidates, oldest first
        self._secure: dict[object, object] = {}  # SRTP calls: session -> its agent/sdes.Protection
        self._secure_keys: dict[int, tuple] = {}  # tally key of an SRTP call's source -> (session, protection)
        self._secure_waiting: dict[object, None] = {}  # SRTP calls with no source yet, oldest first
        self._plain: dict[int, int] = {}  # tally key -> the _generation it was found to be no SRTP call's
        self._generation = 0  # SRTP calls announced so far
        self._ring = np.empty((RING, mmsg.NAME // 8), np.uint64)
        self._fill = 0
        self._stop = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.unmatched = 0  # packets echoed from a source no call could be matched to

    async def start(self) -> "EchoPort":
        from .media import KernelTimed

        self._loop = asyncio.get_running_loop()
        self.rtcp = KernelTimed(self._rtcp_sock, self._on_rtcp)
        self._thread = threading.Thread(target=self._run, name="siptool-echo-port", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        self._sock.close()
        if self.rtcp is not None:
            self.rtcp.close()

    # --- calls (event loop) ------------------------------------------------------------------

    def announce(self, session, addr: tuple[str, int], secure=None) -> None:
        """`session` expects RTP from `addr` (its SDP); `secure`: its agent/sdes.Protection (SRTP)."""
        with self._lock:
            self._sessions[addr] = session
            if secure is None:
                self._waiting[session] = None
            else:
                self._secure[session] = secure
                self._secure_waiting[session] = None
                self._generation += 1

    def remove(self, session) -> None:
        """The call ended: its counts are brought up to date, then it is forgotten."""
        with self._lock:
            self._tally()
            for addr in [a for a, s in self._sessions.items() if s is session]:
                del self._sessions[addr]
            for key in [k for k, s in self._by_key.items() if s is session]:
                del self._by_key[key]
            self._waiting.pop(session, None)
            if self._secure.pop(session, None) is not None:
                for key in [k for k, (s, _) in self._secure_keys.items() if s is session]:
                    del self._secure_keys[key]
                self._secure_waiting.pop(session, None)

    def _on_rtcp(self, data: bytes, addr, now: float) -> None:
        session = self._sessions.get((addr[0], addr[1] - 1))  # RTCP comes from RTP port + 1
        if session is not None:
            session.receive_rtcp(data, addr, now)

    def _on_mux(self, data: bytes, addr) -> None:
        session = self._sessions.get(addr)
        if session is not None:
            session.receive_rtcp(data, addr, stamp())

    # --- echo thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        batch, fd = mmsg.Batch(self._sock.family), self._sock.fileno()
        ok = _echoable().tobytes()
        heads, lengths, names = batch.data.view(np.uint16)[:, 0], batch.lengths, batch.names
        next_tally = time.monotonic() + TALLY
        while not self._stop:
            try:
                n = batch.recv(fd)
            except OSError:  # closed
                return
            if n:
                # plain Python over a few slots costs less than numpy's per-call overhead
                # sources are kept before the echo goes out, so that a call's end (remove) that
                # its caller sends after hearing the echo always finds them counted
                if self._secure:
                    good = np.frombuffer(ok, bool)[heads[:n]] & (lengths[:n] >= 12)
                    self._mixed(batch, fd, n, good)
                elif min(lengths[:n].tolist()) >= 12 and all(ok[h] for h in heads[:n].tolist()):
                    self._keep(names[:n])
                    batch.send(fd, 0, n)
                else:
                    good = np.frombuffer(ok, bool)[heads[:n]] & (lengths[:n] >= 12)
                    self._odd(batch, fd, n, good)
            if time.monotonic() >= next_tally:
                with self._lock:
                    self._tally()
                next_tally = time.monotonic() + TALLY

    def _odd(self, batch: mmsg.Batch, fd: int, n: int, good: np.ndarray, send: np.ndarray | None = None,
             tallied: np.ndarray | None = None) -> None:
        """A batch with something not to echo: echo the runs of RTP around it, hand RTCP to the loop.
        `send`: the packets to echo (default: `good`, those left out were dropped); `tallied`: whose
        sources the tally counts (default: `good`)."""
        self._keep(batch.names[:n][good if tallied is None else tallied])
        send = good if send is None else send
        start = 0
        for i in np.flatnonzero(~send).tolist():
            batch.send(fd, start, i)
            start = i + 1
            if good[i]:
                continue
            size = int(batch.lengths[i])
            data = batch.data[i, :size].tobytes()
            if size >= 8 and data[0] >> 6 == 2 and self._loop is not None:
                self._loop.call_soon_threadsafe(self._on_mux, data, _address(batch.names[i]))
        batch.send(fd, start, n)

    def _mixed(self, batch: mmsg.Batch, fd: int, n: int, good: np.ndarray) -> None:
        """A batch while SRTP calls are up: their packets are decrypted and protected again with
        the echo's key for the call (dropped when they fail: counted by the call's context); the
        others are echoed as they came and tallied."""
        send, plain = good.copy(), good.copy()
        keys = _keys(batch.names[:n]).tolist()
        echoed: dict = {}
        for i in np.flatnonzero(good).tolist():
            owner, out = self._secure_keys.get(keys[i]), None
            if owner is None and self._plain.get(keys[i]) != self._generation:
                owner, out = self._claim(keys[i], batch, i)
            if owner is None:
                continue
            plain[i] = False
            session, protection = owner
            if out is None:
                out = protection.echo(batch.data[i, :int(batch.lengths[i])].tobytes())
            if out is None or len(out) > mmsg.SLOT:
                send[i] = False
                continue
            batch.data[i, :len(out)] = np.frombuffer(out, np.uint8)
            batch.out_lengths[i] = len(out)
            echoed[session] = echoed.get(session, 0) + 1
        self._odd(batch, fd, n, good, send, plain)
        if echoed:
            with self._lock:
                for session, count in echoed.items():
                    session.echoed += count

    def _claim(self, key: int, batch: mmsg.Batch, i: int):
        """Whose SRTP call a new source is: the one its SDP announced (if an SRTP call), else the
        waiting SRTP call whose key authenticates its packet (NAT). Returns ((session, protection),
        the packet echoed by that trial or None), or (None, None): not an SRTP call's source."""
        addr = _address(batch.names[i])
        owner = out = None
        with self._lock:
            session = self._sessions.get(addr)
            if session in self._secure:
                owner = (session, self._secure[session])
            else:
                data = batch.data[i, :int(batch.lengths[i])].tobytes()
                for session in self._secure_waiting:
                    out = self._secure[session].echo(data, count=False)
                    if out is not None:
                        owner = (session, self._secure[session])
                        break
            if owner is None:
                if len(self._plain) >= RING:
                    self._plain.clear()
                self._plain[key] = self._generation
                return None, None
            self._secure_keys[key] = owner
            self._secure_waiting.pop(owner[0], None)
            self._sessions[addr] = owner[0]  # (its RTCP comes from the port after)
            owner[0].latch(addr)  # its RTCP goes where its media comes from (RFC 4961)
        return owner, out

    def _keep(self, names: np.ndarray) -> None:
        with self._lock:
            if self._fill + len(names) > RING:
                self._tally()
            self._ring[self._fill:self._fill + len(names)] = names
            self._fill += len(names)

    def _tally(self) -> None:
        """(lock held) Add the kept sources to their calls' counts, latching new sources."""
        if not self._fill:
            return
        rows = self._ring[:self._fill]
        self._fill = 0
        # one 64-bit key per address: family, port and IPv4 address are the first 8 bytes; IPv6's
        # address (bytes 8-23) is folded in (a collision would only misplace a count, not an echo)
        keys, first, counts = np.unique(_keys(rows), return_index=True, return_counts=True)
        unknown = []
        for key, i, count in zip(keys.tolist(), first.tolist(), counts.tolist()):
            session = self._by_key.get(key)
            if session is not None:
                session.echoed += count
            else:
                session = self._sessions.get(_address(rows[i]))
                if session is None:
                    unknown.append((key, i, count))  # latched below, once known sources are placed
                else:
                    self._place(key, session, count)
        for key, i, count in unknown:
            session = self._latch(_address(rows[i]))
            if session is None:
                self.unmatched += count
            else:
                self._place(key, session, count)

    def _place(self, key: int, session, count: int) -> None:
        """A source seen for the first time belongs to `session` from now on."""
        self._by_key[key] = session
        self._waiting.pop(session, None)
        session.latched = True  # its media came from where its SDP said: RTCP may go there now
        session.echoed += count

    def _latch(self, addr: tuple[str, int]):
        """A source nobody announced (NAT): the oldest waiting call from the same host, else the oldest."""
        if not self._waiting:
            return None
        session = next((s for s in self._waiting if s.remote and s.remote[0] == addr[0]), next(iter(self._waiting)))
        self._sessions[addr] = session
        session.latch(addr)
        return session
