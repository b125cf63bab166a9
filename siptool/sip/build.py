"""Building SIP messages (RFC 3261 8.1.1, 8.2.6, 20): requests, responses, Via and tags, and the
checks a received request must pass before a user agent handles it (8.2, 18.2).

Parsing is siptool.sip.message (one parser for capture and agent); this module only builds.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from ..digits import uint
from .message import SipMessage, param
from .uri import UriError, Via, is_ip, name_addr, parse_via
from .uri import parse_uri as _parse_uri
from .uri import response_address as _response_address
from .uri import top_via

MAGIC = "z9hG4bK"  # RFC 3261 8.1.1.7 branch cookie
REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
           408: "Request Timeout", 415: "Unsupported Media Type", 481: "Call/Transaction Does Not Exist",
           486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 500: "Server Internal Error",
           503: "Service Unavailable"}
USER_AGENT = "siptool"


def new_branch() -> str:
    return MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(5)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def host_ref(host: str) -> str:
    """A host as a SIP URI or Via writes it: an IPv6 address in brackets (RFC 3261 25.1)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def via(transport: str, host: str, port: int, branch: str) -> str:
    """Via with rport (RFC 3581) so responses come back to the port we sent from."""
    return str(Via(transport.upper(), host.strip("[]"), port, {"branch": branch, "rport": ""}))


def request(method: str, uri: str, *, via_value: str, from_value: str, to_value: str, call_id: str, cseq: int,
            contact: str | None = None, routes: list[str] = (), headers: list[tuple[str, str]] = (),
            body: bytes = b"", content_type: str = "application/sdp") -> SipMessage:
    """A request with the mandatory headers in the usual order (RFC 3261 8.1.1)."""
    h = [("via", via_value), ("max-forwards", "70")]
    h += [("route", r) for r in routes]
    h += [("from", from_value), ("to", to_value), ("call-id", call_id), ("cseq", f"{cseq} {method}")]
    if contact:
        h.append(("contact", contact))
    h.append(("user-agent", USER_AGENT))
    h += list(headers)
    if body:
        h.append(("content-type", content_type))
    return SipMessage(method=method, uri=uri, headers=h, body=body)


def response(req: SipMessage, status: int, reason: str | None = None, *, to_tag: str | None = None,
             headers: list[tuple[str, str]] = (), body: bytes = b"", content_type: str = "application/sdp") -> SipMessage:
    """A response copying Via, From, To, Call-ID, CSeq and Record-Route (RFC 3261 8.2.6.2, 12.1.1)."""
    h = [(k, v) for k, v in req.headers if k == "via"]
    to = req.get("to") or ""
    if to_tag and param(to, "tag") is None and status != 100:
        to = f"{to};tag={to_tag}"
    h += [("from", req.get("from") or ""), ("to", to), ("call-id", req.call_id or ""), ("cseq", req.get("cseq") or "")]
    if 100 < status < 300:
        h += [(k, v) for k, v in req.headers if k == "record-route"]
    h.append(("server", USER_AGENT))
    h += list(headers)
    if body:
        h.append(("content-type", content_type))
    return SipMessage(status=status, reason=reason if reason is not None else REASONS.get(status, ""),
                      headers=h, body=body)


def set_header(msg: SipMessage, name: str, value: str | None) -> None:
    """Replace every value of a header (or remove it when value is None)."""
    msg.headers = [(k, v) for k, v in msg.headers if k != name]
    if value is not None:
        msg.headers.append((name, value))


def top_via_received(msg: SipMessage, host: str, port: int) -> None:
    """Add received (and rport's value, when asked for) to the top Via of a request that arrived from
    (host, port) (RFC 3261 18.2.1, RFC 3581 4). A Via that does not parse is left as it is."""
    for i, (k, v) in enumerate(msg.headers):
        if k != "via":
            continue
        first, sep, rest = v.partition(",")
        try:
            top = parse_via(first)
        except UriError:
            return
        params = {name: value for name, value in top.params.items() if name != "received"}
        if "rport" in params:
            params["rport"] = str(port)
        params["received"] = host
        msg.headers[i] = (k, str(replace(top, params=params)) + (sep + rest if sep else ""))
        return


def response_address(msg: SipMessage, source: tuple[str, int]) -> tuple[str, int] | None:
    """Where a response goes over UDP (RFC 3261 18.2.2, RFC 3581 4), from the top Via; None when the
    Via is missing or malformed or names no valid address: then no response can be sent."""
    via = top_via(msg)
    return None if via is None else _response_address(via, source)


def public_address(resp: SipMessage) -> tuple[str, int] | None:
    """(received, rport) of a response's top Via (RFC 3581 4): where the far end saw our request come
    from; None when it added neither, or they are not a valid address."""
    via = top_via(resp)
    if via is None or (via.received is None and via.rport is None):
        return None
    host = via.received or via.host
    port = via.rport or via.port or 5060
    return (host, port) if is_ip(host) else None


MAX_REQUEST = 16 * 1024  # larger than any request a trunk sends; above it: 513 (RFC 3261 21.5.14)


def request_problem(msg: SipMessage, size: int) -> tuple[int, str] | None:
    """Why a received request cannot be handled, as (status, reason phrase), or None when it can.
    RFC 3261 8.2: a request without the mandatory headers, with a CSeq that does not match its
    method, or with From/To/Contact that are not URIs gets 400, the phrase naming the problem (21.4.1)."""
    if size > MAX_REQUEST:
        return 513, f"Message Too Large (over {MAX_REQUEST // 1024} KB)"
    if not _is_uri(msg.uri or ""):
        return 400, "Malformed Request-URI"
    for name, title in (("call-id", "Call-ID"), ("cseq", "CSeq"), ("from", "From"), ("to", "To")):
        if not (msg.get(name) or "").strip():
            return 400, f"Missing {title} header field"
    number, method = msg.cseq
    if number < 0:
        return 400, "Malformed CSeq header field"
    if method != (msg.method or "").upper():
        shown = f" {method[:20]}" if method.isascii() and method.isalpha() else ""  # never echo odd bytes
        return 400, f"CSeq method{shown} does not match the request method"
    for name, title in (("from", "From"), ("to", "To")):
        if not _is_uri(name_addr(msg.get(name) or "")[1]):
            return 400, f"Malformed {title} header field"
    contacts = msg.get_all("contact")
    if contacts and not (msg.method == "REGISTER" and [c.strip() for c in contacts] == ["*"]):
        if not all(_is_uri(name_addr(c)[1]) for c in contacts):
            return 400, "Malformed Contact header field"
    if msg.get("max-forwards") is not None and uint((msg.get("max-forwards") or "").strip(), 3, 255) is None:
        return 400, "Malformed Max-Forwards header field"
    return None


def _is_uri(text: str) -> bool:
    """A SIP URI with a valid host, or another absolute URI (tel:, urn:) the agent never routes by."""
    if text[:4].lower() in ("sip:", "sips"):
        try:
            return bool(_parse_uri(text).host)
        except UriError:
            return False
    scheme, colon, rest = text.partition(":")
    return bool(colon and rest and scheme.isascii() and scheme.isalpha())
