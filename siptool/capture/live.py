"""Live capture from a network interface: AF_PACKET with a TPACKET_V3 memory-mapped ring (Linux).

Why not scapy or libpcap first: both end up on the same kernel socket, and bench/live_capture.py
measures them. libpcap (pcap_live.py) takes over where no ring can be had (interface.py). The TPACKET_V3 ring (packet(7), kernel Documentation/networking/packet_mmap.rst) lets the
kernel fill whole blocks of frames, with nanosecond timestamps, without a system call per packet;
the ring (32 MB by default) absorbs bursts while Python is busy. Kernel counters
(PACKET_STATISTICS: packets seen, packets dropped because the ring was full) are read at the end.

Ethernet and loopback interfaces give LINKTYPE_ETHERNET records; `any` and interfaces without an
Ethernet header (tun, WireGuard, PPP) give LINKTYPE_LINUX_SLL records, as tcpdump writes them.
On loopback each packet passes the tap twice (out and in); the outgoing copy is ignored, like libpcap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import mmap
import select
import socket
import struct
import subprocess
from dataclasses import dataclass
from typing import Iterator

from ..errors import SiptoolError
from .reader import Record

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
TP_STATUS_KERNEL, TP_STATUS_USER = 0, 1
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SIOCGIFFLAGS, SIOCGIFHWADDR = 0x8913, 0x8927
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL = 1, 113

_HDR = struct.Struct("=IIIIIIHH")  # struct tpacket3_hdr up to tp_net
_VLAN = struct.Struct("=IH")  # hv1.tp_vlan_tci, hv1.tp_vlan_tpid (offset 32)
_SLL_AT = 48  # TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where struct sockaddr_ll follows
_SLL = struct.Struct("=HHiHBB8s")  # struct sockaddr_ll
_U32 = struct.Struct("=I")

NO_PRIVILEGE = ("capturing on {iface} needs root or the CAP_NET_RAW capability: run it with sudo, or grant "
                "the capability once: sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which python3))")


class RingUnavailable(SiptoolError):
    """This system gives no AF_PACKET TPACKET_V3 ring (not Linux, an old kernel, a sandbox): libpcap may."""


@dataclass(slots=True)
class LiveRecord(Record):
    """A Record with the kernel timestamp kept exact (seconds, nanoseconds) for the pcap writer."""

    sec: int = 0
    nsec: int = 0


@dataclass
class KernelStats:
    """PACKET_STATISTICS summed over the capture: what the kernel handed to the ring and what it dropped."""

    packets: int = 0  # packets that passed the filter (drops included), as tcpdump's "received by filter"
    drops: int = 0  # packets lost because the ring was full: the reader fell behind
    freeze_queue: int = 0


def interfaces() -> list[str]:
    return [name for _, name in socket.if_nameindex()]


def compile_bpf(expression: str, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> bytes:
    """A tcpdump filter expression -> classic BPF instructions (8 bytes each) for SO_ATTACH_FILTER.

    libpcap's pcap_compile through pcap_open_dead (no device, no privilege); `tcpdump -ddd` if
    libpcap cannot be loaded. Raises SiptoolError with the compiler's message for a bad expression.
    """
    dlt = {LINKTYPE_ETHERNET: 1, LINKTYPE_LINUX_SLL: 12}[linktype]  # cooked sockets filter on the IP header
    lib = ctypes.util.find_library("pcap")
    if lib:
        try:
            return _pcap_compile(ctypes.CDLL(lib), expression, dlt, snaplen)
        except OSError:
            pass
    name = {1: "EN10MB", 12: "RAW"}[dlt]
    try:
        out = subprocess.run(["tcpdump", "-ddd", "-y", name, "-s", str(snaplen), expression],
                             capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        raise SiptoolError("a capture filter (-f) needs libpcap or tcpdump installed (apt install tcpdump)") from None
    if out.returncode != 0:
        raise SiptoolError(f"bad capture filter {expression!r}: {out.stderr.strip().splitlines()[-1]}")
    lines = out.stdout.split("\n")
    return b"".join(struct.pack("=HBBI", *map(int, line.split())) for line in lines[1:int(lines[0]) + 1])


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


def _pcap_compile(pcap, expression: str, dlt: int, snaplen: int) -> bytes:
    pcap.pcap_open_dead.restype = ctypes.c_void_p
    pcap.pcap_geterr.restype = ctypes.c_char_p
    pcap.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                  ctypes.c_int, ctypes.c_uint32]
    handle = pcap.pcap_open_dead(dlt, snaplen)
    prog = _BpfProgram()
    try:
        if pcap.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, 0xFFFFFFFF) != 0:
            why = pcap.pcap_geterr(ctypes.c_void_p(handle)).decode(errors="replace")
            raise SiptoolError(f"bad capture filter {expression!r}: {why}")
        code = ctypes.string_at(prog.bf_insns, prog.bf_len * 8)
        pcap.pcap_freecode(ctypes.byref(prog))
        return code
    finally:
        pcap.pcap_close(ctypes.c_void_p(handle))


class LiveCapture:
    """Records from a live interface. Iterate for LiveRecords; `None` is yielded when nothing arrived
    for `tick` seconds so that a driver can refresh a view or check a deadline. `stop()` ends it.

    >>> with LiveCapture("eth0", "udp or tcp") as cap:
    ...     for rec in cap: ...
    """

    method = "af_packet"
    version = TPACKET_V3

    def __init__(self, iface: str, bpf: str | None = None, buffer_mb: int = 32, block_kb: int = 1024,
                 tick: float = 0.1) -> None:
        if not hasattr(socket, "AF_PACKET"):
            raise RingUnavailable("live capture through AF_PACKET needs Linux")
        self.iface = iface
        self.filter = bpf
        self.tick = tick
        self.warnings: list[str] = []
        self.stats = KernelStats()
        self.frames = 0
        self.bytes = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self._stopped = False
        self._sock: socket.socket | None = None
        self._map: mmap.mmap | None = None
        self.block_size = block_kb * 1024
        self.block_nr = max(2, buffer_mb * 1024 // block_kb)
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # --- set-up ----------------------------------------------------------------------------

    def _open(self) -> None:
        iface = self.iface
        if iface == "any":
            ifindex, hatype, up = 0, None, True
        else:
            try:
                ifindex = socket.if_nametoindex(iface)
            except OSError:
                raise SiptoolError(f"no interface named {iface!r}; this host has: {', '.join(interfaces())} "
                                   "(or 'any')") from None
        cooked = iface == "any"
        try:
            # protocol 0: receive nothing until bind(), so no packet slips past the filter
            sock = self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise SiptoolError(NO_PRIVILEGE.format(iface=iface)) from None
        if not cooked:
            hatype, up = self._describe(sock, iface)
            cooked = hatype not in (ARPHRD_ETHER, ARPHRD_LOOPBACK)
            if not up:
                self.warnings.append(f"interface {iface} is down: nothing will be captured until it is up")
        if cooked:  # no usable link header: the kernel strips it, we write Linux cooked (SLL) headers
            sock.close()
            # `any` cannot be bound to a device: the protocol given here starts reception at once
            proto = socket.htons(ETH_P_ALL) if iface == "any" else 0
            sock = self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, proto)
        self.linktype = LINKTYPE_LINUX_SLL if cooked else LINKTYPE_ETHERNET
        self._skip_outgoing_lo: int | None = None
        if iface == "any":
            try:
                self._skip_outgoing_lo = socket.if_nametoindex("lo")
            except OSError:
                pass
        elif hatype == ARPHRD_LOOPBACK:
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)  # Linux >= 4.20
            except OSError:
                self._skip_outgoing_lo = ifindex
        if self.filter:
            code = compile_bpf(self.filter, self.linktype)
            insns = ctypes.create_string_buffer(code, len(code))
            fprog = struct.pack("HL", len(code) // 8, ctypes.addressof(insns))  # struct sock_fprog
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, self.version)
        except OSError as exc:
            raise RingUnavailable(f"no TPACKET_V3 ring on this system: {exc.strerror}") from None
        # struct tpacket_req3: block size, blocks, frame size, frames, retire timeout ms, priv, features
        frames = self.block_size // 2048 * self.block_nr
        req = struct.pack("=7I", self.block_size, self.block_nr, 2048, frames, 50, 0, 0)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as exc:
            self.close()
            if exc.errno == errno.ENOMEM:
                raise SiptoolError(f"cannot set up a {self.block_size * self.block_nr >> 20} MB capture ring: "
                                   f"{exc.strerror} (try a smaller --buffer)") from None
            raise RingUnavailable(f"no capture ring on this system: {exc.strerror}") from None
        try:
            self._map = mmap.mmap(sock.fileno(), self.block_size * self.block_nr, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            raise RingUnavailable(f"the capture ring cannot be mapped: {exc.strerror}") from None
        try:
            if iface != "any":
                sock.bind((iface, ETH_P_ALL))
        except OSError as exc:
            self.close()
            raise SiptoolError(f"cannot capture on {iface}: {exc.strerror}") from None
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)

    @staticmethod
    def _describe(sock: socket.socket, iface: str) -> tuple[int, bool]:
        """(ARPHRD hardware type, is up) from SIOCGIFHWADDR / SIOCGIFFLAGS."""
        name = iface.encode()[:15].ljust(16, b"\0")
        hw = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, name + bytes(24))
        flags = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, name + bytes(24))
        return struct.unpack_from("=H", hw, 16)[0], bool(struct.unpack_from("=H", flags, 16)[0] & 1)

    # --- reading ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the iteration to end (safe from a signal handler)."""
        self._stopped = True

    def __iter__(self) -> Iterator[LiveRecord | None]:
        m, sock = self._map, self._sock
        if m is None or sock is None:
            return
        bs, nr, poll, tick_ms = self.block_size, self.block_nr, self._poll.poll, int(self.tick * 1000)
        linktype, cooked = self.linktype, self.linktype == LINKTYPE_LINUX_SLL
        skip_lo = self._skip_outgoing_lo
        hdr, u32 = _HDR.unpack_from, _U32.unpack_from
        frame = self.frames
        block = 0
        while not self._stopped:
            base = block * bs
            if not u32(m, base + 8)[0] & TP_STATUS_USER:  # tpacket_hdr_v1.block_status
                if not poll(tick_ms):
                    yield None
                continue
            num, off = struct.unpack_from("=II", m, base + 12)  # num_pkts, offset_to_first_pkt
            off += base
            for _ in range(num):
                next_off, sec, nsec, snaplen, length, status, mac, net = hdr(m, off)
                if skip_lo is not None or cooked:
                    _, proto, ifindex, hatype, pkttype, halen, addr = _SLL.unpack_from(m, off + _SLL_AT)
                    if pkttype == PACKET_OUTGOING and ifindex == skip_lo:
                        off += next_off
                        continue
                if cooked:  # Linux cooked header v1 (LINKTYPE_LINUX_SLL), protocol kept in network order
                    data = (struct.pack("!HHH8s", pkttype, hatype, halen, addr) + struct.pack("=H", proto)
                            + m[off + net:off + net + snaplen])
                    length += 16
                else:
                    data = m[off + mac:off + mac + snaplen]
                    if status & TP_STATUS_VLAN_VALID:  # the kernel took the 802.1Q tag out: put it back
                        tci, tpid = _VLAN.unpack_from(m, off + 32)
                        tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                        data = data[:12] + struct.pack("!HH", tpid, tci & 0xFFFF) + data[12:]
                        length += 4
                frame += 1
                t = sec + nsec * 1e-9
                if self.first_time is None:
                    self.first_time = t
                self.last_time = t
                self.frames = frame
                self.bytes += len(data)
                yield LiveRecord(frame, t, linktype, data, length, sec, nsec)
                off += next_off
                if self._stopped:
                    break
            struct.pack_into("=I", m, base + 8, TP_STATUS_KERNEL)  # hand the block back
            block = (block + 1) % nr

    def read_stats(self) -> KernelStats:
        """Add the kernel's counters since the last call (reading resets them) and return the totals."""
        if self._sock is not None:
            raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)  # struct tpacket_stats_v3
            # (struct tpacket_stats, 8 bytes, before the socket is TPACKET_V3)
            packets, drops, freeze = struct.unpack("=III", raw.ljust(12, b"\0"))
            self.stats.packets += packets
            self.stats.drops += drops
            self.stats.freeze_queue += freeze
        return self.stats

    def close(self) -> None:
        if self._sock is not None:
            try:
                self.read_stats()
            except OSError:
                pass
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass
            self._map = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "LiveCapture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["LiveCapture", "LiveRecord", "KernelStats", "RingUnavailable", "compile_bpf", "interfaces",
           "NO_PRIVILEGE", "LINKTYPE_ETHERNET", "LINKTYPE_LINUX_SLL"]
