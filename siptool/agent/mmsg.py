"""Many datagrams per system call: recvmmsg(2)/sendmmsg(2) through ctypes (Linux; no build step).

A `Batch` owns B slots (buffer, address, iovecs, mmsghdrs) laid out once. `recv` fills up to B slots
in one call (MSG_WAITFORONE: it returns as soon as one datagram is there, with whatever else is
queued); `send` sends slots [i, j), each to the address in its name, in one call: right after `recv`
that echoes them back to their sources. numpy views over the same memory (`data`, `names`,
`lengths`, `out_lengths`) let the caller read or fill all slots at once without per-packet Python.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys

import numpy as np

SLOT = 2048  # bytes per datagram (RTP over Ethernet fits; a longer datagram is cut, MSG_TRUNC)
NAME = 32  # bytes per source address (sockaddr_in6 is 28)
MSG_WAITFORONE = 0x10000


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint32)]


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    for f in (recv, send):
        f.restype = ctypes.c_int
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    return recv, send


_CALLS = _libc()


def available() -> bool:
    return _CALLS is not None


class Batch:
    def __init__(self, family: int = socket.AF_INET, slots: int = 64) -> None:
        if _CALLS is None:
            raise OSError("recvmmsg/sendmmsg are not available on this platform")
        self._recv, self._send = _CALLS
        self.slots = slots
        self._data = (ctypes.c_char * (slots * SLOT))()
        self._names = (ctypes.c_char * (slots * NAME))()
        # receive and send headers share buffers and addresses; only the iovec lengths differ
        self._iov_in, self._iov_out = (_Iovec * slots)(), (_Iovec * slots)()
        self._mm_in, self._mm_out = (_Mmsghdr * slots)(), (_Mmsghdr * slots)()
        data, names = ctypes.addressof(self._data), ctypes.addressof(self._names)
        # one family per socket, so the address length the kernel writes back never changes: no
        # per-batch reset (sockaddr_in is 16 bytes, sockaddr_in6 28)
        namelen = 28 if family == socket.AF_INET6 else 16
        for iov, mm in ((self._iov_in, self._mm_in), (self._iov_out, self._mm_out)):
            for i in range(slots):
                iov[i].base, iov[i].len = data + i * SLOT, SLOT
                h = mm[i].hdr
                h.name, h.namelen, h.iov, h.iovlen = names + i * NAME, namelen, ctypes.addressof(iov[i]), 1
        self._in, self._out = ctypes.addressof(self._mm_in), ctypes.addressof(self._mm_out)
        self._stride = ctypes.sizeof(_Mmsghdr)
        # numpy views of the same memory
        self.data = np.frombuffer(self._data, np.uint8).reshape(slots, SLOT)
        self.names = np.frombuffer(self._names, np.uint64).reshape(slots, NAME // 8)
        mm = np.frombuffer(self._mm_in, np.uint32).reshape(slots, self._stride // 4)
        self.lengths = mm[:, _Mmsghdr.len.offset // 4]  # bytes received per slot
        self.out_lengths = np.frombuffer(self._iov_out, np.uint64).reshape(slots, 2)[:, 1]  # bytes to send

    def recv(self, fd: int) -> int:
        """Datagrams received into slots [0, n); 0 on timeout (SO_RCVTIMEO) or signal. OSError when closed."""
        n = self._recv(fd, self._in, self.slots, MSG_WAITFORONE, None)
        if n < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EINTR):
                return 0
            raise OSError(err, os.strerror(err))
        self.out_lengths[:n] = self.lengths[:n]  # what to send back: what came in
        return n

    def send(self, fd: int, start: int, stop: int) -> int:
        """Send slots [start, stop) to their names' addresses; returns how many went (the rest are lost)."""
        sent = start
        while sent < stop:
            k = self._send(fd, self._out + sent * self._stride, stop - sent, 0)
            if k <= 0:  # buffer full or socket closed: dropped, as on a wire
                break
            sent += k
        return sent - start
