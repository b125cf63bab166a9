"""The SRTP keys file of `siptool analyze --srtp-keys FILE`: keys a capture does not show (the SDP
was encrypted and no key log is at hand, or the keys were exchanged some other way).

One sending side per line: who sends, the crypto suite, and the SDES key-params (RFC 4568 6.1)
exactly as an a=crypto line writes them. Blank lines and lines starting with # are ignored.

    # sender            suite                      key-params
    203.0.113.5:40000   AES_CM_128_HMAC_SHA1_80    inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj
    ssrc=0x1a2b3c4d     AEAD_AES_128_GCM           inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGw==
    [2001:db8::5]:5004  AES_CM_128_HMAC_SHA1_32    inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^31|1:4

The sender is the address:port the stream's packets come from, or `ssrc=` and its SSRC (hex with
0x, or decimal). The key decrypts the SRTP and SRTCP that side sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..digits import port as _port
from ..digits import uint
from ..errors import SiptoolError
from ..sdp import parse_key_param
from .srtp import SUITES, MasterKey


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One line: the sender it applies to (an "ip:port", or an SSRC), the suite and its key(s)."""

    sender: str  # "ip:port" ("[v6]:port"), "" when by SSRC
    ssrc: int | None
    suite: str
    keys: tuple[MasterKey, ...]

    def matches(self, src: str, ssrc: int) -> bool:
        return (self.ssrc == ssrc) if self.ssrc is not None else self.sender == src


def parse(text: str, name: str = "keys file") -> list[KeyEntry]:
    """The entries of a keys file; SiptoolError naming the line for the first bad one."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise SiptoolError(f"{name}, line {number}: want SENDER SUITE inline:KEY, got {line[:60]!r}")
        sender, suite_name, params = parts
        suite = SUITES.get(suite_name)
        if suite is None:
            raise SiptoolError(f"{name}, line {number}: unknown SRTP suite {suite_name[:40]!r} "
                               f"(known: {', '.join(SUITES)})")
        keys = []
        for param in params.split(";"):
            key = parse_key_param(param, suite)
            if isinstance(key, str):
                raise SiptoolError(f"{name}, line {number}: {key}")
            keys.append(key)
        ssrc = None
        if sender.lower().startswith("ssrc="):
            ssrc = _ssrc(sender[5:])
            if ssrc is None:
                raise SiptoolError(f"{name}, line {number}: bad SSRC {sender[5:25]!r}")
            sender = ""
        elif not _endpoint(sender):
            raise SiptoolError(f"{name}, line {number}: the sender must be IP:PORT or ssrc=..., not {sender[:40]!r}")
        out.append(KeyEntry(sender, ssrc, suite_name, tuple(keys)))
    if not out:
        raise SiptoolError(f"{name}: no keys in it (lines: SENDER SUITE inline:KEY)")
    return out


def load(path: str) -> list[KeyEntry]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(1 << 20)
    except FileNotFoundError:
        raise SiptoolError(f"{path}: no such SRTP keys file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiptoolError(f"{path}: cannot read the SRTP keys file ({getattr(exc, 'strerror', None) or exc})") from None
    return parse(text, path)


def _ssrc(text: str) -> int | None:
    """An SSRC: 0x and up to 8 hex digits, or decimal up to 2^32 - 1."""
    if text[:2].lower() == "0x":
        digits = text[2:]
        ok = 0 < len(digits) <= 8 and all(c in "0123456789abcdefABCDEF" for c in digits)
        return int(digits, 16) if ok else None
    return uint(text, 10, 0xFFFFFFFF)


def _endpoint(text: str) -> bool:
    """IP:PORT or [IPv6]:PORT (the way every output writes an address)."""
    import ipaddress

    host, colon, number = text.rpartition(":")
    if not colon or _port(number) is None:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (address.version == 6) == host.startswith("[")
