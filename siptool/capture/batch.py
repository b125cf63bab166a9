"""Fast path: classic pcap records in batches, with RTP over Ethernet/IPv4/UDP picked out by numpy.

Most packets in a trunk capture are RTP. Decoding them one by one in Python costs microseconds each;
here a batch of record offsets is walked once (struct), then the link, IP and UDP fields of every
record are gathered with numpy at fixed offsets. Records that are plain Ethernet (optionally one
802.1Q tag) / IPv4 (unfragmented) / UDP with an RTP version-2 first byte come out as arrays
(`RtpBatch`); every other record is handed back for the ordinary per-packet decoder, in order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .reader import PCAP_MAGICS, Capture

BATCH = 65536
RUN_PROBE = 512  # records guessed at once when galloping over equal-length records


@dataclass
class RtpBatch:
    """RTP/RTCP candidates of one batch: `index` holds their positions among the batch's records; the
    other arrays hold a value for every record of the batch (meaningful at `index` only), so that the
    consumer gathers once, in the order it needs."""

    index: np.ndarray  # int64, ascending (capture order)
    frame: np.ndarray  # int64
    time: np.ndarray  # float64
    src: np.ndarray  # uint32 IPv4
    dst: np.ndarray
    sport: np.ndarray  # int64
    dport: np.ndarray
    payload: np.ndarray  # int64 offset of the UDP payload in the buffer
    length: np.ndarray  # int64 UDP payload length
    header: np.ndarray  # RTP_HEADER records: the first 12 payload bytes (garbage past a shorter payload)


@dataclass
class Batch:
    buf: np.ndarray  # the whole file as uint8 (a view on the memory map)
    linktype: int
    slow: list[tuple[int, float, bytes]]  # (frame, time, record bytes) for the per-packet path
    slow_before: np.ndarray  # for each slow record, how many RTP candidates precede it in this batch
    rtp: RtpBatch
    end: int = 0  # file offset after the batch's last record (for progress)


def batches_supported(capture: Capture) -> bool:
    """Uncompressed classic pcap with Ethernet link type: the shape the fast path handles."""
    m = capture._map  # noqa: SLF001 - the reader exposes its map to this sibling module
    if m is None or capture.info.format != "pcap" or len(m) < 24:
        return False
    order, _ = PCAP_MAGICS[m[:4]]
    (linktype,) = struct.unpack_from(order + "I", m, 20)
    return linktype & 0x0FFFFFFF == 1


def iter_batches(capture: Capture, size: int = BATCH) -> Iterator[Batch]:
    """Walk the records of an Ethernet pcap, filling capture.info as the per-packet reader does."""
    m = capture._map  # noqa: SLF001
    info = capture.info
    order, scale = PCAP_MAGICS[m[:4]]
    _, _, _, _, snaplen, linktype = struct.unpack_from(order + "HHiIII", m, 4)
    linktype &= 0x0FFFFFFF
    info.linktypes = ["ether"]
    limit = max(snaplen, 262144) if snaplen else 1 << 28
    buf = np.frombuffer(m, dtype=np.uint8)
    caplen_at = struct.Struct(order + "I").unpack_from
    dt = np.dtype(order + "u4")
    record = np.dtype([("sec", dt), ("frac", dt), ("caplen", dt), ("wirelen", dt)])  # pcap record header
    end = len(m)
    off = 24
    frame = 0
    while off < end:
        runs: list[tuple[int, int, int]] = []  # (first record offset, records, record length)
        count = 0
        stop = None
        while off < end and count < size:  # the one sequential walk: record starts only
            if off + 16 > end:
                stop = f"file ends inside a record header (after frame {frame + count})"
                break
            (caplen,) = caplen_at(m, off + 8)
            if caplen > limit:
                stop = f"damaged: frame {frame + count + 1} claims {caplen} bytes (snaplen {snaplen})"
                break
            step = 16 + caplen
            if off + step > end:
                stop = f"file ends inside frame {frame + count + 1} ({end - off - 16} of {caplen} bytes)"
                break
            # Gallop over a run of records as long as this one (RTP of one codec: most of a trunk):
            # guess the next k starts, check all their caplen fields at once; the agreeing prefix is
            # exact by induction, and every record of it fits in the file because k*step <= end-off.
            # A record whose successor differs in length (RTCP, SIP between RTP) skips the numpy probe.
            k = min(RUN_PROBE, size - count, (end - off) // step)
            run = 1
            if k > 1 and m[off + step + 8:off + step + 12] == m[off + 8:off + 12]:
                ok = np.ndarray((k,), dt, m, off + 8, (step,)) == caplen  # strided view, no copy
                first_bad = int(ok.argmin())  # 0 also when all agree: one reduction either way
                run = k if ok[first_bad] else first_bad
            runs.append((off, run, step))
            count += run
            off += run * step
        if count:
            starts = _starts(runs, count)
            both = _gather(buf, starts, np.dtype([("pcap", record), ("pkt", COMMON)]))  # one gather
            head = both["pcap"]
            t = head["sec"].astype(np.float64) + head["frac"].astype(np.float64) * scale
            n = head["caplen"].astype(np.int64)
            frames = np.arange(frame + 1, frame + 1 + count, dtype=np.int64)
            frame += count
            info.packets = frame
            if info.first_time is None:
                info.first_time = float(t[0])
            info.last_time = float(t[-1])
            batch = _classify(buf, m, linktype, starts + 16, n, t, frames, both)
            batch.end = off
            yield batch
        if stop is not None:
            if frame == 0 and stop.startswith("damaged"):
                capture._stop(stop)  # noqa: SLF001 - raises the one-line error
            info.truncated = f"{stop}; read {frame} whole packet{'s' if frame != 1 else ''} before it"
            return


def _starts(runs: list[tuple[int, int, int]], count: int) -> np.ndarray:
    """Record offsets of (first, records, length) runs, expanded at once."""
    first, sizes, steps = (np.array(col, dtype=np.int64) for col in zip(*runs))
    begin = np.cumsum(sizes) - sizes  # index of each run's first record
    i = np.arange(count, dtype=np.int64) - np.repeat(begin, sizes)
    return np.repeat(first, sizes) + i * np.repeat(steps, sizes)


# The start of the common record: Ethernet / IPv4 without options / UDP / RTP header (54 bytes), and
# 2 bytes of payload to make 56 (8-byte items are gathered faster).
RTP_HEADER = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4")])
COMMON = np.dtype([("macs", "V12"), ("ethertype", ">u2"), ("vihl", "u1"), ("tos", "u1"), ("iplen", ">u2"),
                   ("id", ">u2"), ("frag", ">u2"), ("ttl", "u1"), ("proto", "u1"), ("ipsum", ">u2"),
                   ("src", ">u4"), ("dst", ">u4"), ("sport", ">u2"), ("dport", ">u2"), ("ulen", ">u2"),
                   ("udpsum", ">u2"), ("rtp", RTP_HEADER), ("more", "V2")])


def take(records: np.ndarray, index: np.ndarray) -> np.ndarray:
    """records[index] for a structured array, through a void view: numpy copies void items whole,
    structured ones field by field (several times slower)."""
    return records.view(np.dtype(f"V{records.dtype.itemsize}"))[index].view(records.dtype)


def _gather(buf: np.ndarray, at: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """dtype.itemsize bytes from each offset, as records of dtype. The buffer is seen as one opaque
    (void) item starting at every byte, so a single fancy index copies whole items (numpy moves void
    items with memcpy; a 2-D byte gather is several times slower). Offsets too near the end of the
    buffer read what is there."""
    size = dtype.itemsize
    limit = len(buf) - size
    if limit < 0:
        pos = np.minimum(at[:, None] + np.arange(size), len(buf) - 1)
        return buf[pos].view(dtype).reshape(-1)
    every = np.ndarray((limit + 1,), np.dtype(f"V{size}"), buf, 0, (1,))
    out = every[np.minimum(at, limit)]
    over = np.flatnonzero(at > limit)
    if len(over):
        out.view(np.uint8).reshape(-1, size)[over] = buf[np.minimum(at[over, None] + np.arange(size), len(buf) - 1)]
    return out.view(dtype)


def _classify(buf: np.ndarray, m, linktype: int, o, n, t, frames, both: np.ndarray) -> Batch:
    """Pick the RTP/RTCP candidates: `both` holds each record's pcap header and its first 56 bytes,
    read as the common shape (Ethernet, IPv4 without options, UDP, RTP header) through a structured
    dtype; the other records (VLAN tag, IP options, short) go through the general field-by-field path."""
    h = both["pkt"]
    plen = np.minimum(h["ulen"].astype(np.int64) - 8, n - 42)
    fast = ((n >= COMMON.itemsize) & (h["ethertype"] == 0x0800) & (h["vihl"] == 0x45) & (h["proto"] == 17)
            & ((h["frag"] & 0x3FFF) == 0) & (plen >= 12) & ((h["rtp"]["b0"] & 0xC0) == 0x80))
    ok = fast.copy()
    src, dst = h["src"].astype(np.uint32), h["dst"].astype(np.uint32)
    sport, dport = h["sport"].astype(np.int64), h["dport"].astype(np.int64)
    p = o + 42
    # the RTP headers, compact: a void copy of the field (a structured copy is 5x slower), so that
    # the consumer's gather in flow order reads 12-byte items, not 56-byte strides
    offset = both.dtype.fields["pkt"][1] + COMMON.fields["rtp"][1]
    header = np.ndarray((len(h),), np.dtype(f"V{RTP_HEADER.itemsize}"), both, offset, (both.itemsize,))
    header = header.copy().view(RTP_HEADER)
    rest = np.flatnonzero(~fast)
    if len(rest):
        r_ok, r_src, r_dst, r_sport, r_dport, r_p, r_plen = _general(buf, o[rest], n[rest])
        ok[rest], src[rest], dst[rest], sport[rest], dport[rest] = r_ok, r_src, r_dst, r_sport, r_dport
        p[rest], plen[rest] = r_p, r_plen
        header[rest] = _gather(buf, np.where(r_ok, r_p, 0), RTP_HEADER)
    rtp = RtpBatch(index=np.flatnonzero(ok), frame=frames, time=t, src=src, dst=dst, sport=sport, dport=dport,
                   payload=p, length=plen, header=header)
    slow_idx = np.flatnonzero(~ok)
    before = np.cumsum(ok)[slow_idx] if len(slow_idx) else np.zeros(0, dtype=np.int64)
    slow = [(int(frames[i]), float(t[i]), m[int(o[i]):int(o[i] + n[i])]) for i in slow_idx]
    return Batch(buf=buf, linktype=linktype, slow=slow, slow_before=before, rtp=rtp)


def _general(buf: np.ndarray, o, n):
    """Field by field, for records not in the common shape: an optional 802.1Q tag, IPv4 options,
    RTCP shorter than an RTP header. Returns (ok, src, dst, sport, dport, payload offset, length)."""
    ok = n >= 42  # Ethernet 14 + IPv4 20 + UDP 8
    oc = np.where(ok, o, 0)
    et = (buf[oc + 12].astype(np.int64) << 8) | buf[oc + 13]
    vlan = et == 0x8100
    l3 = oc + 14 + 4 * vlan
    et = np.where(vlan, (buf[np.minimum(oc + 16, len(buf) - 1)].astype(np.int64) << 8)
                  | buf[np.minimum(oc + 17, len(buf) - 1)], et)
    ok &= (et == 0x0800) & (n >= l3 - oc + 28)
    l3c = np.where(ok, l3, 0)
    vihl = buf[l3c]
    ihl = (vihl & 0x0F).astype(np.int64) * 4
    ok &= ((vihl >> 4) == 4) & (ihl >= 20)
    frag = ((buf[l3c + 6].astype(np.int64) & 0x3F) << 8) | buf[l3c + 7]
    ok &= (buf[l3c + 9] == 17) & (frag == 0)
    l4 = l3 + ihl
    ok &= n >= (l4 - oc) + 8
    l4c = np.where(ok, l4, 0)
    p = l4c + 8
    ulen = ((buf[l4c + 4].astype(np.int64) << 8) | buf[l4c + 5]) - 8
    plen = np.minimum(ulen, oc + n - p)
    ok &= plen >= 8
    ok &= (buf[np.where(ok, p, 0)] & 0xC0) == 0x80
    u32 = np.uint32

    def ip(pos):
        return ((buf[pos].astype(u32) << 24) | (buf[pos + 1].astype(u32) << 16)
                | (buf[pos + 2].astype(u32) << 8) | buf[pos + 3].astype(u32))

    return (ok, ip(l3c + 12), ip(l3c + 16), (buf[l4c].astype(np.int64) << 8) | buf[l4c + 1],
            (buf[l4c + 2].astype(np.int64) << 8) | buf[l4c + 3], p, plen)
