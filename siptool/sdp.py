"""SDP parser (RFC 8866, formerly RFC 4566): what offer/answer (RFC 3264) and media association need.

`parse(body)` never raises: unknown or broken lines are skipped and listed in `problems`.
Media-level c= and direction attributes override session-level ones (RFC 8866 5.7, RFC 3264 5.1).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

from .digits import port as _port
from .digits import uint
from .rtp import codecs as codecs_registry
from .rtp.srtp import SUITES, MasterKey

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
MAX_MKI_LENGTH = 128  # bytes (RFC 4568 6.1)


@dataclass
class Crypto:
    """One a=crypto attribute (SDES, RFC 4568 5.1, 6.1): tag, suite, inline keys, session parameters.

    `keys` holds the master keys the line carries (several only with MKIs); a key that is not valid
    base64 or not the suite's length is left out and said in the SDP's `problems` (a line left with
    no key is dropped). Suites siptool does not know keep their keys as written."""

    tag: int
    suite: str
    keys: list[MasterKey] = field(default_factory=list)
    session_params: list[str] = field(default_factory=list)  # KDR=, UNENCRYPTED_SRTP, WSH=... as written

    def value(self) -> str:
        """The attribute value: `1 AES_CM_128_HMAC_SHA1_80 inline:...|2^20|1:4`."""
        keys = ";".join(_key_param(k) for k in self.keys)
        return " ".join([str(self.tag), self.suite, keys, *self.session_params])


@dataclass
class Media:
    """One m= section."""

    media: str  # audio, video, ...
    port: int
    proto: str  # RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, ...
    formats: list[str]  # payload types as written
    port_count: int = 1
    connection: str = ""  # media-level c= address
    rtpmap: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # pt -> (name, rate, channels)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str = ""  # "" when not given at media level
    ptime: int | None = None
    maxptime: int | None = None
    rtcp_port: int | None = None  # a=rtcp (RFC 3605)
    rtcp_address: str = ""
    rtcp_mux: bool = False  # RFC 5761
    crypto: list[Crypto] = field(default_factory=list)  # a=crypto (SDES, RFC 4568), in offer order
    fingerprint: str = ""  # a=fingerprint (DTLS-SRTP, RFC 8122)
    candidates: list[str] = field(default_factory=list)  # a=candidate (ICE, RFC 8839)
    attributes: list[tuple[str, str]] = field(default_factory=list)  # every a= line, in order

    @property
    def payload_types(self) -> list[int]:
        return [pt for pt in (uint(f, 3, 127) for f in self.formats) if pt is not None]

    def codec_name(self, pt: int) -> str:
        """The encoding name of a payload type: its rtpmap, else RFC 3551's static name, else the number."""
        if pt in self.rtpmap:
            return self.rtpmap[pt][0]
        c = codecs_registry.static(pt)
        return c.name if c else str(pt)

    @property
    def dtmf_pt(self) -> int | None:
        """The RFC 4733 telephone-event payload type offered, if any."""
        return next((pt for pt in self.payload_types if self.codec_name(pt).lower() == "telephone-event"), None)

    def lines(self) -> list[str]:
        """This m= section as SDP lines (RFC 8866 5.14): m=, c=, rtpmap and fmtp per type, ptime, direction."""
        out = [f"m={self.media} {self.port}" + (f"/{self.port_count}" if self.port_count > 1 else "")
               + f" {self.proto} {' '.join(self.formats)}"]
        if self.connection:
            out.append(f"c=IN {'IP6' if ':' in self.connection else 'IP4'} {self.connection}")
        for pt in self.payload_types:
            if pt in self.rtpmap:
                name, rate, channels = self.rtpmap[pt]
                out.append(f"a=rtpmap:{pt} {name}/{rate}" + (f"/{channels}" if channels > 1 else ""))
            if pt in self.fmtp:
                out.append(f"a=fmtp:{pt} {self.fmtp[pt]}")
        if self.ptime:
            out.append(f"a=ptime:{self.ptime}")
        out += [f"a=crypto:{c.value()}" for c in self.crypto]
        if self.direction:
            out.append(f"a={self.direction}")
        return out


@dataclass
class SessionDescription:
    version: str = ""
    origin: str = ""  # o= line
    origin_address: str = ""
    session_name: str = ""
    connection: str = ""  # session-level c= address
    direction: str = ""
    media: list[Media] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def serialise(self) -> bytes:
        """The description as SDP (RFC 8866 5): v=, o=, s=, session c=, t=, then each m= section. It
        writes the modelled fields (what the agent offers and answers); other attributes a peer's SDP
        carried (a=rtcp, crypto, ICE) are read, not written back."""
        lines = [f"v={self.version or 0}", f"o={self.origin}", f"s={self.session_name or '-'}"]
        if self.connection:
            lines.append(f"c=IN {'IP6' if ':' in self.connection else 'IP4'} {self.connection}")
        lines.append("t=0 0")
        if self.direction:
            lines.append(f"a={self.direction}")
        for m in self.media:
            lines += m.lines()
        return ("\r\n".join(lines) + "\r\n").encode()


