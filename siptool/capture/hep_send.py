"""The HEP send driver: captured packets -> HEP v3 messages to a collector (Homer, heplify-server,
sngrep -L, siptool), over UDP or TCP.

Sending never stops a capture: a message that cannot be sent (collector down, TCP reset) is
counted in `failed`, and TCP reconnects at most once a second. The auth key comes from the
caller (read from the environment or a file by the command), is sent in every message as HEP
requires, and never printed.
"""

from __future__ import annotations

import socket
import time

from ..errors import SiptoolError
from .decode import Packet
from .hep import HepError, ProtocolType, encode, from_packet, parse_address

RECONNECT_S = 1.0


class HepSender:
    """Send packets as HEP to `address` (`udp:HOST:PORT`, `tcp:HOST:PORT`; UDP when not said)."""

    def __init__(self, address: str, agent_id: int | None = None, agent_name: str | None = None,
                 auth_key: bytes | None = None) -> None:
        try:
            self.transport, host, port = parse_address(address)
        except HepError as exc:
            raise SiptoolError(str(exc)) from None
        self.address = f"{self.transport}:{host}:{port}" if ":" not in host else f"{self.transport}:[{host}]:{port}"
        try:
            info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            raise SiptoolError(f"HEP collector {address}: {exc.strerror or exc}") from None
        self.family, self.target = info[0], info[4]
        self.agent_id, self.agent_name, self._key = agent_id, agent_name, auth_key
        self.sent = self.failed = 0
        self._sock: socket.socket | None = None
        self._next_try = 0.0

    def __repr__(self) -> str:  # the key stays out of logs
        return f"HepSender({self.transport}:{self.target}, sent {self.sent}, failed {self.failed})"

    def send(self, pkt: Packet, protocol_type: int = ProtocolType.SIP, correlation_id: bytes | None = None) -> bool:
        """One packet as one HEP message; False (and counted) when it could not be sent."""
        try:
            data = encode(from_packet(pkt, protocol_type, self.agent_id, self.agent_name, self._key, correlation_id))
        except HepError:
            self.failed += 1
            return False
        sock = self._socket()
        try:
            if sock is None:
                raise OSError("not connected")
            if self.transport == "tcp":
                sock.sendall(data)
            else:
                sock.sendto(data, self.target)
        except OSError:
            self.failed += 1
            self._close()
            return False
        self.sent += 1
        return True

    def _socket(self) -> socket.socket | None:
        if self._sock is not None:
            return self._sock
        now = time.monotonic()
        if now < self._next_try:
            return None
        self._next_try = now + RECONNECT_S
        kind = socket.SOCK_STREAM if self.transport == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(self.family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.settimeout(RECONNECT_S)
                sock.connect(self.target)
        except OSError:
            sock.close()
            return None
        self._sock = sock
        return sock

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "HepSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
