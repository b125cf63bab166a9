"""The HEP receive driver: sockets -> HepReceiver -> (capture point, Packet) for the analysis.

`HepListener` binds UDP (and TCP) on an address; `run(sink, stop)` moves every message into
`sink(point, packet)` until `stop()` is true. It only moves bytes: decoding, agent keys and
refusals are the sans-I/O HepReceiver's (hep.py). TCP streams are framed by HepFramer; a stream
that loses HEP framing is closed (counted as malformed). Bounded: MAX_CONNECTIONS TCP clients,
one 64 KB message held per client.
"""

from __future__ import annotations

import selectors
import socket
from typing import Callable

from ..errors import SiptoolError
from .decode import Packet
from .hep import HepError, HepFramer, HepReceiver, parse_address

MAX_CONNECTIONS = 256
POLL_S = 0.2  # how often `stop` is asked
RECV = 65535
RCVBUF = 4 << 20  # asked for; the kernel caps it at net.core.rmem_max


class HepListener:
    """HEP over UDP and TCP on one address (`udp:HOST:PORT` listens on UDP only, `tcp:` on TCP
    only, `HOST:PORT` on both)."""

    def __init__(self, address: str, receiver: HepReceiver | None = None) -> None:
        try:
            transport, host, port = parse_address(address, listen=True)
        except HepError as exc:
            raise SiptoolError(str(exc)) from None
        both = address[:4].lower() not in ("udp:", "tcp:")
        self.receiver = receiver or HepReceiver()
        self.selector = selectors.DefaultSelector()
        self.udp = self.tcp = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            if transport == "udp" or both:
                self.udp = socket.socket(family, socket.SOCK_DGRAM)
                self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)  # agents send in bursts
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
        self._clients: dict[socket.socket, tuple[HepFramer, str]] = {}

    def run(self, sink: Callable[[str, Packet], None], stop: Callable[[], bool]) -> None:
        """Receive until stop() is true (asked at least every POLL_S)."""
        while not stop():
            for key, _ in self.selector.select(POLL_S):
                sock = key.fileobj
                if sock is self.udp:
                    self._datagrams(sink)
                elif sock is self.tcp:
                    self._accept()
                else:
                    self._stream(sock, sink)

    def _datagrams(self, sink) -> None:
        receive = self.receiver.receive
        for _ in range(1024):  # then let the others speak
            try:
                data, sender = self.udp.recvfrom(RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error queued on the socket
                continue
            got = receive(data, f"{sender[0]}:{sender[1]}")
            if got is not None:
                sink(*got)

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

    def _stream(self, conn: socket.socket, sink) -> None:
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
        for message in messages:
            got = self.receiver.receive(message, peer)
            if got is not None:
                sink(*got)
        if not data:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self.selector.unregister(conn)
        conn.close()
        del self._clients[conn]

    def close(self) -> None:
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