def parse(body: bytes | str) -> SessionDescription:
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else body
    desc = SessionDescription()
    current: Media | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            desc.problems.append(f"line {number}: not type=value: {line[:40]!r}")
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "m":
            current = _media_line(value)
            if current is None:
                desc.problems.append(f"line {number}: bad m= line: {value[:40]!r}")
            else:
                desc.media.append(current)
        elif current is None and kind == "v":
            desc.version = value
        elif current is None and kind == "o":
            desc.origin = value
            parts = value.split()
            desc.origin_address = parts[5] if len(parts) >= 6 else ""
        elif current is None and kind == "s":
            desc.session_name = value
        elif kind == "c":
            address = _connection(value)
            if address is None:
                desc.problems.append(f"line {number}: bad c= address: {value[:40]!r}")
                continue
            if current is None:
                desc.connection = address
            else:
                current.connection = address
        elif kind == "a":
            name, _, rest = value.partition(":")
            if current is None:
                if name in DIRECTIONS:
                    desc.direction = name
            else:
                _attribute(current, name.strip().lower(), rest.strip(), desc.problems, number)
    return desc


def _media_line(value: str) -> Media | None:
    parts = value.split()
    if len(parts) < 3:
        return None
    port_text, slash, count_text = parts[1].partition("/")
    number = _port(port_text)
    count = uint(count_text, 5, 65535) if slash else 1
    if number is None or not count:
        return None
    return Media(media=parts[0].lower(), port=number, proto=parts[2], formats=parts[3:], port_count=count)


def _connection(value: str) -> str | None:
    """The address of `c=IN IP4 192.0.2.1[/ttl]` (RFC 8866 5.7): an IP literal or a host name; None
    when it is neither (control characters, a NUL...)."""
    parts = value.split()
    if len(parts) < 3:
        return ""
    address = parts[2].split("/")[0]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    ok = 0 < len(address) <= 253 and all(c.isascii() and (c.isalnum() or c in "-.") for c in address)
    return address if ok else None


def _attribute(m: Media, name: str, rest: str, problems: list[str], number: int) -> None:
    m.attributes.append((name, rest))
    if name in DIRECTIONS:
        m.direction = name
    elif name == "rtpmap":
        pt_text, _, enc = rest.partition(" ")
        parts = enc.strip().split("/")
        pt = uint(pt_text, 3, 127)
        rate = uint(parts[1], 9) if len(parts) > 1 else 0
        channels = uint(parts[2], 3) if len(parts) > 2 else 1
        if pt is None or not parts[0] or rate is None or channels is None:
            problems.append(f"line {number}: bad rtpmap: {rest[:40]!r}")
            return
        m.rtpmap[pt] = (parts[0], rate, channels)
    elif name == "fmtp":
        pt_text, _, params = rest.partition(" ")
        pt = uint(pt_text, 3, 127)
        if pt is not None:
            m.fmtp[pt] = params.strip()
    elif name in ("ptime", "maxptime"):
        whole, _, frac = rest.partition(".")  # "20", or "20.0" as some phones write it
        value = uint(whole, 6)
        if value is None or (frac and uint(frac, 6) is None):
            problems.append(f"line {number}: bad {name}: {rest[:20]!r}")
        else:
            setattr(m, name, value)
    elif name == "rtcp":
        parts = rest.split()
        rtcp_port = _port(parts[0]) if parts else None
        if rtcp_port is None:
            problems.append(f"line {number}: bad rtcp: {rest[:40]!r}")
            return
        m.rtcp_port = rtcp_port
        if len(parts) >= 4:
            address = _connection(" ".join(parts[1:4]))
            m.rtcp_address = address or ""
    elif name == "rtcp-mux":
        m.rtcp_mux = True
    elif name == "crypto":
        crypto = parse_crypto(rest, problems, number)
        if crypto is not None:
            m.crypto.append(crypto)
    elif name == "fingerprint":
        m.fingerprint = rest
    elif name == "candidate":
        m.candidates.append(rest)


def parse_crypto(value: str, problems: list[str] | None = None, number: int = 0) -> Crypto | None:
    """`a=crypto:` value (RFC 4568 9.1): `tag suite inline:key||salt[|lifetime][|MKI:length][;inline:...]
    [session params]`. None (and a problem) when the tag or suite is missing or no key is usable."""
    problems = problems if problems is not None else []
    parts = value.split()
    tag = uint(parts[0], 10) if parts else None
    if tag is None or len(parts) < 3:
        problems.append(f"line {number}: bad crypto: {value[:40]!r}")
        return None
    crypto = Crypto(tag=tag, suite=parts[1], session_params=parts[3:])
    suite = SUITES.get(crypto.suite)
    for param in parts[2].split(";"):
        key = parse_key_param(param, suite)
        if isinstance(key, str):
            problems.append(f"line {number}: crypto {tag}: {key}")
        else:
            crypto.keys.append(key)
    return crypto if crypto.keys else None


