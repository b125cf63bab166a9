"""Capture file records: pcap (both byte orders, micro/nano), pcapng (any interfaces), gzip.

A streaming reader: records are read one at a time from a memory map (plain files) or a gzip stream,
never all held. A file cut short is read up to its last whole record and says so in `truncated`.
We read the record framing with struct ourselves rather than dpkt's readers because dpkt's pcap reader
returns a short buffer for a cut record without saying so and its pcapng reader knows only the first
interface; link layers are decoded in decode.py.
"""

from __future__ import annotations

import gzip
import mmap
import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

from ..errors import SiptoolError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
GZIP_MAGIC = b"\x1f\x8b"
MAX_RECORD = 256 * 1024 * 1024  # a record larger than this means a damaged file
RELEASE_BYTES = 16 * 1024 * 1024  # hand consumed map pages back to the kernel every this many bytes

LINKTYPE_NAMES = {
    0: "null", 1: "ether", 12: "rawip", 14: "rawip", 101: "rawip", 108: "loop",
    113: "linux-sll", 228: "rawip4", 229: "rawip6", 276: "linux-sll2",
}

OTHER_FORMATS = {
    b"GMBU": "Microsoft Network Monitor 2.x",
    b"RTSS": "Microsoft Network Monitor 1.x",
    b"snoo": "Solaris snoop",
    b"XCP\x00": "NetXRay/Sniffer",
}


@dataclass(slots=True)
class Record:
    """One captured frame: 1-based frame number as Wireshark counts them."""

    frame: int
    time: float
    linktype: int
    data: bytes
    orig_len: int


@dataclass
class CaptureInfo:
    """What the file is and what reading it met: filled in while iterating."""

    path: str
    format: str = ""
    compressed: bool = False
    linktypes: list[str] = field(default_factory=list)
    packets: int = 0
    first_time: float | None = None
    last_time: float | None = None
    truncated: str | None = None  # why reading stopped early, if it did
    size_bytes: int = 0


