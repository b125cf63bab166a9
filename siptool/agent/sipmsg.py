"""Building SIP messages for the user agent (RFC 3261 8.1.1, 8.2.6, 20): requests, responses, URIs, ids.

Parsing is siptool.sip.message (one parser for capture and agent); this module only builds.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ..sip.message import SipMessage, name_addr, param

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


@dataclass(frozen=True, slots=True)
class Uri:
    """The parts of a sip:/sips: URI that routing needs (RFC 3261 19.1.1)."""

    scheme: str
    user: str
    host: str
    port: int | None
    params: dict

    @property
    def transport(self) -> str | None:
        return self.params.get("transport")

    def hostport(self, default: int | None = None) -> tuple[str, int]:
        port = self.port or default or (5061 if self.scheme == "sips" or self.transport == "tls" else 5060)
        return self.host, port


def parse_uri(text: str) -> Uri:
    """'sip:100@127.0.0.1:5070;transport=tcp' -> Uri. Accepts '<...>' and name-addr forms."""
    from ..errors import SiptoolError

    uri = name_addr(text)[1] if "<" in text else text.strip()
    scheme, colon, rest = uri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        raise SiptoolError(f"not a SIP URI: {text!r} (expected sip:user@host[:port])")
    rest, _, ptext = rest.partition(";")
    params = {}
    for p in ptext.split(";") if ptext else []:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip()
    rest = rest.split("?", 1)[0]
    user, at, hostport = rest.rpartition("@")
    if hostport.startswith("["):  # IPv6 reference
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if not host or (port and not port.isdigit()):
        raise SiptoolError(f"bad host or port in SIP URI: {text!r}")
    if port and not 1 <= int(port) <= 65535:
        raise SiptoolError(f"port {int(port)} is out of range (1-65535) in SIP URI {text!r}")
    return Uri(scheme.lower(), user, host, int(port) if port else None, params)


def via(transport: str, host: str, port: int, branch: str) -> str:
    """Via with rport (RFC 3581) so responses come back to the port we sent from."""
    return f"SIP/2.0/{transport.upper()} {host}:{port};branch={branch};rport"


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
    """Add received/rport to the top Via of a request that arrived from (host, port) (RFC 3581 4)."""
    for i, (k, v) in enumerate(msg.headers):
        if k == "via":
            first, sep, rest = v.partition(",")
            parts = [p for p in first.split(";")]
            out = [parts[0]]
            for p in parts[1:]:
                key = p.split("=", 1)[0].strip().lower()
                if key == "rport":
                    out.append(f"rport={port}")
                elif key != "received":
                    out.append(p)
            out.append(f"received={host}")
            msg.headers[i] = (k, ";".join(out) + (sep + rest if sep else ""))
            return


def response_address(msg: SipMessage, default: tuple[str, int]) -> tuple[str, int]:
    """Where a response goes over UDP (RFC 3261 18.2.2, RFC 3581 4): received/rport of the top Via."""
    vias = msg.get_all("via")
    if not vias:
        return default
    v = vias[0]
    host = param(v, "received") or default[0]
    rport = param(v, "rport")
    if rport and rport.isdigit():
        return host, int(rport)
    sent_by = v.split(";")[0].split()[-1] if v.split() else ""
    h, _, p = sent_by.rpartition(":") if sent_by.count(":") == 1 else (sent_by, "", "")
    return (param(v, "received") or h or default[0], int(p) if p.isdigit() else 5060)


def public_address(resp: SipMessage) -> tuple[str, int] | None:
    """(received, rport) of a response's top Via (RFC 3581 4): where the far end saw our request come
    from; None when it added neither."""
    vias = resp.get_all("via")
    if not vias:
        return None
    received, rport = param(vias[0], "received"), param(vias[0], "rport")
    if not received and not (rport and rport.isdigit()):
        return None
    sent_by = vias[0].split(";")[0].split()[-1]
    host, _, port = sent_by.rpartition(":")
    return received or host, int(rport) if rport and rport.isdigit() else int(port or 5060)