def parse_key_param(param: str, suite) -> MasterKey | str:
    """One key-param (RFC 4568 6.1): the key, or what is wrong with it."""
    method, _, info = param.partition(":")
    if method.lower() != "inline":
        return f"key method {method[:20]!r} is not inline"
    fields = info.split("|")
    try:
        key_salt = base64.b64decode(fields[0], validate=True)
    except (binascii.Error, ValueError):
        return "the inline key is not base64"
    if suite is not None and len(key_salt) != suite.key_salt_length:
        return f"{suite.name} needs a {suite.key_salt_length}-byte key and salt, this one has {len(key_salt)}"
    lifetime = mki = None
    mki_length = 0
    for extra in fields[1:]:
        if ":" in extra:
            value, _, length = extra.partition(":")
            mki, mki_length = uint(value, 39), uint(length, 3, MAX_MKI_LENGTH)
            if mki is None or not mki_length or mki >= 256 ** mki_length:
                return f"bad MKI {extra[:20]!r}"
        else:
            lifetime = _lifetime(extra)
            if lifetime is None:
                return f"bad key lifetime {extra[:20]!r}"
    return MasterKey(key_salt, mki, mki_length, lifetime)


def _lifetime(text: str) -> int | None:
    """A key lifetime in packets: decimal, or a power of two written `2^n` (RFC 4568 6.1)."""
    if text.startswith("2^"):
        exponent = uint(text[2:], 2, 64)
        return None if exponent is None else 1 << exponent
    return uint(text, 20)


def _key_param(key: MasterKey) -> str:
    text = "inline:" + base64.b64encode(key.key_salt).decode()
    if key.lifetime is not None:
        power = key.lifetime.bit_length() - 1
        text += f"|2^{power}" if key.lifetime == 1 << power else f"|{key.lifetime}"
    if key.mki is not None:
        text += f"|{key.mki}:{key.mki_length}"
    return text


def audio_in_force(desc: SessionDescription) -> Media | None:
    """The first audio m= section as it applies: its address (media-level c=, else session-level) and
    direction (RFC 3264) resolved into the section itself; None when there is none."""
    for m in desc.media:
        if m.media == "audio":
            return dataclasses.replace(m, connection=connection_address(desc, m), direction=direction(desc, m))
    return None


class Role(StrEnum):
    """The part an SDP body plays in an offer/answer exchange (RFC 3264 4)."""

    OFFER = "offer"
    ANSWER = "answer"


def role(is_request: bool, method: str | None, cseq_method: str, status: int | None,
         invite_offered: bool | None) -> Role:
    """Offer or answer, by where the body travels in an INVITE transaction (RFC 3261 13.2.1, RFC 3264):
    SDP in a request is an offer, except in an ACK, which answers an offer made in the 2xx; SDP in a
    response is an answer, except in a 2xx to an INVITE that carried none (`invite_offered` False),
    which makes the offer itself. `invite_offered` None: no INVITE seen."""
    if is_request:
        return Role.ANSWER if method == "ACK" else Role.OFFER
    if cseq_method == "INVITE" and 200 <= (status or 0) < 300 and invite_offered is False:
        return Role.OFFER
    return Role.ANSWER


def negotiate(offer: Media, supported: list[str]) -> tuple[str, int] | None:
    """The answerer's codec (RFC 3264 6.1): the first offered one it supports, in the offer's order."""
    wanted = {c.upper() for c in supported}
    return next(((offer.codec_name(pt).upper(), pt) for pt in offer.payload_types
                 if offer.codec_name(pt).upper() in wanted), None)


def answer_direction(offer_direction: str) -> str:
    """The direction an answer takes to an offer's (RFC 3264 6.1): sendonly <-> recvonly."""
    return {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}.get(offer_direction, "sendrecv")


def connection_address(desc: SessionDescription, media: Media) -> str:
    """The address media goes to: media-level c= if present, else session-level (RFC 8866 5.7)."""
    return media.connection or desc.connection


def direction(desc: SessionDescription, media: Media) -> str:
    """sendrecv unless said otherwise; media level wins; port 0 or c=0.0.0.0 (RFC 2543 hold) is inactive/sendonly."""
    if media.port == 0:
        return "inactive"
    value = media.direction or desc.direction or "sendrecv"
    if value == "sendrecv" and connection_address(desc, media) == "0.0.0.0":
        return "sendonly"  # RFC 3264 8.4: the old way to put a call on hold
    return value


def codecs(media: Media) -> list[tuple[int, str, int, int]]:
    """(payload type, name, clock rate, channels) in preference order; static types filled from RFC 3551."""
    out = []
    for pt in media.payload_types:
        if pt in media.rtpmap:
            name, rate, channels = media.rtpmap[pt]
            rate = rate or static_clock_rate(pt) or 8000
        elif (static := codecs_registry.static(pt)) is not None:
            name, rate, channels = static.name, static.clock_rate, 1
        else:
            name, rate, channels = f"PT{pt}", 0, 1
        out.append((pt, name, rate, channels))
    return out


def static_clock_rate(pt: int) -> int | None:
    """RFC 3551's clock rate of a static payload type (rtp/codecs.py), named types only."""
    c = codecs_registry.static(pt)
    return c.clock_rate if c else None


def static_codec_name(pt: int) -> str | None:
    c = codecs_registry.static(pt)
    return c.name if c else None