class Capture:
    """Iterate the records of a capture file. Use as a context manager.

    >>> with Capture("call.pcap") as cap:
    ...     for rec in cap: ...
    """

    def __init__(self, path: str | os.PathLike, stream: BinaryIO | None = None):
        """`stream`: read this pipe (another program's output) instead of opening `path`, which then
        only names it in messages."""
        self.path = str(path)
        self.info = CaptureInfo(path=self.path)
        self._fh: BinaryIO | None = None
        self._map: mmap.mmap | None = None
        self._src = None
        self._src = self._open() if stream is None else _Peeked(stream)
        try:
            magic = self._src.peek(4) if isinstance(self._src, _Peeked) else self._src.read(4)
            if not isinstance(self._src, _Peeked):
                self._src.seek(0)
        except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            self.close()
            raise SiptoolError(f"{self.path}: damaged gzip file ({_one_line(exc)})") from None
        if magic in PCAP_MAGICS:
            self.info.format = "pcap"
        elif magic == PCAPNG_SHB:
            self.info.format = "pcapng"
        else:
            self.close()
            raise SiptoolError(_unknown_format(self.path, magic))

    def _open(self):
        if self.path == "-":
            return self._open_stdin()
        try:
            self.info.size_bytes = os.path.getsize(self.path)
            self._fh = open(self.path, "rb")
        except FileNotFoundError:
            raise SiptoolError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise SiptoolError(f"{self.path}: is a directory, not a capture file") from None
        except PermissionError:
            raise SiptoolError(f"{self.path}: permission denied (try sudo, or chmod the file)") from None
        except OSError as exc:
            raise SiptoolError(f"{self.path}: cannot open: {exc.strerror}") from None
        head = self._fh.read(2)
        self._fh.seek(0)
        if head == GZIP_MAGIC:
            self.info.compressed = True
            return gzip.GzipFile(fileobj=self._fh)
        if self.info.size_bytes == 0:
            self.close()
            raise SiptoolError(f"{self.path}: empty file, not a capture")
        self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._released = 0
        if hasattr(mmap, "MADV_SEQUENTIAL"):
            self._map.madvise(mmap.MADV_SEQUENTIAL)  # read-ahead; pages read once
        return self._map

    def _open_stdin(self):
        """`-`: a capture piped in (tcpdump -w - | siptool analyze -). Read as a stream, never seeked."""
        self.path = self.info.path = "<stdin>"
        if sys.stdin is None or sys.stdin.isatty():
            raise SiptoolError("-: no capture piped in (use: tcpdump -w - ... | siptool analyze -)")
        self._fh = sys.stdin.buffer
        src = _Peeked(self._fh)
        if src.peek(2) == GZIP_MAGIC:
            self.info.compressed = True
            return _Peeked(gzip.GzipFile(fileobj=src))
        if not src.peek(1):
            raise SiptoolError("<stdin>: empty input, not a capture")
        return src

    def release(self, upto: int) -> None:
        """Drop the mapped pages of bytes [0, upto) from this process (MADV_DONTNEED).

        The file stays in the page cache and the map stays valid (a later access faults the page
        back in), but resident memory stays flat however large the file: without this a full pass
        over a 1 GB capture leaves 1 GB resident. Drivers that walk the map themselves (batch.py)
        call it with the offset they have consumed; the record iterators call it as they go.
        """
        m = self._map
        if m is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        upto -= upto % mmap.PAGESIZE
        if upto > self._released:
            try:
                m.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            except (OSError, ValueError):
                return
            self._released = upto

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        fh = None if self._fh is getattr(sys.stdin, "buffer", None) else self._fh
        for obj in (self._src if self._map is None else None, self._map, fh):
            if obj is not None:
                try:
                    obj.close()
                except (OSError, ValueError, BufferError):
                    pass

    def tell(self) -> int:
        """Bytes consumed so far (of the compressed file for gzip), for progress bars."""
        if self._map is not None:
            return self._map.tell()
        if isinstance(self._src, _Peeked):
            return self._src.consumed
        return self._fh.tell() if self._fh else 0

    def __iter__(self) -> Iterator[Record]:
        try:
            if self.info.format == "pcap":
                yield from self._pcap()
            else:
                yield from self._pcapng()
        except (EOFError, OSError, ValueError, zlib.error) as exc:  # broken gzip stream
            self._stop(f"compressed stream is damaged ({_one_line(exc)})")

    def _stop(self, why: str) -> None:
        n = self.info.packets
        if n == 0 and self.info.truncated is None and why.startswith("damaged"):
            raise SiptoolError(f"{self.path}: {why}; no packet could be read")
        self.info.truncated = f"{why}; read {n} whole packet{'s' if n != 1 else ''} before it"

    def _note(self, rec_time: float) -> None:
        info = self.info
        info.packets += 1
        if info.first_time is None:
            info.first_time = rec_time
        info.last_time = rec_time

    def _pcap(self) -> Iterator[Record]:
        src = self._src
        head = src.read(24)
        if len(head) < 24:
            raise SiptoolError(f"{self.path}: pcap file header is cut short ({len(head)} of 24 bytes)")
        order, scale = PCAP_MAGICS[head[:4]]
        _, _, _, _, snaplen, linktype = struct.unpack(order + "HHiIII", head[4:])
        linktype &= 0x0FFFFFFF  # upper bits may carry FCS info
        self.info.linktypes = [LINKTYPE_NAMES.get(linktype, f"linktype-{linktype}")]
        rec_hdr = struct.Struct(order + "IIII")
        limit = max(snaplen, 262144) if snaplen else MAX_RECORD
        if self._map is not None:
            yield from self._pcap_map(rec_hdr, limit, snaplen, scale, linktype)
            return
        read = src.read
        frame = 0
        info = self.info
        mapped = False
        next_release = RELEASE_BYTES
        while True:
            hdr = read(16)
            if not hdr:
                return
            if len(hdr) < 16:
                self._stop(f"file ends inside a record header (after frame {frame})")
                return
            sec, frac, caplen, orig = rec_hdr.unpack(hdr)
            if caplen > limit or caplen > MAX_RECORD:
                self._stop(f"damaged: frame {frame + 1} claims {caplen} bytes (snaplen {snaplen})")
                return
            data = read(caplen)
            if len(data) < caplen:
                self._stop(f"file ends inside frame {frame + 1} ({len(data)} of {caplen} bytes)")
                return
            frame += 1
            t = sec + frac * scale
            info.packets = frame  # _note(), inlined: this loop runs once per record
            if frame == 1:
                info.first_time = t
            info.last_time = t
            if mapped and frame & 0x3FF == 0 and src.tell() >= next_release:
                self.release(src.tell() - caplen - 16)  # the record just read stays mapped
                next_release = src.tell() + RELEASE_BYTES
            yield Record(frame, t, linktype, data, orig)

    def _pcap_map(self, rec_hdr: struct.Struct, limit: int, snaplen: int, scale: float,
                  linktype: int) -> Iterator[Record]:
        """The pcap loop over a memory map: unpack_from and one slice per record, no read() calls.

        Same records and the same truncation messages as the read() loop; the map position is kept
        up to date every 1024 records (for tell()) and consumed pages are released as we go.
        """
        m = self._map
        end = len(m)
        pos = m.tell()
        unpack_from = rec_hdr.unpack_from
        info = self.info
        frame = 0
        next_release = RELEASE_BYTES
        try:
            while pos < end:
                if pos + 16 > end:
                    self._stop(f"file ends inside a record header (after frame {frame})")
                    return
                sec, frac, caplen, orig = unpack_from(m, pos)
                if caplen > limit or caplen > MAX_RECORD:
                    self._stop(f"damaged: frame {frame + 1} claims {caplen} bytes (snaplen {snaplen})")
                    return
                start = pos + 16
                pos = start + caplen
                if pos > end:
                    pos = end
                    self._stop(f"file ends inside frame {frame + 1} ({end - start} of {caplen} bytes)")
                    return
                frame += 1
                t = sec + frac * scale
                info.packets = frame
                if frame == 1:
                    info.first_time = t
                info.last_time = t
                if not frame & 0x3FF:
                    m.seek(pos)
                    if pos >= next_release:
                        self.release(start - 16)
                        next_release = pos + RELEASE_BYTES
                yield Record(frame, t, linktype, m[start:pos], orig)
        finally:
            m.seek(pos)

    def _pcapng(self) -> Iterator[Record]:
        src = self._src
        read = src.read
        order = "<"
        ifaces: list[tuple[int, int, int]] = []  # (linktype, ticks per second, offset in ticks)
        frame = 0
        mapped = self._map is not None
        next_release = RELEASE_BYTES
        sections = 0
        while True:
            head = read(8)
            if not head:
                return
            if len(head) < 8:
                if not sections:
                    raise SiptoolError(f"{self.path}: pcapng section header is cut short ({len(head)} bytes)")
                self._stop(f"file ends inside a block header (after frame {frame})")
                return
            if head[:4] == PCAPNG_SHB:
                bom = read(4)
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    self._stop(f"damaged: bad section byte-order magic after frame {frame}")
                    return
                (blen,) = struct.unpack(order + "I", head[4:])
                body = read(blen - 12) if blen >= 12 else b""
                if blen < 28 or len(body) < blen - 12:
                    if not sections:
                        raise SiptoolError(f"{self.path}: pcapng section header is cut short or damaged")
                    self._stop(f"damaged: section header block cut short after frame {frame}")
                    return
                sections += 1
                ifaces = []  # a new section has its own interfaces
                continue
            btype, blen = struct.unpack(order + "II", head)
            if blen < 12 or blen % 4 or blen > MAX_RECORD:
                self._stop(f"damaged: block of {blen} bytes after frame {frame}")
                return
            body = read(blen - 8)
            if len(body) < blen - 8:
                self._stop(f"file ends inside a block (after frame {frame})")
                return
            body = body[:-4]  # trailing block length
            if btype == 1:  # Interface Description Block
                if len(body) < 8:
                    self._stop(f"damaged: interface block of {blen} bytes after frame {frame}")
                    return
                ifaces.append(_idb(body, order))
                names = self.info.linktypes
                name = LINKTYPE_NAMES.get(ifaces[-1][0], f"linktype-{ifaces[-1][0]}")
                if name not in names:
                    names.append(name)
            elif btype in (6, 2):  # Enhanced Packet Block, obsolete Packet Block
                if len(body) < 20:
                    self._stop(f"damaged: packet block of {blen} bytes after frame {frame}")
                    return
                if btype == 6:
                    iface, hi, lo, caplen, orig = struct.unpack_from(order + "IIIII", body)
                else:
                    iface, _drops, hi, lo, caplen, orig = struct.unpack_from(order + "HHIIII", body)
                if iface >= len(ifaces):
                    self._stop(f"damaged: packet block for unknown interface {iface} after frame {frame}")
                    return
                if 20 + caplen > len(body):
                    self._stop(f"damaged: packet block claims {caplen} bytes in a block of {blen} "
                               f"after frame {frame}")
                    return
                linktype, per_second, offset = ifaces[iface]
                if mapped and src.tell() >= next_release:
                    self.release(src.tell() - blen)
                    next_release = src.tell() + RELEASE_BYTES
                frame += 1
                t = (((hi << 32) | lo) + offset) / per_second  # int / int: the nearest float
                self._note(t)
                yield Record(frame, t, linktype, body[20:20 + caplen], orig)
            elif btype == 3:  # Simple Packet Block: interface 0, no timestamp
                if not ifaces or len(body) < 4:
                    continue
                (orig,) = struct.unpack_from(order + "I", body)
                frame += 1
                t = self.info.last_time or 0.0
                self._note(t)
                yield Record(frame, t, ifaces[0][0], body[4:4 + min(orig, len(body) - 4)], orig)
            # other blocks (name resolution, statistics, custom, DSB) carry no packets


