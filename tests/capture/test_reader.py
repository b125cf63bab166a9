"""Capture file reader: pcap, pcapng and gzip built byte by byte in the test, read back exactly."""

from __future__ import annotations

import gzip
import os
import random
import struct
import zlib
from fractions import Fraction

import pytest

from siptool.capture import Capture, open_capture
from siptool.errors import SiptoolError

# ---- builders: the file formats written with struct (pcap: libpcap format; pcapng: RFC draft) ----


def pcap(records, order="<", nano=False, linktype=1, snaplen=65535) -> bytes:
    """records: (seconds, fraction, data[, orig_len])."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for rec in records:
        sec, frac, data = rec[:3]
        orig = rec[3] if len(rec) > 3 else len(data)
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig) + data)
    return b"".join(out)


def block(btype: int, body: bytes, order="<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(order + "II", btype, n) + body + struct.pack(order + "I", n)


def option(code: int, value: bytes, order="<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(order="<", options=b"") -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + options
    return block(0x0A0D0D0A, body, order)


def idb(linktype: int, tsresol: int | None = None, order="<", tsoffset: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        opts += option(14, struct.pack(order + "q", tsoffset), order)
    opts += option(2, b"eth-test", order)  # if_name, an option the reader must walk past
    if opts:
        opts += struct.pack(order + "HH", 0, 0)
    return block(1, struct.pack(order + "HHI", linktype, 0, 0) + opts, order)


def epb(iface: int, ts: int, data: bytes, order="<", orig: int | None = None) -> bytes:
    head = struct.pack(order + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig)
    return block(6, head + data, order)


def spb(data: bytes, order="<") -> bytes:
    return block(3, struct.pack(order + "I", len(data)) + data, order)


def nrb(order="<") -> bytes:
    name = b"pbx.example.net\0"
    rec = struct.pack(order + "HH", 1, 4 + len(name)) + bytes([192, 0, 2, 1]) + name
    rec += b"\0" * (-len(rec) % 4)
    return block(4, rec + struct.pack(order + "HH", 0, 0), order)


def isb(iface: int, order="<") -> bytes:  # interface statistics, carries no packet
    return block(5, struct.pack(order + "III", iface, 0, 0), order)


def exact(sec: int, frac: int, per_second: int) -> float:
    """The float nearest to the exact timestamp: the best a float time can be."""
    return float(Fraction(sec * per_second + frac, per_second))


def frame(n: int) -> bytes:
    """A distinct Ethernet/IPv4/UDP frame per n, so records can be told apart."""
    payload = b"OPTIONS sip:%d@example.net SIP/2.0\r\n\r\n" % n
    udp = struct.pack("!HHHH", 5060, 5060, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])) + udp
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path):
    with Capture(path) as cap:
        return [(r.frame, r.time, r.linktype, r.data, r.orig_len) for r in cap], cap.info


def one_line_error(path) -> str:
    with pytest.raises(SiptoolError) as exc:
        with Capture(path) as cap:
            list(cap)
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    return msg


# ---- pcap ----

TIMES_US = [(1_700_000_000, 0), (1_700_000_000, 999_999), (1_700_000_001, 123_456), (2_000_000_000, 1)]
TIMES_NS = [(1_700_000_000, 0), (1_700_000_000, 999_999_999), (1_700_000_001, 123_456_789),
            (1_234_567_890, 987_654_321), (4_000_000_000, 1)]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_microseconds_both_byte_orders(tmp_path, order):
    recs = [(s, f, frame(i)) for i, (s, f) in enumerate(TIMES_US)]
    got, info = read_all(write(tmp_path, "a.pcap", pcap(recs, order)))
    assert [g[0] for g in got] == [1, 2, 3, 4]
    assert [g[1] for g in got] == [exact(s, f, 10**6) for s, f in TIMES_US]
    assert [g[3] for g in got] == [frame(i) for i in range(4)]
    assert {g[2] for g in got} == {1}
    assert info.format == "pcap" and info.linktypes == ["ether"] and info.packets == 4
    assert info.first_time == exact(*TIMES_US[0], 10**6) and info.last_time == exact(*TIMES_US[-1], 10**6)
    assert info.truncated is None and not info.compressed


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_nanoseconds_both_byte_orders(tmp_path, order):
    recs = [(s, f, frame(i)) for i, (s, f) in enumerate(TIMES_NS)]
    got, info = read_all(write(tmp_path, "a.pcap", pcap(recs, order, nano=True)))
    assert [g[1] for g in got] == [exact(s, f, 10**9) for s, f in TIMES_NS]
    # nanoseconds are kept: two records 1 ns apart near 0 s differ by 1e-9
    recs = [(0, 1, frame(0)), (0, 2, frame(1))]
    got, _ = read_all(write(tmp_path, "b.pcap", pcap(recs, order, nano=True)))
    assert got[1][1] - got[0][1] == pytest.approx(1e-9, abs=1e-15)


def test_pcap_orig_len_snaplen_and_fcs_bits_in_linktype(tmp_path):
    # upper bits of the link type field carry FCS length (pcap-linktype: LINKTYPE_ETHERNET | FCS)
    data = pcap([(1, 0, frame(1)[:40], 1500)], linktype=0x10000000 | 1, snaplen=40)
    got, info = read_all(write(tmp_path, "snap.pcap", data))
    assert got == [(1, 1.0, 1, frame(1)[:40], 1500)]
    assert info.linktypes == ["ether"]


@pytest.mark.parametrize("linktype,name", [(113, "linux-sll"), (276, "linux-sll2"), (101, "rawip"),
                                           (0, "null"), (108, "loop"), (147, "linktype-147")])
def test_pcap_linktype_names(tmp_path, linktype, name):
    _, info = read_all(write(tmp_path, "l.pcap", pcap([(1, 0, b"x" * 20)], linktype=linktype)))
    assert info.linktypes == [name]


def test_pcap_with_no_records_is_valid(tmp_path):
    got, info = read_all(write(tmp_path, "none.pcap", pcap([])))
    assert got == [] and info.packets == 0 and info.truncated is None and info.first_time is None


FRAME_LEN = len(frame(0))


@pytest.mark.parametrize("cut", [24 + 16 + 30, 24 + 16 + FRAME_LEN + 5, 24 + 2 * (16 + FRAME_LEN) - 1])
def test_pcap_truncated_mid_record_reads_whole_packets(tmp_path, cut):
    recs = [(10, i, frame(i)) for i in range(3)]
    data = pcap(recs)
    whole = (cut - 24) // (16 + FRAME_LEN)
    got, info = read_all(write(tmp_path, "cut.pcap", data[:cut]))
    assert [g[3] for g in got] == [frame(i) for i in range(whole)]
    assert info.packets == whole
    assert info.truncated and f"read {whole} whole packet" in info.truncated
    assert "\n" not in info.truncated


def test_pcap_record_with_absurd_length_is_damaged(tmp_path):
    good = pcap([(1, 0, frame(1))])
    bad = good + struct.pack("<IIII", 2, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"x" * 64
    got, info = read_all(write(tmp_path, "bad.pcap", bad))
    assert len(got) == 1 and "damaged" in info.truncated
    # damaged before any packet: nothing to show, so it is an error
    only = pcap([]) + struct.pack("<IIII", 2, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"x" * 64
    assert "damaged" in one_line_error(write(tmp_path, "bad0.pcap", only))


@pytest.mark.parametrize("size", [4, 10, 23])
def test_pcap_header_cut_short(tmp_path, size):
    msg = one_line_error(write(tmp_path, "h.pcap", pcap([])[:size]))
    assert "header" in msg and "h.pcap" in msg


# ---- pcapng ----


def test_pcapng_interfaces_link_types_resolutions_any_order(tmp_path):
    """Several interfaces with different link types and if_tsresol; IDB of if 1 after packets on if 0;
    SPB, name-resolution and statistics blocks in between."""
    ts_us = 1_700_000_000 * 10**6 + 654_321
    ts_ns = 1_700_000_000 * 10**9 + 123_456_789
    ts_bin = (1_700_000_002 << 20) + 5  # if_tsresol 0x94: 2^-20 s per tick
    body = (shb() + idb(1) + nrb() + epb(0, ts_us, frame(1)) + spb(frame(2))
            + idb(113, tsresol=9) + epb(1, ts_ns, b"S" * 30) + isb(0) + epb(0, ts_us + 1, frame(3))
            + idb(101, tsresol=0x80 | 20) + epb(2, ts_bin, b"\x45raw-ip") + epb(1, ts_ns + 1, b"T" * 30))
    got, info = read_all(write(tmp_path, "multi.pcapng", body))
    assert [g[0] for g in got] == [1, 2, 3, 4, 5, 6]
    assert [g[2] for g in got] == [1, 1, 113, 1, 101, 113]
    assert [g[3] for g in got] == [frame(1), frame(2), b"S" * 30, frame(3), b"\x45raw-ip", b"T" * 30]
    t = [g[1] for g in got]
    assert t[0] == exact(0, ts_us, 10**6)
    assert t[1] == t[0]  # SPB has no timestamp: the previous packet's time
    assert t[2] == exact(0, ts_ns, 10**9)
    assert t[3] == exact(0, ts_us + 1, 10**6)
    assert t[4] == exact(0, ts_bin, 2**20)
    assert t[5] == exact(0, ts_ns + 1, 10**9)
    assert info.format == "pcapng" and info.packets == 6
    assert info.linktypes == ["ether", "linux-sll", "rawip"]
    assert info.truncated is None


def test_pcapng_nanosecond_times_are_exact(tmp_path):
    stamps = [s * 10**9 + f for s, f in TIMES_NS]
    body = shb() + idb(1, tsresol=9) + b"".join(epb(0, ts, frame(i)) for i, ts in enumerate(stamps))
    got, _ = read_all(write(tmp_path, "ns.pcapng", body))
    assert [g[1] for g in got] == [exact(0, ts, 10**9) for ts in stamps]


def test_pcapng_tsoffset(tmp_path):
    body = shb() + idb(1, tsoffset=1_600_000_000) + epb(0, 1_500_000, frame(1))
    got, _ = read_all(write(tmp_path, "off.pcapng", body))
    assert got[0][1] == 1_600_000_001.5


def test_pcapng_two_sections_reset_interfaces(tmp_path):
    """Interface numbers restart in each section (pcapng 4.1); the second section is big-endian."""
    first = shb() + idb(1) + epb(0, 1_000_000, frame(1))
    second = shb(">") + idb(113, order=">") + idb(1, tsresol=9, order=">") \
        + epb(1, 3 * 10**9, frame(2), ">") + epb(0, 4_000_000, b"sll" * 8, ">")
    got, info = read_all(write(tmp_path, "two.pcapng", first + second))
    assert [(g[0], g[1], g[2], g[3]) for g in got] == [
        (1, 1.0, 1, frame(1)), (2, 3.0, 1, frame(2)), (3, 4.0, 113, b"sll" * 8)]
    assert info.linktypes == ["ether", "linux-sll"]


def test_pcapng_big_endian_whole_file(tmp_path):
    body = shb(">") + idb(1, order=">") + epb(0, 2_500_000, frame(7), ">")
    got, _ = read_all(write(tmp_path, "be.pcapng", body))
    assert got == [(1, 2.5, 1, frame(7), len(frame(7)))]


def test_pcapng_packet_for_undeclared_interface_is_damage(tmp_path):
    body = shb() + idb(1) + epb(0, 1, frame(1)) + epb(3, 2, frame(2)) + epb(0, 3, frame(3))
    got, info = read_all(write(tmp_path, "if.pcapng", body))
    assert len(got) == 1 and "interface 3" in info.truncated


@pytest.mark.parametrize("body_len", [0, 4, 16])
def test_pcapng_packet_block_too_short_for_its_header(tmp_path, body_len):
    """An EPB whose block is smaller than its fixed fields: damage reported, never an exception."""
    body = shb() + idb(1) + epb(0, 1_000_000, frame(1)) + block(6, b"\1" * body_len) + epb(0, 2, frame(2))
    got, info = read_all(write(tmp_path, "short.pcapng", body))
    assert len(got) == 1 and info.truncated and "damaged" in info.truncated


def test_pcapng_interface_block_too_short(tmp_path):
    body = shb() + idb(1) + epb(0, 1_000_000, frame(1)) + block(1, b"") + epb(0, 2, frame(2))
    got, info = read_all(write(tmp_path, "shortidb.pcapng", body))
    assert len(got) == 1 and info.truncated and "damaged" in info.truncated


def test_pcapng_truncated_mid_block(tmp_path):
    body = shb() + idb(1) + epb(0, 1_000_000, frame(1)) + epb(0, 2_000_000, frame(2))
    for cut in (len(body) - 1, len(body) - 50, len(body) - len(epb(0, 0, frame(2))) + 3):
        got, info = read_all(write(tmp_path, "cut.pcapng", body[:cut]))
        assert [g[3] for g in got] == [frame(1)]
        assert info.truncated and "read 1 whole packet" in info.truncated


def test_pcapng_damaged_section_header(tmp_path):
    body = shb() + idb(1) + epb(0, 1, frame(1))
    bad = body[:8] + b"\xde\xad\xbe\xef" + body[12:]
    assert "damaged" in one_line_error(write(tmp_path, "bom.pcapng", bad))


# ---- gzip ----


def test_gzip_pcap_and_pcapng(tmp_path):
    recs = [(5, i, frame(i)) for i in range(3)]
    got, info = read_all(write(tmp_path, "a.pcap.gz", gzip.compress(pcap(recs, ">", nano=True))))
    assert [g[3] for g in got] == [frame(i) for i in range(3)] and info.compressed
    assert info.format == "pcap" and [g[1] for g in got] == [exact(5, i, 10**9) for i in range(3)]
    ng = shb() + idb(276) + epb(0, 7_000_000, b"x" * 40) + idb(1, 9) + epb(1, 8 * 10**9, frame(1))
    got, info = read_all(write(tmp_path, "b.pcapng.gz", gzip.compress(ng)))
    assert [(g[1], g[2]) for g in got] == [(7.0, 276), (8.0, 1)] and info.compressed
    assert info.linktypes == ["linux-sll2", "ether"]


def test_gzip_truncated_reads_whole_packets(tmp_path):
    recs = [(5, i, os.urandom(300)) for i in range(20)]  # random: gzip cannot shrink it much
    data = gzip.compress(pcap(recs))
    got, info = read_all(write(tmp_path, "cut.pcap.gz", data[: len(data) * 2 // 3]))
    assert 0 < len(got) < 20
    assert [g[3] for g in got] == [r[2] for r in recs[: len(got)]]
    assert info.truncated and "\n" not in info.truncated


def damaged_gzip(raw: bytes, error: type) -> bytes:
    """raw gzip'd with one byte in its middle third changed so that decompressing raises `error`."""
    data = gzip.compress(raw)
    for at in range(len(data) // 3, 2 * len(data) // 3):
        for flip in (0x01, 0x10, 0x80, 0xFF):
            bad = data[:at] + bytes([data[at] ^ flip]) + data[at + 1:]
            try:
                gzip.decompress(bad)
            except error:
                return bad
            except Exception:
                pass
    raise AssertionError(f"no single-byte change gives {error.__name__}")


@pytest.mark.parametrize("error", [zlib.error, gzip.BadGzipFile, EOFError])
def test_gzip_damaged_stream_mid_file(tmp_path, error):
    """Damaged deflate data (zlib.error), a bad CRC or a cut stream: the packets before the damage and
    a note in `truncated`, never an exception."""
    rnd = random.Random(7)
    recs = [(5, i, rnd.randbytes(40) * 3) for i in range(300)]
    raw = pcap(recs)
    data = damaged_gzip(raw, error) if error is not EOFError else gzip.compress(raw)[:-40]
    got, info = read_all(write(tmp_path, "bad.pcap.gz", data))
    assert info.truncated and "\n" not in info.truncated
    assert 0 < len(got) < 300 or error is gzip.BadGzipFile
    assert got[0][3] == recs[0][2]


def test_gzip_header_only_or_garbage(tmp_path):
    for name, data in [("g1.gz", b"\x1f\x8b"), ("g2.gz", b"\x1f\x8b\x08\x00garbage-not-deflate" * 3),
                       ("g3.gz", gzip.compress(b"")), ("g4.gz", gzip.compress(b"hello world, not a capture"))]:
        msg = one_line_error(write(tmp_path, name, data))
        assert name in msg


# ---- files that are not captures ----


def test_empty_file(tmp_path):
    assert "empty" in one_line_error(write(tmp_path, "empty.pcap", b""))


def test_not_a_capture(tmp_path):
    msg = one_line_error(write(tmp_path, "notes.txt", b"INVITE sip:bob@example.net SIP/2.0\r\n"))
    assert "not a pcap or pcapng" in msg


def test_directory(tmp_path):
    assert "directory" in one_line_error(tmp_path)


def test_missing_file(tmp_path):
    assert "no such file" in one_line_error(tmp_path / "nope.pcap")


def test_permission_denied(tmp_path):
    path = write(tmp_path, "secret.pcap", pcap([(1, 0, frame(1))]))
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: chmod 000 does not stop reading")
        assert "permission denied" in one_line_error(path)
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("magic", [b"GMBU", b"RTSS"])
def test_netmon_mentions_editcap(tmp_path, magic):
    msg = one_line_error(write(tmp_path, "trace.cap", magic + b"\x00\x02" + b"\0" * 100))
    assert "Network Monitor" in msg and "editcap" in msg


def test_open_capture_yields_decoded_packets(tmp_path):
    path = write(tmp_path, "p.pcap", pcap([(1, 0, frame(1)), (2, 0, b"\xff" * 14 + b"junk"), (3, 0, frame(3))]))
    with open_capture(path) as src:
        pkts = list(src)
        assert [p.frame for p in pkts] == [1, 3]
        assert pkts[0].payload == b"OPTIONS sip:1@example.net SIP/2.0\r\n\r\n"
        assert src.info.packets == 3
        assert sum(src.decoder.skipped.values()) == 1
