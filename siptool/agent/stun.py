"""A minimal STUN Binding client (RFC 5389): where a NAT maps one of our UDP sockets.

Sans-I/O: `binding_request()` builds a request, `parse()` reads a response (XOR-MAPPED-ADDRESS,
15.2; MAPPED-ADDRESS, 15.1, from old servers; ERROR-CODE, 15.6). `Binding` is the client
transaction over any socket that also carries other traffic (SIP, RTP): the socket's receiver
hands each datagram to `feed()`, which takes the STUN responses it is waiting for. Requests are
retransmitted at RTO, 2*RTO, ... (7.2.1), a few times only: a test call should not wait 39.5 s.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import dataclass
from typing import Callable

from ..errors import SiptoolError
from ..status import ExitStatus

MAGIC_COOKIE = 0x2112A442  # RFC 5389 6
BINDING_REQUEST, BINDING_SUCCESS, BINDING_ERROR = 0x0001, 0x0101, 0x0111
MAPPED_ADDRESS, XOR_MAPPED_ADDRESS, ERROR_CODE = 0x0001, 0x0020, 0x0009
HEADER = struct.Struct("!HHI12s")
DEFAULT_PORT = 3478  # 18.4


class StunError(SiptoolError):
    exit_code = ExitStatus.FAILED


@dataclass(frozen=True)
class Response:
    transaction_id: bytes
    mapped: tuple[str, int] | None = None  # our address as the server saw it
    error: str | None = None  # "420 Unknown Attribute" for an error response


def is_stun(data: bytes) -> bool:
    """The first two bits are zero and the magic cookie is in place (6): never RTP (version 2) nor SIP."""
    return len(data) >= 20 and data[0] < 0x40 and int.from_bytes(data[4:8], "big") == MAGIC_COOKIE


def binding_request(transaction_id: bytes | None = None) -> tuple[bytes, bytes]:
    """(message, transaction id): a Binding request with no attributes (RFC 5389 7.1)."""
    tid = transaction_id or os.urandom(12)
    return HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, tid), tid


def _address(value: bytes, xor: bytes | None) -> tuple[str, int]:
    """MAPPED-ADDRESS layout (15.1); with `xor` (cookie + transaction id) XOR-MAPPED-ADDRESS (15.2)."""
    if len(value) < 8:
        raise StunError("STUN address attribute too short")
    family, port = value[1], int.from_bytes(value[2:4], "big")
    raw = value[4:8] if family == 1 else value[4:20]
    if family not in (1, 2) or len(raw) != (4 if family == 1 else 16):
        raise StunError(f"STUN address family {family} unknown")
    if xor is not None:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, xor))
    return socket.inet_ntop(socket.AF_INET if family == 1 else socket.AF_INET6, raw), port


def parse(data: bytes) -> Response:
    """A Binding success or error response; StunError when it is not one (or is malformed)."""
    if not is_stun(data):
        raise StunError("not a STUN message")
    mtype, length, _cookie, tid = HEADER.unpack_from(data)
    if mtype not in (BINDING_SUCCESS, BINDING_ERROR) or len(data) < 20 + length:
        raise StunError(f"not a STUN Binding response (type 0x{mtype:04x}, {len(data)} bytes)")
    attrs: dict[int, bytes] = {}
    pos, end = 20, 20 + length
    while pos + 4 <= end:
        atype, alen = struct.unpack_from("!HH", data, pos)
        attrs.setdefault(atype, data[pos + 4:pos + 4 + alen])
        pos += 4 + alen + (-alen % 4)  # attributes are padded to 32 bits (15)
    if mtype == BINDING_ERROR:
        v = attrs.get(ERROR_CODE, b"")
        code = (v[2] & 7) * 100 + v[3] if len(v) >= 4 else 0
        return Response(tid, error=f"{code} {v[4:].decode('utf-8', 'replace')}".strip())
    if XOR_MAPPED_ADDRESS in attrs:
        return Response(tid, _address(attrs[XOR_MAPPED_ADDRESS], data[4:20]))
    if MAPPED_ADDRESS in attrs:
        return Response(tid, _address(attrs[MAPPED_ADDRESS], None))
    return Response(tid, error="no (XOR-)MAPPED-ADDRESS in the response")


class Binding:
    """Binding transactions over a shared socket: `await query(send, server)` -> mapped address."""

    def __init__(self) -> None:
        self._waiting: dict[bytes, asyncio.Future] = {}

    def feed(self, data: bytes) -> bool:
        """True when `data` was a STUN response (taken here, whether awaited or not)."""
        if not is_stun(data):
            return False
        try:
            resp = parse(data)
        except StunError:
            return True
        fut = self._waiting.get(resp.transaction_id)
        if fut is not None and not fut.done():
            fut.set_result(resp)
        return True

    async def query(self, send: Callable[[bytes, tuple[str, int]], object], server: tuple[str, int],
                    rto: float = 0.5, tries: int = 4) -> tuple[str, int]:
        """Send a Binding request to `server` until answered (`tries` sends, RTO doubling)."""
        msg, tid = binding_request()
        fut = asyncio.get_running_loop().create_future()
        self._waiting[tid] = fut
        try:
            wait = rto
            for _ in range(tries):
                send(msg, server)
                try:
                    resp = await asyncio.wait_for(asyncio.shield(fut), wait)
                    break
                except asyncio.TimeoutError:
                    wait *= 2
            else:
                total = rto * (2 ** tries - 1)
                raise StunError(f"no STUN response from {server[0]}:{server[1]} within {total:g} s "
                                "(is it a STUN server, UDP port 3478?)")
        finally:
            self._waiting.pop(tid, None)
        if resp.mapped is None:
            raise StunError(f"STUN server {server[0]}:{server[1]} answered {resp.error}")
        return resp.mapped
