"""Checks of what the user gave, made before anything is sent: each failure is one line (exit 2).

Used by `call`, `echo` and `register` (and CallOptions.check): numbers in range, ports, addresses
of this host, files that can be read, and files that can be written once the call is over.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket

from ..errors import SiptoolError
from ..sip.uri import Uri, UriError, parse_uri


def number(name: str, value: float, lo: float | None = None, hi: float | None = None, *,
           above: bool = False, unit: str = "") -> float:
    """`value` within [lo, hi] (`above`: strictly more than lo)."""
    u = f" {unit}" if unit else ""
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        raise SiptoolError(f"{name} {value}: not a number")
    if lo is not None and (value <= lo if above else value < lo):
        raise SiptoolError(f"{name} {value:g}{u}: must be {'more than' if above else 'at least'} {lo:g}{u}")
    if hi is not None and value > hi:
        raise SiptoolError(f"{name} {value:g}{u}: must be at most {hi:g}{u}")
    return value


def port(name: str, value: int, allow_zero: bool = False) -> int:
    lo = 0 if allow_zero else 1
    if not lo <= int(value) <= 65535:
        raise SiptoolError(f"{name}: port {value} is out of range ({lo}-65535)")
    return int(value)


def ip_address(name: str, text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        raise SiptoolError(f"{name} {text!r}: not an IP address") from None


def local_address(name: str, text: str) -> str:
    """An IP address of this host (one we can bind to); a name (localhost) becomes its address."""
    try:
        host = str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        try:
            host = socket.getaddrinfo(text, None, type=socket.SOCK_DGRAM)[0][4][0]
        except OSError:
            raise SiptoolError(f"{name} {text!r}: not an IP address nor a name of this host") from None
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError as exc:
        raise SiptoolError(f"{name} {host}: not an address of this host ({exc.strerror})") from None
    return host


def host_port(name: str, text: str, default: int | None = None, allow_zero: bool = False) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' (or HOST alone when there is a default port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        ptext = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, ptext = text.partition(":")
    else:
        host, ptext = text, ""
    if not ptext and default is not None:
        ptext = str(default)
    if not host or not ptext.isdigit():
        raise SiptoolError(f"{name} {text!r}: use HOST:PORT, e.g. 127.0.0.1:5060")
    return host, port(name, int(ptext), allow_zero)


def readable(name: str, path) -> str:
    """A regular file that we can open for reading."""
    p = os.fspath(path)
    if os.path.isdir(p):
        raise SiptoolError(f"{name} {p}: is a directory, not a file")
    try:
        with open(p, "rb"):
            pass
    except OSError as exc:
        raise SiptoolError(f"{name} {p}: cannot read: {exc.strerror}") from None
    return p


def writable(name: str, path) -> str:
    """A file we will be able to create or overwrite (checked now, written later)."""
    p = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(p))
    if os.path.isdir(p):
        raise SiptoolError(f"{name} {p}: is a directory, not a file")
    if not os.path.isdir(parent):
        raise SiptoolError(f"{name} {p}: directory {parent} does not exist")
    ok = os.access(p, os.W_OK) if os.path.exists(p) else os.access(parent, os.W_OK | os.X_OK)
    if not ok:
        raise SiptoolError(f"{name} {p}: not writable")
    return p


def sip_uri(text: str) -> Uri:
    """A SIP URI the user gave (or the agent must route by), through the one URI parser; its error
    as one line, and a URI without a host refused (nothing to send to)."""
    try:
        uri = parse_uri(text)
    except UriError as exc:
        raise SiptoolError(str(exc)) from None
    if not uri.host:
        raise SiptoolError(f"{text[:60]!r} has no host to send to: use sip:NUMBER@HOST")
    return uri
