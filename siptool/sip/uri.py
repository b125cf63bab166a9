"""SIP URI, name-addr and Via (RFC 3261 19.1, 20.10, 20.42; RFC 3581): one model for the parser, the
analysis, the agent and the checks.

Parsing is one pass and validates what routing would use: the host is an IP literal or a host name,
a port is 1-65535 in ASCII digits. Anything else raises UriError (a SipParseError), never a stray
IndexError or ValueError from a slice or an int().
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field

from ..digits import port as _port
from .message import SipParseError

MAX_TEXT = 4096  # a URI or Via value longer than this is not taken apart
_SLASH = re.compile(r"[ \t]*/[ \t]*")


class UriError(SipParseError):
    """A URI, name-addr or Via value that is not well-formed; the text says why."""


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def valid_host(host: str) -> bool:
    """An IPv4 or IPv6 literal (without brackets) or a host name (RFC 3261 25.1 hostname)."""
    if not host or len(host) > 253:
        return False
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
            return True
        except ValueError:
            return False
    return all(c.isascii() and (c.isalnum() or c in "-._") for c in host) and not host.startswith((".", "-"))


def _hostport(text: str, what: str) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]' or '[v6]:port' -> (host without brackets, port or None)."""
    text = text.strip()
    if text.startswith("["):
        close = text.find("]")
        host, tail = text[1:close] if close > 0 else "", text[close + 1:] if close > 0 else ""
        if close < 0 or (tail and not tail.startswith(":")) or ":" not in host:
            raise UriError(f"bad IPv6 reference in {what}: {text[:60]!r}")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_text = text.partition(":")
        port_text = port_text if colon else None
    if not valid_host(host):
        raise UriError(f"bad host in {what}: {text[:60]!r}")
    if port_text is None:
        return host, None
    number = _port(port_text)
    if not number:
        raise UriError(f"bad port in {what}: {text[:60]!r} (1-65535)")
    return host, number


def _params(text: str) -> dict[str, str]:
    """';name=value;flag' -> {'name': 'value', 'flag': ''}, names in lower case."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name:
            out.setdefault(name, value.strip().strip('"'))
    return out


@dataclass(frozen=True, slots=True)
class Uri:
    """sip:/sips:/tel: URI (RFC 3261 19.1.1, RFC 3966): what routing and reports need."""

    scheme: str
    user: str
    host: str
    port: int | None = None
    params: dict = field(default_factory=dict)

    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    def hostport(self, default: int | None = None) -> tuple[str, int]:
        port = self.port or default or (5061 if self.scheme == "sips" or self.transport == "tls" else 5060)
        return self.host, port

    def __str__(self) -> str:
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        if self.scheme == "tel":
            return f"tel:{self.user}{params}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}:{user}{host}{port}{params}"


def parse_uri(text: str) -> Uri:
    """'sip:100@127.0.0.1:5070;transport=tcp' (or '<...>' / a name-addr) -> Uri; UriError if malformed."""
    if len(text) > MAX_TEXT:
        raise UriError(f"URI of {len(text)} characters")
    uri = name_addr(text)[1] if "<" in text else text.strip()
    scheme, colon, rest = uri.partition(":")
    scheme = scheme.lower()
    if not colon or scheme not in ("sip", "sips", "tel"):
        raise UriError(f"not a SIP URI: {text[:60]!r} (expected sip:user@host[:port])")
    if scheme == "tel":  # RFC 3966: a number, no host
        number, _, ptext = rest.partition(";")
        if not number:
            raise UriError(f"empty tel: URI: {text[:60]!r}")
        return Uri("tel", number, "", None, _params(ptext))
    head = rest.split("?", 1)[0]
    user, at, after = head.rpartition("@")
    if not at:
        user, after = "", head
    hostport, _, ptext = after.partition(";")
    host, number = _hostport(hostport, "SIP URI")
    return Uri(scheme, user.split(":", 1)[0], host, number, _params(ptext))


def name_addr(value: str) -> tuple[str, str]:
    """(display name, URI) of a From/To/Contact value: '"Bob" <sip:bob@x>;tag=1' -> ('Bob', 'sip:bob@x')."""
    value = value.strip()
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        uri = value[lt + 1:gt if gt > 0 else None]
        return value[:lt].strip().strip('"'), uri.strip()
    return "", value.split(";")[0].strip()


def uri_user(uri: str) -> str:
    """The user part of a SIP URI ('sip:+4930123@host' -> '+4930123'), else the host, else the text."""
    try:
        u = parse_uri(uri)
    except UriError:
        rest = uri.split(":", 1)[1] if ":" in uri else uri
        user, at, _ = rest.partition("@")
        return (user if at else rest).split(";")[0]
    return u.user or u.host


def uri_host(value: str) -> str | None:
    """The host of the URI in a header value (Contact, Record-Route), or None when it has none."""
    try:
        return parse_uri(value).host or None
    except UriError:
        return None


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value (RFC 3261 20.42): sent-by and the parameters responses are routed by."""

    transport: str  # UDP, TCP, TLS, SCTP, WS, WSS
    host: str
    port: int | None
    params: dict = field(default_factory=dict)  # lower-case names; a flag (rport) maps to ""

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        value = self.params.get("received")
        return value if value and valid_host(value) else None

    @property
    def rport(self) -> int | None:
        """rport's value (RFC 3581 4); None when absent, empty or not a port."""
        value = self.params.get("rport")
        return _port(value) or None if value else None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"SIP/2.0/{self.transport} {host}{port}{params}"


def parse_via(value: str) -> Via:
    """'SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bK1;rport' -> Via; UriError if malformed."""
    if len(value) > MAX_TEXT:
        raise UriError(f"Via of {len(value)} characters")
    proto, _, rest = _SLASH.sub("/", value.strip()).partition(" ")  # "SIP / 2.0 / UDP": LWS is allowed
    parts = proto.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0" or not parts[2].isalpha():
        raise UriError(f"bad Via protocol: {value[:60]!r}")
    sent_by, _, ptext = rest.strip().partition(";")
    host, number = _hostport(sent_by, "Via")
    return Via(parts[2].upper(), host, number, _params(ptext))


def top_via(msg) -> Via | None:
    """The first Via of a message, or None when it has none or it is malformed."""
    vias = msg.get_all("via")
    if not vias:
        return None
    try:
        return parse_via(vias[0])
    except UriError:
        return None


def response_address(via: Via, source: tuple[str, int] | None) -> tuple[str, int] | None:
    """Where a response to a request over UDP goes (RFC 3261 18.2.2, RFC 3581 4): received (else the
    source, else sent-by) and rport (else the source port when rport was asked for, else sent-by's
    port or 5060). None when no valid address results."""
    host = via.received or (source[0] if source and "rport" in via.params else via.host)
    if via.rport:
        port = via.rport
    elif "rport" in via.params and source:
        port = source[1]
    else:
        port = via.port or 5060
    if not valid_host(host) or not 0 < port <= 65535:
        return None
    return host, port


def with_user(uri: str, user: str) -> str:
    """`uri` with its user part replaced (RFC 3261 19.1.1): sip:echo@h:5060, ring -> sip:ring@h:5060."""
    return str(dataclasses.replace(parse_uri(uri), user=user))
