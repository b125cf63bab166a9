"""The HEP receive driver: sockets -> HepReceiver -> packets (each with its capture point).

`HepListener` binds UDP (and TCP) on an address. Iterate it for the packets received (and `None`
when nothing arrived for POLL_S, so that a live run can look at its clock) until `stop()`, as
drivers/live.py reads any source; or `run(sink, stop)` hands every packet to `sink(packet)` until
`stop()` is true, and a sink that raises is counted (`sink_errors`), never the end of the
listener. It only moves bytes: decoding, agent keys and refusals are the sans-I/O HepReceiver's
(hep.py). TCP streams are framed by HepFramer; a stream that loses HEP framing is closed (counted
as malformed). Bounded: MAX_CONNECTIONS TCP clients, one 64 KB message held per client.

Datagrams the kernel dropped because the UDP receive buffer was full (agents send in bursts, the
analysis fell behind) are `drops`: the socket's own count (SO_MEMINFO, SK_MEMINFO_DROPS; Linux).
"""

from __future__ import annotations

import selectors
import socket
import struct
from typing import Callable, Iterator

from ..errors import SiptoolError
from .hep import HepError, HepFramer, HepPacket, HepReceiver, parse_address

MAX_CONNECTIONS = 256
POLL_S = 0.2  # how often `stop` is asked
RECV = 65535
RCVBUF = 4 << 20  # asked for; the kernel caps it at net.core.rmem_max
BATCH = 1024  # datagrams read from the UDP socket before the TCP clients get their turn
SO_MEMINFO, SK_MEMINFO_DROPS = 55, 8  # Linux: include/uapi/linux/sock_diag.h
_MEMINFO = struct.Struct("=9I")


class HepListener:
    """HEP over UDP and TCP on one address (`udp:HOST:PORT` listens on UDP only, `tcp:` on TCP
    only, `HOST:PORT` on both)."""

    def __init__(self, address: str, receiver: HepReceiver | None = None, rcvbuf: int = RCVBUF) -> None:
        try:
            transport, host, port = parse_address(address, listen=True)
        except HepError as exc:
            raise SiptoolError(str(exc)) from None
        both = address[:4].lower() not in ("udp:", "tcp:")
        self.receiver = receiver or HepReceiver()
        self.selector = selectors.DefaultSelector()
        self.udp = self.tcp = None
        self._clients: dict[socket.socket, tuple[HepFramer, str]] = {}
        self._drops = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            if transport == "udp" or both:
                self.udp = socket.socket(family, socket.SOCK_DGRAM)
                self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # agents send in bursts
                self.udp.bind((host, port))
                self.udp.setblocking(False)
                self.selector.register(self.udp, selectors.EVENT_READ, None)
            if transport == "tcp" or both:
                self.tcp = socket.socket(family, socket.SOCK_STREAM)
                self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.tcp.bind((host, port))
                self.tcp.listen(64)
                self.tcp.setblocking(False)
                self.selector.register(self.tcp, selectors.EVENT_READ, None)
        except OSError as exc:
            self.close()
            raise SiptoolError(f"cannot listen for HEP on {address}: {exc.strerror or exc}") from None
        self.address = (self.udp or self.tcp).getsockname()[:2]
        self.sink_errors = 0
        self.first_sink_error = ""
        self._stopped = False

    def __iter__(self) -> Iterator[HepPacket | None]:
        """Packets as they arrive, `None` after each wait (at most POLL_S), until stop()."""
        self._stopped = False
        while not self._stopped:
            for key, _ in self.selector.select(POLL_S):
                sock = key.fileobj
                if sock is self.udp:
                    yield from self._datagrams()
                elif sock is self.tcp:
                    self._accept()
                elif sock in self._clients:
                    yield from self._stream(sock)
            yield None

    @property
    def drops(self) -> int:
        """UDP datagrams the kernel dropped on this socket so far (its receive buffer was full); 0 where
        the system cannot tell."""
        if self.udp is None or self.udp.fileno() < 0:
            return self._drops
        try:
            self._drops = _MEMINFO.unpack(self.udp.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size))[
                SK_MEMINFO_DROPS]
        except (OSError, struct.error):
            pass
        return self._drops

    def stop(self) -> None:
        """End the iteration after the messages already read (safe from a signal handler)."""
        self._stopped = True

    def run(self, sink: Callable[[HepPacket], None], stop: Callable[[], bool]) -> None:
        """Receive until stop() is true (asked at least every POLL_S), each packet to `sink`."""
        for pkt in self:
            if pkt is not None:
                try:
                    sink(pkt)
                except Exception as exc:  # noqa: BLE001 - one packet the sink cannot take is not the end
                    self.sink_errors += 1
                    self.first_sink_error = self.first_sink_error or f"{type(exc).__name__}: {exc}"
            if stop():
                self.stop()

    def _datagrams(self) -> Iterator[HepPacket]:
        receive = self.receiver.receive
        for _ in range(BATCH):  # then let the others speak
            try:
                data, sender = self.udp.recvfrom(RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error queued on the socket
                continue
            got = receive(data, f"{sender[0]}:{sender[1]}")
            if got is not None:
                yield got

    def _accept(self) -> None:
        try:
            conn, peer = self.tcp.accept()
        except OSError:
            return
        if len(self._clients) >= MAX_CONNECTIONS:
            conn.close()
            return
        conn.setblocking(False)
        self._clients[conn] = (HepFramer(), f"{peer[0]}:{peer[1]}")
        self.selector.register(conn, selectors.EVENT_READ, None)

    def _stream(self, conn: socket.socket) -> Iterator[HepPacket]:
        framer, peer = self._clients[conn]
        try:
            data = conn.recv(RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        messages: list[bytes] = []
        try:
            messages = framer.feed(data) if data else []
        except HepError as exc:
            self.receiver.unreadable(str(exc), peer)
            data = b""
        if not data:
            self._drop(conn)
        for message in messages:
            got = self.receiver.receive(message, peer)
            if got is not None:
                yield got

    def _drop(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        conn.close()
        del self._clients[conn]

    def close(self) -> None:
        self._drops = self.drops  # the last count, kept once the socket is closed
        for conn in list(self._clients):
            self._drop(conn)
        for sock in (self.udp, self.tcp):
            if sock is not None:
                try:
                    self.selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
                sock.close()
        self.selector.close()

    def __enter__(self) -> "HepListener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
