"""Which way to capture live on an interface: the AF_PACKET ring (live.py) where there is one,
libpcap (pcap_live.py) where not, or the one asked for."""

from __future__ import annotations

from ..errors import SiptoolError
from .live import LiveCapture, RingUnavailable
from .pcap_live import PcapCapture, load_libpcap

METHODS = ("auto", "af_packet", "libpcap")


def open_interface(iface: str, bpf: str | None = None, buffer_mb: int = 32, method: str = "auto"):
    """A live capture on `iface`: the AF_PACKET ring, or libpcap (pcap_live.py) when asked or when
    this system has no ring (`auto`). Both give LiveRecords and the kernel's counters. A missing
    privilege, interface or a bad filter is said once, whichever way was tried."""
    if method not in METHODS:
        raise SiptoolError(f"unknown capture method {method!r}: use one of {', '.join(METHODS)}")
    if method != "libpcap":
        try:
            return LiveCapture(iface, bpf, buffer_mb=buffer_mb)
        except RingUnavailable as exc:
            if method == "af_packet":
                raise
            ring_problem = str(exc)
    lib = load_libpcap()
    if lib is None and method == "auto":
        raise SiptoolError(f"{ring_problem}, and libpcap is not installed: install it (apt install libpcap0.8), "
                           "or capture with tcpdump -w and run siptool analyze on the file")
    return PcapCapture(iface, bpf, buffer_mb=buffer_mb, lib=lib)
