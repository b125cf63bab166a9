"""AMR and AMR-WB RTP payloads (RFC 4867) to and from the storage format decoders read (RFC 4867
5.1: one header byte `0 FT Q 0 0` per frame, then its speech bits padded to a byte).

An RTP payload is a codec mode request (CMR), a table of contents (one entry per frame: F, FT, Q)
and the frames' speech bits, either bit-packed (bandwidth-efficient mode, RFC 4867 4.3, the
default) or each field padded to whole bytes (octet-aligned mode, 4.4, fmtp `octet-align=1`). The
speech bits are in the same order in both formats, so converting is moving bits. Bytes in, values
out; a payload that does not parse gives no frames (never an exception).
"""

from __future__ import annotations

import numpy as np

# Speech bits per frame type (RFC 4867 3.6 / 3GPP TS 26.101 and 26.201): speech modes, then SID.
NB_BITS = (95, 103, 118, 134, 148, 159, 204, 244, 39)
WB_BITS = (132, 177, 253, 285, 317, 365, 397, 461, 477, 40)
NO_DATA = 15


def frame_bits(wideband: bool) -> tuple[int, ...]:
    return WB_BITS if wideband else NB_BITS


def unpack(payload: bytes, wideband: bool = False, octet_aligned: bool = False) -> list[bytes]:
    """The payload's frames in storage format (header byte + speech bytes). NO_DATA entries and
    frame types without speech bits come out as a lone header byte (the decoder conceals them)."""
    sizes = frame_bits(wideband)
    bits = np.unpackbits(np.frombuffer(payload, np.uint8))
    pos = 8 if octet_aligned else 4  # past the CMR
    toc: list[tuple[int, int]] = []
    while True:
        if pos + 6 > len(bits):
            return []
        f, ft, q = int(bits[pos]), _int(bits[pos + 1:pos + 5]), int(bits[pos + 5])
        toc.append((ft, q))
        pos += 8 if octet_aligned else 6
        if not f:
            break
        if len(toc) > 64:
            return []
    frames = []
    for ft, q in toc:
        n = sizes[ft] if ft < len(sizes) else 0
        if pos + n > len(bits):
            return []
        speech = np.packbits(bits[pos:pos + n]).tobytes() if n else b""
        frames.append(bytes([(ft << 3) | (q << 2)]) + speech)
        pos += -(-n // 8) * 8 if octet_aligned else n
    return frames


def pack(frames: list[bytes], wideband: bool = False, octet_aligned: bool = False, cmr: int = NO_DATA) -> bytes:
    """Storage-format frames (as an encoder writes them) as one RTP payload."""
    sizes = frame_bits(wideband)
    out: list[np.ndarray] = [_bits(cmr, 4)]
    if octet_aligned:
        out.append(np.zeros(4, np.uint8))
    speech: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        ft, q = frame[0] >> 3 & 0x0F, frame[0] >> 2 & 1
        out += [_bits(1 if i + 1 < len(frames) else 0, 1), _bits(ft, 4), _bits(q, 1)]
        if octet_aligned:
            out.append(np.zeros(2, np.uint8))
        n = sizes[ft] if ft < len(sizes) else 0
        bits = np.unpackbits(np.frombuffer(frame[1:], np.uint8))[:n]
        if octet_aligned:
            bits = np.concatenate([bits, np.zeros(-n % 8, np.uint8)])
        speech.append(bits)
    return np.packbits(np.concatenate(out + speech)).tobytes()


def _int(bits: np.ndarray) -> int:
    value = 0
    for b in bits.tolist():
        value = value << 1 | b
    return value


def _bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], np.uint8)
