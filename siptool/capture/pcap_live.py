"""Live capture through libpcap, where the AF_PACKET ring (live.py) cannot be had: macOS and the BSDs
(no AF_PACKET), or a Linux whose kernel refuses a TPACKET_V3 ring.

libpcap is called through ctypes (live.py already compiles filters with it), not through scapy:
scapy's libpcap socket gives float microsecond times, no original length and a per-packet copy
through a Python list, and bench/live_capture.py measures the difference. Here each packet costs one
pcap_next_ex and one memcpy, timestamps are nanoseconds where libpcap offers them (1.5 and later),
and pcap_stats gives the kernel's drop count. It yields the same LiveRecords as LiveCapture.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import select
import sys
from typing import Iterator

from ..errors import SiptoolError
from .live import NO_PRIVILEGE, KernelStats, LiveRecord, interfaces

PCAP_ERRBUF_SIZE = 256
PCAP_ERROR_NO_SUCH_DEVICE, PCAP_ERROR_PERM_DENIED = -5, -8
PCAP_ERROR_PROMISC_PERM_DENIED = -11
PCAP_TSTAMP_PRECISION_NANO = 1
DLT_LINUX_SLL = 113


def _timeval():
    """struct timeval as libpcap hands it out (pcap_pkthdr): it differs between systems."""
    if sys.platform.startswith("openbsd"):
        return [("tv_sec", ctypes.c_uint32), ("tv_usec", ctypes.c_uint32)]
    if sys.platform.startswith(("darwin", "netbsd")):
        return [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_int)]
    return [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _PktHdr(ctypes.Structure):
    _fields_ = _timeval() + [("caplen", ctypes.c_uint32), ("len", ctypes.c_uint32)]


class _Stat(ctypes.Structure):
    _fields_ = [("ps_recv", ctypes.c_uint), ("ps_drop", ctypes.c_uint), ("ps_ifdrop", ctypes.c_uint)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def load_libpcap():
    """libpcap through ctypes, or None when it is not installed."""
    name = ctypes.util.find_library("pcap") or ctypes.util.find_library("wpcap")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    void = ctypes.c_void_p
    lib.pcap_create.restype = void
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for fn in ("pcap_set_snaplen", "pcap_set_promisc", "pcap_set_timeout", "pcap_set_buffer_size",
               "pcap_set_tstamp_precision", "pcap_set_immediate_mode", "pcap_set_datalink"):
        if hasattr(lib, fn):
            getattr(lib, fn).argtypes = [void, ctypes.c_int]
    for fn in ("pcap_activate", "pcap_datalink", "pcap_get_selectable_fd", "pcap_get_tstamp_precision"):
        if hasattr(lib, fn):
            getattr(lib, fn).argtypes = [void]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [void]
    lib.pcap_statustostr.restype = ctypes.c_char_p
    lib.pcap_next_ex.argtypes = [void, ctypes.POINTER(ctypes.POINTER(_PktHdr)), ctypes.POINTER(void)]
    lib.pcap_compile.argtypes = [void, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32]
    lib.pcap_setfilter.argtypes = [void, ctypes.POINTER(_BpfProgram)]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_setnonblock.argtypes = [void, ctypes.c_int, ctypes.c_char_p]
    lib.pcap_stats.argtypes = [void, ctypes.POINTER(_Stat)]
    lib.pcap_close.argtypes = [void]
    return lib


class PcapCapture:
    """Records from a live interface through libpcap; the same interface as LiveCapture: iterate for
    LiveRecords, `None` when nothing arrived for `tick` seconds, `stop()` ends it, `stats` and
    `read_stats()` give the kernel's counters, `warnings` what the interface said."""

    method = "libpcap"

    def __init__(self, iface: str, bpf: str | None = None, buffer_mb: int = 32, tick: float = 0.1,
                 snaplen: int = 262144, lib=None) -> None:
        self.lib = lib or load_libpcap()
        if self.lib is None:
            raise SiptoolError("live capture here needs libpcap (apt install libpcap0.8, or the system's "
                               "libpcap); or capture with tcpdump -w and run siptool analyze on the file")
        self.iface, self.filter, self.tick = iface, bpf, tick
        self.warnings: list[str] = []
        self.stats = KernelStats()
        self.frames = self.bytes = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.nano = False
        self._stopped = False
        self._handle: int | None = None
        try:
            self._open(buffer_mb, snaplen)
        except BaseException:
            self.close()
            raise

    def _open(self, buffer_mb: int, snaplen: int) -> None:
        lib, errbuf = self.lib, ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        handle = self._handle = lib.pcap_create(self.iface.encode(), errbuf)
        if not handle:
            raise SiptoolError(f"cannot capture on {self.iface}: {errbuf.value.decode(errors='replace')}")
        lib.pcap_set_snaplen(handle, snaplen)
        lib.pcap_set_promisc(handle, 0)  # as the AF_PACKET ring: what the host itself sends and receives
        lib.pcap_set_timeout(handle, max(1, int(self.tick * 1000)))
        lib.pcap_set_buffer_size(handle, buffer_mb << 20)
        if hasattr(lib, "pcap_set_tstamp_precision"):
            self.nano = lib.pcap_set_tstamp_precision(handle, PCAP_TSTAMP_PRECISION_NANO) == 0
        status = lib.pcap_activate(handle)
        if status < 0:
            why = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
            if status in (PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED):
                raise SiptoolError(NO_PRIVILEGE.format(iface=self.iface))
            if status == PCAP_ERROR_NO_SUCH_DEVICE:
                raise SiptoolError(f"no interface named {self.iface!r}; this host has: "
                                   f"{', '.join(interfaces())} (or 'any')")
            raise SiptoolError(f"cannot capture on {self.iface}: {why or lib.pcap_statustostr(status).decode()}")
        if status > 0:  # a warning: the capture runs
            self.warnings.append(f"{self.iface}: {(lib.pcap_geterr(handle) or b'').decode(errors='replace')}")
        if self.iface == "any" and lib.pcap_datalink(handle) != DLT_LINUX_SLL:
            lib.pcap_set_datalink(handle, DLT_LINUX_SLL)  # as the ring writes `any`: cooked v1
        self.linktype = lib.pcap_datalink(handle)
        if self.filter:
            prog = _BpfProgram()
            if lib.pcap_compile(handle, ctypes.byref(prog), self.filter.encode(), 1, 0xFFFFFFFF) != 0:
                raise SiptoolError(f"bad capture filter {self.filter!r}: "
                                   f"{lib.pcap_geterr(handle).decode(errors='replace')}")
            try:
                if lib.pcap_setfilter(handle, ctypes.byref(prog)) != 0:
                    raise SiptoolError(f"cannot set the capture filter: {lib.pcap_geterr(handle).decode()}")
            finally:
                lib.pcap_freecode(ctypes.byref(prog))
        lib.pcap_setnonblock(handle, 1, errbuf)
        fd = lib.pcap_get_selectable_fd(handle) if hasattr(lib, "pcap_get_selectable_fd") else -1
        self._poll = None
        if fd >= 0:
            self._poll = select.poll()
            self._poll.register(fd, select.POLLIN | select.POLLERR)

    def stop(self) -> None:
        """Ask the iteration to end (safe from a signal handler)."""
        self._stopped = True

    def __iter__(self) -> Iterator[LiveRecord | None]:
        lib, handle = self.lib, self._handle
        if handle is None:
            return
        hdr = ctypes.POINTER(_PktHdr)()
        data = ctypes.c_void_p()
        next_ex, string_at, hdr_ref, data_ref = lib.pcap_next_ex, ctypes.string_at, ctypes.byref(hdr), ctypes.byref(data)
        scale = 1e-9 if self.nano else 1e-6
        tick_ms = int(self.tick * 1000)
        linktype, frame = self.linktype, self.frames
        while not self._stopped:
            r = next_ex(handle, hdr_ref, data_ref)
            if r == 1:
                h = hdr.contents
                sec, frac = h.tv_sec, h.tv_usec
                nsec = frac if self.nano else frac * 1000
                raw = string_at(data.value, h.caplen)
                frame += 1
                t = sec + frac * scale
                if self.first_time is None:
                    self.first_time = t
                self.last_time = t
                self.frames = frame
                self.bytes += len(raw)
                yield LiveRecord(frame, t, linktype, raw, h.len, sec, nsec)
            elif r == 0:  # nothing waiting: wait for the descriptor, or a tick
                if self._poll is None or not self._poll.poll(tick_ms):
                    yield None
            else:
                why = (lib.pcap_geterr(handle) or b"").decode(errors="replace")
                raise SiptoolError(f"capture on {self.iface} stopped: {why}")

    def read_stats(self) -> KernelStats:
        """The kernel's drops so far (libpcap's are totals since the start), and the packets that passed
        the filter as the ring counts them: read plus dropped. libpcap's own ps_recv means different
        things on different systems (pcap_stats(3PCAP)); on Linux it also counts the outgoing copy of
        each loopback packet, which libpcap itself skips."""
        if self._handle is not None:
            st = _Stat()
            if self.lib.pcap_stats(self._handle, ctypes.byref(st)) == 0:
                self.stats.drops = st.ps_drop + st.ps_ifdrop
        self.stats.packets = self.frames + self.stats.drops
        return self.stats

    def close(self) -> None:
        if self._handle is not None:
            self.read_stats()
            self.lib.pcap_close(self._handle)
            self._handle = None

    def __enter__(self) -> "PcapCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
