"""Findings about the transports SIP rode on: WebSocket (RFC 6455, RFC 7118), SCTP (RFC 4168, RFC
9260) and TLS that could not be read. One function per finding; analysis/streams.py and the
Analyzer call them with what they saw."""

from __future__ import annotations

from ..capture.websocket import CLOSE_CODES, Close, Handshake
from ..report.model import Finding, Severity


def _flow(key: tuple) -> str:
    src, sport, dst, dport = key
    return f"{src}:{sport} -> {dst}:{dport}"


def _what(problems: list[tuple[int, str]]) -> str:
    return "; ".join(dict.fromkeys(w for _, w in problems[:6]))


def websocket_handshake(client: tuple, shake: Handshake) -> Finding:
    """The Upgrade does not set up SIP over WebSocket as RFC 7118 4.1 asks: `sip` not offered, not
    selected, or the Upgrade refused (or RFC 6455's accept key wrong)."""
    problems = shake.problems()
    refused = shake.response is not None and not shake.accepted
    frames = [shake.request_frame] + ([shake.response_frame] if shake.response is not None else [])
    return Finding(
        code="ws.subprotocol", severity=Severity.WARNING,
        title=("WebSocket Upgrade refused" if refused else "WebSocket without the sip subprotocol")
        + f" ({client[0]}:{client[1]} -> {client[2]}:{client[3]})",
        explanation=f"On {_flow(client)}: {'; '.join(problems)}. A SIP WebSocket client must ask for the sip "
                    "subprotocol (Sec-WebSocket-Protocol: sip) and a server that takes SIP must select it in "
                    "its 101 response; without it the server may drop or misread every SIP message.",
        fix="Configure the WebSocket client (JsSIP, SIP.js, the softphone) to request the sip subprotocol, and "
            "the server or proxy in front of it to accept it (kamailio: the websocket module's sub_protocols; "
            "a reverse proxy must pass Sec-WebSocket-Protocol through).",
        frames=frames,
        evidence={"connection": _flow(client), "offered": shake.request.headers.get("sec-websocket-protocol", ""),
                  "status": shake.response.status if shake.response else None,
                  "selected": shake.subprotocol, "problems": problems})


def websocket_closed(key: tuple, close: Close, transport: str) -> Finding:
    """A Close frame with a status code other than normal closure or going away (RFC 6455 7.4.1)."""
    meaning = CLOSE_CODES.get(close.code, "a code the application defines" if close.code and close.code >= 3000
                              else "no defined meaning")
    return Finding(
        code="ws.closed", severity=Severity.WARNING,
        title=f"WebSocket closed with {close.code} ({meaning}) by {key[0]}:{key[1]}",
        explanation=f"On {_flow(key)} ({transport}) the WebSocket was closed with status {close.code} ({meaning})"
                    + (f", reason {close.reason!r}" if close.reason else "")
                    + ". SIP over that connection ends with it; a registration or call on it is cut off "
                      "until the client reconnects.",
        fix="Read the closing side's log at that time: 1002 and 1007 mean it received frames it could not accept "
            "(fragments, bad UTF-8), 1009 a message too large, 1008 a policy (origin, authentication).",
        frames=[close.frame], evidence={"code": close.code, "reason": close.reason, "flow": _flow(key)})


def websocket_malformed(key: tuple, problems: list[tuple[int, str]]) -> Finding:
    """Frames of one WebSocket direction that break RFC 6455 (each skipped by its own length)."""
    frames = sorted({f for f, _ in problems if f})
    return Finding(
        code="ws.malformed", severity=Severity.WARNING,
        title=f"{len(problems)} WebSocket frame problem(s) from {key[0]}:{key[1]}",
        explanation=f"On {_flow(key)}: {_what(problems)}. A peer that follows RFC 6455 closes the connection "
                    "on such frames (status 1002); the SIP messages in well-formed frames were analysed.",
        fix="Fix the sending side's WebSocket library or the proxy rewriting the stream; check masking "
            "(clients mask, servers do not) and fragmentation of SIP messages.",
        frames=frames[:12], evidence={"flow": _flow(key), "problems": len(problems)})


def sctp_malformed(key: tuple, problems: list[tuple[int, str]]) -> Finding:
    """SCTP chunks that cannot be read, or user messages never completed (RFC 9260 3.2, 6.9)."""
    frames = sorted({f for f, _ in problems if f})
    return Finding(
        code="sctp.malformed", severity=Severity.WARNING,
        title=f"SCTP from {key[0]}:{key[1]}: {len(problems)} problem(s) with chunks or user messages",
        explanation=f"On {_flow(key)}: {_what(problems)}. SIP messages in the chunks that could be read were "
                    "analysed; a message whose fragments did not all arrive is missing.",
        fix="Capture closer to the endpoint (missing fragments are often capture loss); otherwise check the "
            "sender's SCTP stack.",
        frames=frames[:12], evidence={"association": _flow(key), "problems": len(problems)})


def tls_unread(streams, report, keylog: bool) -> Finding | None:
    """TLS flows whose SIP could not be read (no key log, or none of its keys fits them): which flows
    and packets, and which media in the capture is then unexplained (no SDP announces it)."""
    flows = {k: f for k, f in streams.tls_flows.items() if k not in streams.decrypted}
    if not flows:
        return None
    packets = sum(f[0] for f in flows.values())
    frames = sorted(f for fl in flows.values() for f in fl[1:])
    ends = sorted(_flow(k) for k in flows)
    orphans = [s for s in [*report.streams, *(s for c in report.calls for s in c.streams)] if not s.from_sdp]
    unexplained = [f"{s.src} -> {s.dst} ({s.packets} packets)" for s in orphans]
    why = ("the key log given has no keys for these TLS sessions" if keylog
           else "no key log was given (--tls-keylog)")
    explanation = (f"{packets} TLS packets on {len(flows)} flow direction(s) ({', '.join(ends[:4])}"
                   f"{' ...' if len(ends) > 4 else ''}) could not be read: {why}. What cannot be seen: the SIP "
                   "messages on them (the calls, registrations and their SDP), so which media belongs to which "
                   "call, its codecs, and whether it is SRTP and with which keys.")
    if unexplained:
        explanation += (f" {len(unexplained)} RTP stream(s) that no SDP in this capture announces probably belong "
                        f"to those calls: {', '.join(unexplained[:4])}{' ...' if len(unexplained) > 4 else ''}; "
                        "their figures come from their headers alone.")
    return Finding(
        code="sip.tls", severity=Severity.INFO,
        title=f"{packets} TLS packets (encrypted SIP?) not decoded"
              + (": the key log does not open them" if keylog else ""),
        explanation=explanation,
        fix="Give the TLS session keys: siptool analyze --tls-keylog FILE (the NSS key log that SSLKEYLOGFILE "
            "or siptool call --tls-keylog writes), or capture where TLS is terminated.",
        frames=frames[:20],
        evidence={"flows": ends[:10], "packets": packets, "key_log": keylog,
                  "streams_without_sdp": unexplained[:20]})
