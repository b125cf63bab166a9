"""What `diff` compares in each SIP message, and how two copies of one message differ: the headers a
proxy, SBC or B2BUA rewrites (Request-URI, Call-ID, From, To, Contact, Via, Record-Route, Route) and
the SDP's audio section (RFC 8866: c=, m= port and protocol, codecs in order, ptime, direction,
crypto suites of RFC 4568)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import sdp as sdp_parser
from ..report.diff_model import Rewrite
from ..sip.message import SipMessage
from ..sip.uri import UriError, parse_via


@dataclass(slots=True)
class SdpFacts:
    """The first audio m= section of a body, as it applies (media-level c= or the session's)."""

    connection: str = ""
    port: int = 0
    proto: str = ""
    codecs: list[str] = field(default_factory=list)  # encoding names in preference order
    ptime: int | None = None
    direction: str = ""
    crypto: list[str] = field(default_factory=list)  # SDES suites


@dataclass(slots=True)
class MessageFacts:
    """The fields of one message that diff compares."""

    uri: str = ""  # Request-URI (requests)
    call_id: str = ""
    from_: str = ""  # From, the whole value (display name, URI, tag)
    to: str = ""
    contact: str = ""
    via: list[str] = field(default_factory=list)  # each Via's transport and sent-by (its branch differs per hop)
    record_route: list[str] = field(default_factory=list)
    route: list[str] = field(default_factory=list)
    sdp: SdpFacts | None = None


def message_facts(msg: SipMessage) -> MessageFacts:
    """The compared fields of a parsed message; a field that cannot be read is kept as written."""
    return MessageFacts(uri=msg.uri or "", call_id=msg.call_id or "", from_=msg.get("from") or "",
                        to=msg.get("to") or "", contact=msg.get("contact") or "",
                        via=[_sent_by(v) for v in msg.get_all("via")], record_route=msg.get_all("record-route"),
                        route=msg.get_all("route"), sdp=_sdp(msg))


def _sent_by(value: str) -> str:
    try:
        via = parse_via(value)
    except UriError:
        return value.split(";")[0].strip()
    return f"{via.transport} {via.host}" + (f":{via.port}" if via.port else "")


def _sdp(msg: SipMessage) -> SdpFacts | None:
    if not msg.body or "sdp" not in (msg.get("content-type") or "").lower():
        return None
    desc = sdp_parser.parse(msg.body)
    audio = sdp_parser.audio_in_force(desc)
    if audio is None:
        return SdpFacts()
    return SdpFacts(connection=audio.connection, port=audio.port, proto=audio.proto,
                    codecs=[name for _, name, _, _ in sdp_parser.codecs(audio)], ptime=audio.ptime,
                    direction=audio.direction, crypto=list(audio.crypto))


# --- comparing two copies of one message ---------------------------------------------------------

HEADERS = (("Request-URI", "uri"), ("Call-ID", "call_id"), ("From", "from_"), ("To", "to"),
           ("Contact", "contact"))
LISTS = (("Via", "via"), ("Record-Route", "record_route"), ("Route", "route"))


def differences(a: MessageFacts, b: MessageFacts) -> list[tuple[str, str, str, str]]:
    """(field, value on a, value on b, note) for each compared field that differs."""
    out = [(name, getattr(a, attr), getattr(b, attr), "") for name, attr in HEADERS
           if getattr(a, attr) != getattr(b, attr)]
    for name, attr in LISTS:
        x, y = getattr(a, attr), getattr(b, attr)
        if x != y:
            out.append((name, ", ".join(x) or "none", ", ".join(y) or "none", _list_note(x, y)))
    if a.sdp is not None and b.sdp is not None:
        out += _sdp_differences(a.sdp, b.sdp)
    elif (a.sdp is None) != (b.sdp is None):
        out.append(("SDP", "yes" if a.sdp else "none", "yes" if b.sdp else "none",
                    "body added" if b.sdp else "body removed"))
    return out


def _list_note(a: list[str], b: list[str]) -> str:
    """How a header list changed: entries added or removed on top (a proxy's own Via or
    Record-Route), at the bottom, or rewritten."""
    if not a:
        return f"{len(b)} added"
    if not b:
        return "removed"
    if len(b) > len(a) and b[-len(a):] == a:
        return f"{len(b) - len(a)} added on top"
    if len(a) > len(b) and a[-len(b):] == b:
        return f"{len(a) - len(b)} removed from top"
    if len(b) > len(a) and b[:len(a)] == a:
        return f"{len(b) - len(a)} added at the bottom"
    if len(a) > len(b) and a[:len(b)] == b:
        return f"{len(a) - len(b)} removed from the bottom"
    return "rewritten"


def _sdp_differences(a: SdpFacts, b: SdpFacts) -> list[tuple[str, str, str, str]]:
    out = []
    for name, x, y in (("c=", a.connection, b.connection), ("m= port", str(a.port), str(b.port)),
                       ("proto", a.proto, b.proto), ("ptime", str(a.ptime or "-"), str(b.ptime or "-")),
                       ("direction", a.direction, b.direction)):
        if x != y:
            out.append((name, x, y, ""))
    if a.codecs != b.codecs:
        out.append(("codecs", " ".join(a.codecs) or "none", " ".join(b.codecs) or "none", codec_note(a.codecs, b.codecs)))
    if a.crypto != b.crypto:
        out.append(("crypto", ", ".join(a.crypto) or "none", ", ".join(b.crypto) or "none",
                    "SRTP keys dropped" if not b.crypto else "SRTP keys added" if not a.crypto else "suites changed"))
    return out


def codec_note(a: list[str], b: list[str]) -> str:
    """'removed: PCMA', 'added: G729', 'reordered' (or several, joined)."""
    removed = [c for c in a if c not in b]
    added = [c for c in b if c not in a]
    parts = ([f"removed: {' '.join(removed)}"] if removed else []) + ([f"added: {' '.join(added)}"] if added else [])
    kept_a = [c for c in a if c in b]
    kept_b = [c for c in b if c in a]
    if kept_a != kept_b:
        parts.append("reordered")
    return "; ".join(parts)


def collect(rewrites: list[Rewrite], label: str, frames: tuple[int, int],
            diffs: list[tuple[str, str, str, str]]) -> None:
    """Add one message's differences to the call's list, each distinct change once with the
    messages that show it."""
    for name, x, y, note in diffs:
        same = next((r for r in rewrites if (r.field, r.a, r.b) == (name, x, y)), None)
        if same is None:
            rewrites.append(Rewrite(field=name, messages=[label], a=x, b=y, note=note,
                                    frame_a=frames[0], frame_b=frames[1]))
        elif label not in same.messages:
            same.messages.append(label)
