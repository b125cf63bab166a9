"""A pcap writer that never leaves half a file, with an optional ring of files.

Format: classic pcap with nanosecond timestamps (magic a1b23c4d), which tcpdump, tshark and
siptool all read; live timestamps keep their full kernel precision.

Whole files only: records go to `NAME.part`, which is renamed to `NAME` (after fsync) when the file
is closed or rotated, so a finished name always holds a complete capture. Buffered records are
written to the .part file in whole records (at least once a second), so even a killed capture
leaves a .part that readers accept up to its last flush.

Ring buffer (`--ring N --ring-size S`): the capture is cut into numbered files `NAME_00001.pcap`,
`NAME_00002.pcap`, ... each closed when it reaches S (a size such as `100MB`, or a time span such as
`60s` / `5m`, measured in capture time) and only the last N finished files are kept (older ones are
deleted), like `tcpdump -C/-G -W`. Without --ring, one file holds everything.
"""

from __future__ import annotations

import os
import re
import struct
import time

from ..errors import SiptoolError

PCAP_NS_MAGIC = 0xA1B23C4D
_REC = struct.Struct("=IIII")
_UNITS = {"": 1e6, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
          "s": 1, "sec": 1, "min": 60, "h": 3600}


def parse_ring_size(text: str) -> tuple[str, float]:
    """'100MB' -> ('bytes', 1e8); '60s', '5min', '1h' -> ('seconds', ...). A bare number means MB."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text or "")
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS or float(m.group(1)) <= 0:
        raise SiptoolError(f"bad --ring-size {text!r}: use a size (100MB, 1GB) or a duration (60s, 5min, 1h)")
    kind = "seconds" if unit in ("s", "sec", "min", "h") else "bytes"
    return kind, float(m.group(1)) * _UNITS[unit]


class PcapWriter:
    """Write records to `path` (or a ring of files based on it). Always `close()` (or use `with`)."""

    def __init__(self, path: str | os.PathLike, linktype: int, snaplen: int = 262144, ring: int = 0,
                 ring_size: str = "100MB", flush_bytes: int = 1 << 20, flush_seconds: float = 1.0) -> None:
        self.path = str(path)
        self.linktype = linktype
        self.snaplen = snaplen
        self.ring = ring
        self.limit_kind, self.limit = parse_ring_size(ring_size) if ring else ("bytes", float("inf"))
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_seconds
        self.files: list[str] = []  # finished files still on disk, oldest first
        self.deleted = 0
        self.records = 0
        self._seq = 0
        self._fd: int | None = None
        self._name = ""
        self._buf = bytearray()
        self._size = 0
        self._first_sec: int | None = None
        self._last_flush = time.monotonic()
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise SiptoolError(f"cannot write {self.path}: no such directory {directory}")
        self._open_next()

    @property
    def current_file(self) -> str:
        """The file records are going to now (its .part until it is finished)."""
        return self._name

    def _name_for(self, seq: int) -> str:
        if not self.ring:
            return self.path
        root, ext = os.path.splitext(self.path)
        return f"{root}_{seq:05d}{ext or '.pcap'}"

    def _open_next(self) -> None:
        self._seq += 1
        self._name = self._name_for(self._seq)
        try:
            self._fd = os.open(self._name + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise SiptoolError(f"cannot write {self._name}: {exc.strerror}") from None
        header = struct.pack("=IHHiIII", PCAP_NS_MAGIC, 2, 4, 0, 0, self.snaplen, self.linktype)
        os.write(self._fd, header)  # at once: even a capture killed at the first packet leaves a valid .part
        self._size = len(header)
        self._first_sec = None
        self._last_flush = time.monotonic()

    def write(self, sec: int, nsec: int, data: bytes, orig_len: int) -> None:
        """Append one record (timestamp as whole seconds + nanoseconds)."""
        if self.ring:
            if self._first_sec is None:
                self._first_sec = sec
            elif (self._size + 16 + len(data) > self.limit if self.limit_kind == "bytes"
                  else sec - self._first_sec >= self.limit):
                self._rotate()
                self._first_sec = sec
        buf = self._buf
        buf += _REC.pack(sec, nsec, len(data), max(orig_len, len(data)))
        buf += data
        self._size += 16 + len(data)
        self.records += 1
        if len(buf) >= self.flush_bytes:
            self.flush()

    def tick(self) -> None:
        """Call now and then (e.g. when idle): writes buffered records out once a second."""
        if self._buf and time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every buffered record (whole records only ever reach the file)."""
        self._last_flush = time.monotonic()
        view = memoryview(self._buf)
        done = 0
        try:
            while done < len(view):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            raise SiptoolError(f"cannot write {self._name}: {exc.strerror}") from None
        finally:
            view.release()
        del self._buf[:]

    def _finish_file(self) -> None:
        self.flush()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        os.replace(self._name + ".part", self._name)
        self.files.append(self._name)
        while self.ring and len(self.files) > self.ring:
            try:
                os.unlink(self.files.pop(0))
                self.deleted += 1
            except FileNotFoundError:
                pass

    def _rotate(self) -> None:
        self._finish_file()
        self._open_next()

    def close(self) -> None:
        if self._fd is not None:
            self._finish_file()

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
