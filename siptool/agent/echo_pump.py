"""Echoed media off the event loop: one thread, epoll over every echo call's RTP socket.

asyncio costs some 25 µs a datagram here (selector, transport, protocol callback); a plain epoll loop
with non-blocking recvfrom/sendto costs a fraction of that, which is what lets `siptool echo` carry
hundreds of concurrent G.711 calls on two cores (bench/echo_capacity.py). SIP and RTCP stay on the
event loop; each packet is handed to its session's `pump_packet` (agent/media.py), in this thread.
"""

from __future__ import annotations

import os
import select
import socket
import threading

BURST = 64  # datagrams read from one socket before the next one gets its turn


class EchoPump:
    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._sessions: dict[int, tuple[socket.socket, object]] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._thread: threading.Thread | None = None

    def add(self, sock: socket.socket, session) -> None:
        sock.setblocking(False)
        self._sessions[sock.fileno()] = (sock, session)
        self._epoll.register(sock.fileno(), select.EPOLLIN)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="siptool-echo-pump", daemon=True)
            self._thread.start()

    def remove(self, sock: socket.socket) -> None:
        """Stop echoing on `sock` (call before closing it)."""
        fd = sock.fileno()
        if fd < 0:
            return
        self._sessions.pop(fd, None)
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=2)
            self._thread = None
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _run(self) -> None:
        poll, sessions, wake = self._epoll.poll, self._sessions, self._wake_r
        while True:
            try:
                events = poll()
            except (OSError, ValueError):  # closed under us
                return
            for fd, _ in events:
                if fd == wake:
                    return
                entry = sessions.get(fd)
                if entry is None:
                    continue
                sock, session = entry
                recv, handle = sock.recvfrom, session.pump_packet
                for _ in range(BURST):
                    try:
                        data, addr = recv(2048)
                    except OSError:  # EAGAIN: drained; EBADF: closed meanwhile
                        break
                    handle(data, addr, sock)
