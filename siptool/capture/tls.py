"""TLS in a capture (RFC 8446, RFC 5246) opened with an NSS key log: the plaintext, decrypted by tshark.

Why tshark: it decrypts recorded TLS 1.2 and 1.3 sessions from an NSS key log (SSLKEYLOGFILE, as
OpenSSL, Python's ssl, browsers and `siptool call --tls-keylog` write it) for every cipher suite
in use, with key updates, resumed sessions and records split across TCP segments, and siptool's
tshark engine already runs it. TLS libraries terminate connections; none decrypts a recorded one,
and writing the TLS 1.2 PRF and TLS 1.3 key schedule here would repeat tshark's tested work.

How: tshark reads the same file in a second process, decrypts, and exports each TLS record's
application data as one PDU ("OSI layer 7" export, LINKTYPE_WIRESHARK_UPPER_PDU) tagged with the
original frame number and the flow's addresses and ports. `-d tls.port==1-65535,data` hands every
decrypted flow to tshark's "data" dissector (its HTTP heuristic may still take a WebSocket flow:
then the TLS export is tagged with the heuristic's name, and what tshark's own WebSocket and SIP
dissectors export after it is left out), so what is kept is the decrypted bytes as they are:
siptool's own SIP framer, WebSocket reader and parser read them (analysis/streams.py). The
native engine still reads every packet itself; the plaintext is merged in frame order, as both
run, so memory does not grow with the capture.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Iterator

from ..errors import SiptoolError
from .reader import Capture

LINKTYPE_UPPER_PDU = 252
NEED_TSHARK = ("--tls-keylog needs the tshark program to decrypt TLS (Debian/Ubuntu: apt install tshark; "
               "elsewhere install Wireshark and put tshark on PATH)")
# Exported PDU tags (Wireshark epan/exported_pdu.h)
_END, _PROTO, _HEUR = 0, 12, 13
_IPV4_SRC, _IPV4_DST, _IPV6_SRC, _IPV6_DST, _SRC_PORT, _DST_PORT, _ORIG_FNO = 20, 21, 22, 23, 25, 26, 30
# The first words of NSS key log lines (TLS 1.2 and 1.3)
KEYLOG_LABELS = (b"CLIENT_RANDOM", b"CLIENT_HANDSHAKE_TRAFFIC_SECRET", b"SERVER_HANDSHAKE_TRAFFIC_SECRET",
                 b"CLIENT_TRAFFIC_SECRET_0", b"SERVER_TRAFFIC_SECRET_0", b"EXPORTER_SECRET", b"RSA")


@dataclass(slots=True)
class Plain:
    """Decrypted application data of one TLS record."""

    frame: int  # the capture frame whose TCP segment completed the record
    time: float
    key: tuple  # (src, sport, dst, dport) of the TLS flow
    data: bytes


def check_keylog(path: str) -> None:
    """One clear line (SiptoolError) when the key log cannot be read or holds no NSS key log line."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    except FileNotFoundError:
        raise SiptoolError(f"{path}: no such key log file") from None
    except IsADirectoryError:
        raise SiptoolError(f"{path}: is a directory, not a key log file") from None
    except OSError as exc:
        raise SiptoolError(f"{path}: cannot read the key log: {exc.strerror}") from None
    if not any(line.split(b" ", 1)[0] in KEYLOG_LABELS for line in head.splitlines()):
        raise SiptoolError(f"{path}: not an NSS key log (no CLIENT_RANDOM or *_TRAFFIC_SECRET lines; "
                           "write one with SSLKEYLOGFILE or --tls-keylog)")


def parse_exported(data: bytes) -> tuple[int, tuple, bytes] | None:
    """A TLS record's exported plaintext -> (original frame, flow key, payload). None for exports
    of other dissectors (tshark's own SIP inside a WebSocket it recognised: its PDUs are tagged
    with their protocol name; TLS's carry "data", our decode-as, or a heuristic's name) and for
    records without addresses."""
    pos, n = 0, len(data)
    src = dst = None
    sport = dport = frame = 0
    while pos + 4 <= n:
        tag, length = struct.unpack_from("!HH", data, pos)
        value = data[pos + 4:pos + 4 + length]
        pos += 4 + length + (-length % 4)
        if tag == _END:
            break
        if tag == _PROTO and value.rstrip(b"\0") != b"data":
            return None
        if tag in (_IPV4_SRC, _IPV4_DST) and length == 4:
            text = socket.inet_ntop(socket.AF_INET, value)
        elif tag in (_IPV6_SRC, _IPV6_DST) and length == 16:
            text = socket.inet_ntop(socket.AF_INET6, value)
        else:
            text = None
        if tag in (_IPV4_SRC, _IPV6_SRC):
            src = text
        elif tag in (_IPV4_DST, _IPV6_DST):
            dst = text
        elif tag == _SRC_PORT and length == 4:
            sport = struct.unpack("!I", value)[0]
        elif tag == _DST_PORT and length == 4:
            dport = struct.unpack("!I", value)[0]
        elif tag == _ORIG_FNO and length == 4:
            frame = struct.unpack("!I", value)[0]
    if src is None or dst is None or not frame:
        return None
    return frame, (src, sport, dst, dport), data[pos:]


class Plaintext:
    """The decrypted TLS application data of a capture file, in frame order. A context manager:
    the tshark process is always ended."""

    def __init__(self, path: str, keylog: str) -> None:
        check_keylog(keylog)
        if shutil.which("tshark") is None:
            raise SiptoolError(NEED_TSHARK)
        self.path = str(path)
        self._errors = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            ["tshark", "-n", "-r", self.path, "-o", f"tls.keylog_file:{os.path.abspath(keylog)}",
             "-d", "tls.port==1-65535,data", "-U", "OSI layer 7", "-w", "-"],
            stdout=subprocess.PIPE, stderr=self._errors, stdin=subprocess.DEVNULL)
        self.records = 0

    def __enter__(self) -> "Plaintext":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.wait()
        self._errors.close()

    def __iter__(self) -> Iterator[Plain]:
        proc = self._proc
        if not proc.stdout.peek(1):
            proc.wait()
            raise SiptoolError(f"{self.path}: tshark could not decrypt it: {self._error()}")
        with Capture(f"tshark export of {self.path}", stream=proc.stdout) as cap:
            for rec in cap:
                if rec.linktype != LINKTYPE_UPPER_PDU:
                    continue
                found = parse_exported(rec.data)
                if found is not None:
                    self.records += 1
                    yield Plain(found[0], rec.time, found[1], found[2])

    def _error(self) -> str:
        self._errors.seek(0)
        lines = [x.strip() for x in self._errors.read().decode("utf-8", "replace").splitlines()]
        lines = [x for x in lines if x and not x.startswith("Running as user")]
        return lines[-1].removeprefix("tshark: ") if lines else f"tshark exited with {self._proc.returncode}"