def _idb(body: bytes, order: str) -> tuple[int, int, int]:
    """Interface Description Block -> (linktype, timestamp ticks per second, offset in ticks).

    Integers, so that time = (ticks + offset) / per_second is the float nearest the exact time.
    """
    linktype, _reserved, _snaplen = struct.unpack_from(order + "HHI", body)
    per_second, offset = 1_000_000, 0
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        value = body[pos + 4:pos + 4 + length]
        if code == 0:
            break
        if code == 9 and length >= 1:  # if_tsresol
            res = value[0]
            per_second = 2 ** (res & 0x7F) if res & 0x80 else 10 ** min(res, 30)
        elif code == 14 and length >= 8:  # if_tsoffset, whole seconds
            (offset,) = struct.unpack(order + "q", value[:8])
        pos += 4 + ((length + 3) & ~3)
    return linktype, per_second, offset * per_second


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _unknown_format(path: str, magic: bytes) -> str:
    for sig, name in OTHER_FORMATS.items():
        if magic.startswith(sig[: len(magic)]) and magic[: len(sig)] == sig:
            return (f"{path}: this is a {name} capture, not pcap/pcapng; "
                    f"convert it first: editcap -F pcap {os.path.basename(path)} out.pcap")
    return f"{path}: not a pcap or pcapng capture (unknown magic {magic.hex() or 'empty'})"


class _Peeked:
    """A forward-only stream (a pipe, a gzip stream) with a look at its first bytes."""

    def __init__(self, raw) -> None:
        self._raw = raw
        self._head = b""
        self.consumed = 0

    def peek(self, n: int) -> bytes:
        while len(self._head) < n:
            more = self._raw.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._raw.read(), b""
            else:
                data, self._head = self._head[:n], self._head[n:]
                if len(data) < n:
                    data += self._raw.read(n - len(data))
        else:
            data = self._raw.read(n)
        self.consumed += len(data)
        return data

    def close(self) -> None:
        pass
