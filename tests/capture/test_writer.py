"""PcapWriter: whole files only, a readable .part while writing, ring rotation keeps the last N files."""

from __future__ import annotations

import os
import struct

import pytest

from siptool.capture import Decoder
from siptool.capture.reader import Capture
from siptool.capture.writer import PcapWriter, parse_ring_size
from siptool.errors import SiptoolError


def udp_frame(i: int) -> bytes:
    """Ethernet + IPv4 + UDP 127.0.0.1:4000 -> 127.0.0.2:5000 with payload b'packet <i>'."""
    payload = b"packet %d" % i
    udp = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                     bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2]))
    return bytes(12) + b"\x08\x00" + ip + udp


def payloads(path) -> list[bytes]:
    dec = Decoder()
    with Capture(path) as cap:
        out = [dec.decode(r.frame, r.time, r.linktype, r.data).payload for r in cap]
        truncated = cap.info.truncated
    return out, truncated


def test_single_file_roundtrip_keeps_nanoseconds(tmp_path):
    path = tmp_path / "one.pcap"
    with PcapWriter(path, 1) as w:
        for i in range(50):
            w.write(1_700_000_000 + i, 123_456_789, udp_frame(i), len(udp_frame(i)))
        assert (tmp_path / "one.pcap.part").exists() and not path.exists()
    assert path.exists() and not (tmp_path / "one.pcap.part").exists()
    got, truncated = payloads(path)
    assert got == [b"packet %d" % i for i in range(50)] and truncated is None
    with Capture(path) as cap:
        first = next(iter(cap))
    assert first.time == pytest.approx(1_700_000_000.123456789, abs=1e-9)


def test_part_file_is_readable_before_close_and_after_a_cut(tmp_path):
    path = tmp_path / "live.pcap"
    w = PcapWriter(path, 1, flush_bytes=1 << 30)
    part = tmp_path / "live.pcap.part"
    assert os.path.getsize(part) == 24  # the header is on disk at once
    for i in range(20):
        w.write(1_700_000_000, i, udp_frame(i), len(udp_frame(i)))
    w.flush()
    got, _ = payloads(part)
    assert got == [b"packet %d" % i for i in range(20)]
    # a process killed in the middle of a write leaves a partial last record: readers keep the whole ones
    with open(part, "ab") as f:
        f.write(struct.pack("=IIII", 1_700_000_001, 0, 60, 60) + udp_frame(99)[:20])
    got, truncated = payloads(part)
    assert got == [b"packet %d" % i for i in range(20)] and truncated
    w.close()


def test_ring_keeps_last_n_files_by_size(tmp_path):
    path = tmp_path / "ring.pcap"
    frame_len = 16 + len(udp_frame(0))
    with PcapWriter(path, 1, ring=3, ring_size="1kb") as w:  # about 1000 bytes per file
        for i in range(200):
            w.write(1_700_000_000 + i, 0, udp_frame(i), len(udp_frame(i)))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and not any(n.endswith(".part") for n in names)
    assert names == [f"ring_{n:05d}.pcap" for n in range(w._seq - 2, w._seq + 1)]
    per_file = (1000 - 24) // frame_len
    kept = []
    for name in names:
        assert os.path.getsize(tmp_path / name) <= 1000
        got, truncated = payloads(tmp_path / name)
        assert truncated is None and 0 < len(got) <= per_file
        kept += got
    assert kept == [b"packet %d" % i for i in range(200 - len(kept), 200)]  # the newest, in order
    assert w.deleted == w._seq - 3


def test_ring_by_capture_time(tmp_path):
    path = tmp_path / "t.pcap"
    with PcapWriter(path, 1, ring=2, ring_size="10s") as w:
        for i in range(45):  # one packet a second: files of 10 s
            w.write(1_700_000_000 + i, 0, udp_frame(i), len(udp_frame(i)))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["t_00004.pcap", "t_00005.pcap"]
    assert [len(payloads(tmp_path / n)[0]) for n in names] == [10, 5]


@pytest.mark.parametrize("text,expected", [("100MB", ("bytes", 1e8)), ("1.5g", ("bytes", 1.5e9)),
                                           ("60s", ("seconds", 60)), ("5min", ("seconds", 300)),
                                           ("2", ("bytes", 2e6))])
def test_parse_ring_size(text, expected):
    assert parse_ring_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "10 parsecs", "0MB", "-5s"])
def test_parse_ring_size_rejects(text):
    with pytest.raises(SiptoolError):
        parse_ring_size(text)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(SiptoolError, match="no such directory"):
        PcapWriter(tmp_path / "nope" / "x.pcap", 1)


def test_record_headers_keep_exact_nanoseconds_and_the_original_length(tmp_path):
    """The kernel's (seconds, nanoseconds) and a snapped frame's original length reach the file as they
    were: no float on the way (a float of 1.7e9 s carries ~240 ns; dpkt's writer, which takes one,
    writes 123456717 for 123456789) and no orig_len made equal to the captured length."""
    path = tmp_path / "ns.pcap"
    frame = udp_frame(1)
    with PcapWriter(path, 1) as w:
        w.write(1_700_000_000, 123_456_789, frame, 1514)  # a 1514-byte frame snapped to its first bytes
        w.write(1_700_000_000, 999_999_999, frame, len(frame))
    raw = path.read_bytes()
    first = struct.unpack_from("=IIII", raw, 24)
    second = struct.unpack_from("=IIII", raw, 24 + 16 + len(frame))
    assert first == (1_700_000_000, 123_456_789, len(frame), 1514)
    assert second == (1_700_000_000, 999_999_999, len(frame), len(frame))
