"""Security findings: SRTP offers refused or answered in clear, SRTP that a receiver would drop (wrong
key, replays), and secrets the signalling shows in clear (digest credentials, SDES keys). One small
function per finding.

`Exposure` notes, as messages pass, which ones carry secrets over a transport without TLS (UDP,
TCP, WS, SCTP); its findings are made per call at the end. The SRTP rules read each stream's Srtp
record (analysis/secure_media.py)."""

from __future__ import annotations

from typing import Iterable

from ..report.model import Call, Finding, SdpEntry, Severity, Stream
from .addresses import address_kind
from .context import Context

CLEAR = ("UDP", "TCP", "WS", "SCTP")  # transports that show a message to anyone on the path
MAX_KEPT = 10  # messages noted per call and kind
ONE_WAY_SHARE = 0.5  # more failed packets than this: the receiver hears (next to) nothing


# --- SRTP offered and not agreed -----------------------------------------------------------------

SECURE_PROFILES = ("RTP/SAVP", "RTP/SAVPF")  # SRTP keyed by SDES (RFC 3711 12, RFC 4568)
REFUSALS = (488, 415, 606)  # the offer itself was not acceptable (RFC 3261 21.4.26, 21.4.13, 21.6.4)


def _offers_and_answers(call: Call) -> Iterable[tuple[SdpEntry, SdpEntry | None]]:
    """Each audio offer with each answer to it (a 183's and the 200's); an offer never answered with None."""
    offer, answered = None, False
    for e in call.sdp:
        if e.media != "audio":
            continue
        if e.role == "offer":
            if offer is not None and not answered:
                yield offer, None
            offer, answered = e, False
        elif offer is not None:
            answered = True
            yield offer, e
    if offer is not None and not answered:
        yield offer, None


def srtp_refused(call: Call, ctx: Context) -> Iterable[Finding]:
    """An SRTP offer (RTP/SAVP with a=crypto) refused outright: no crypto suite in common, no SRTP at
    all at the far end, or (as for any offer) no codec in common. RFC 4568 7.1.2: an answerer that
    accepts none of the a=crypto lines must reject the media stream."""
    if call.final_status not in REFUSALS:
        return
    offer = next((o for o, a in _offers_and_answers(call) if a is None and o.protocol.upper() in SECURE_PROFILES),
                 None)
    if offer is None:
        return
    suites = ", ".join(offer.crypto) or "no a=crypto key"
    yield Finding(
        code="srtp.refused", severity=Severity.ERROR,
        title=f"SRTP offer refused ({call.final_status}): no crypto suite, or no codec, in common",
        explanation=f"The offer was {offer.protocol} (SRTP keyed by SDES, RFC 4568) with {suites}, and codecs "
                    f"{', '.join(c.split()[-1] for c in offer.codecs) or 'none'}; the far end answered "
                    f"{call.final_status} {call.final_reason}. It accepts none of the offered crypto suites, does not "
                    "do SRTP at all on this trunk, or takes none of the codecs (its Warning header, if any, says which).",
        fix="Offer the suites the trunk documents (AES_CM_128_HMAC_SHA1_80 is the one every SDES peer knows); if "
            "the trunk takes no SRTP, use plain RTP/AVP (or best-effort SRTP: --srtp optional).",
        call_id=call.call_id, frames=[offer.frame],
        evidence={"protocol": offer.protocol, "suites": list(offer.crypto), "codecs": list(offer.codecs),
                  "status": call.final_status})


def srtp_downgrade(call: Call, ctx: Context) -> Iterable[Finding]:
    """An RTP/SAVP offer answered in RTP/AVP: the media would go in clear (RFC 3264 6: the answer
    keeps the offer's transport; RFC 4568 7.1.2: an answerer that cannot do SRTP rejects it)."""
    for offer, answer in _offers_and_answers(call):
        if answer is None or offer.protocol.upper() not in SECURE_PROFILES:
            continue
        if answer.port and answer.protocol.upper() not in SECURE_PROFILES:
            yield Finding(
                code="srtp.downgrade", severity=Severity.ERROR,
                title=f"SRTP downgraded: {offer.protocol} offer answered {answer.protocol}",
                explanation=f"The {offer.message} offered {offer.protocol} (SRTP, {', '.join(offer.crypto) or 'no key'}) "
                            f"and the {answer.message} answered {answer.protocol}"
                            + (" with a=crypto" if answer.crypto else " without a=crypto")
                            + ". RFC 3264 6 keeps the offer's transport in the answer: an answerer (or an SBC on "
                              "the way that rewrote the SDP) that cannot do SRTP must refuse it (488). As answered, "
                              "media goes in clear, or one side sends SRTP the other plays as noise.",
                fix="Enable SRTP (SDES) on the answering side or the SBC; a caller that requires SRTP should hang "
                    "up on such an answer (siptool call --srtp mandatory does).",
                call_id=call.call_id, frames=[offer.frame, answer.frame],
                evidence={"offer": offer.protocol, "answer": answer.protocol, "suites": list(offer.crypto)})
            return


# --- SRTP a receiver would drop -----------------------------------------------------------------

def srtp_failures(call: Call, ctx: Context) -> Iterable[Finding]:
    for stream in call.streams:
        yield from stream_failures(stream, call)


def stream_failures(stream: Stream, call: Call | None) -> Iterable[Finding]:
    """Authentication failures (the classic SRTP one-way audio: a wrong key) and replay drops."""
    srtp = stream.srtp
    if srtp is None:
        return
    hears = _side(call, stream.dst)
    if srtp.auth_failures:
        share = srtp.auth_failures / max(srtp.packets, 1)
        one_way = share > ONE_WAY_SHARE
        explanation = (f"{srtp.auth_failures} of {srtp.packets} SRTP packets from {stream.src} to {stream.dst} fail "
                       f"authentication (RFC 3711 3.3): a receiver holding "
                       + ("any key the signalling gave" if not srtp.checked else f"the {srtp.suite} key that "
                          f"authenticates the others") + " drops them")
        if one_way:
            explanation += (f", so {hears or 'the receiver'} hears nothing from this stream although its packets arrive. "
                            "The usual cause is a wrong key: an SBC or B2BUA rewrote a=crypto in the SDP without "
                            "re-encrypting the media, a re-INVITE's new key was not applied, or the sender kept a "
                            "stale key")
        else:
            explanation += ": packets altered on the way, or a key change mid-stream that the signalling did not show"
        if srtp.key_from == "keys-file" or not srtp.checked and stream.first_frame < _first_sdp(call):
            explanation += (". The stream may have begun before the capture: a context that missed the sequence "
                            "wrap has the wrong rollover counter (RFC 3711 3.3.1), which fails every packet too")
        yield Finding(
            code="srtp.auth_failed", severity=Severity.ERROR if one_way else Severity.WARNING,
            title=(f"SRTP one-way audio: {hears or stream.dst} cannot decrypt {stream.src} (wrong key)" if one_way
                   else f"{srtp.auth_failures} SRTP packets fail authentication ({stream.src} -> {stream.dst})"),
            explanation=explanation + ".",
            fix="Compare the a=crypto key each side sent with the one the other side uses; on an SBC, either let "
                "it re-encrypt the media it re-keys or pass a=crypto through unchanged.",
            call_id=call.call_id if call else None, frames=[srtp.first_failure_frame] if srtp.first_failure_frame else [],
            evidence={"stream": f"{stream.src} -> {stream.dst}", "ssrc": stream.ssrc, "packets": srtp.packets,
                      "auth_failures": srtp.auth_failures, "authenticated": srtp.authenticated,
                      "suite": srtp.suite, "reason": srtp.reason})
    if srtp.replayed:
        yield Finding(
            code="srtp.replay", severity=Severity.WARNING,
            title=f"{srtp.replayed} SRTP packets a receiver drops as replays ({stream.src} -> {stream.dst})",
            explanation=f"{srtp.replayed} packets of the stream repeat a packet index already received, or arrive "
                        "later than the replay window (RFC 3711 3.3.2, 128 packets in libsrtp): an SRTP receiver "
                        "drops them, where plain RTP would play them. Duplicated or heavily reordered packets on the "
                        "path, or a sender that reuses sequence numbers (a restart without a new SSRC or key).",
            fix="Find where packets are duplicated or reordered (compare captures along the path); a sender that "
                "restarts must change SSRC or key.",
            call_id=call.call_id if call else None,
            evidence={"stream": f"{stream.src} -> {stream.dst}", "ssrc": stream.ssrc, "replayed": srtp.replayed})


def _side(call: Call | None, endpoint: str) -> str:
    """Whose media description names this address ("the caller"), or ""."""
    if call is None:
        return ""
    for entry in call.sdp:
        if f"{entry.address}:{entry.port}" == endpoint or f"[{entry.address}]:{entry.port}" == endpoint:
            return f"the {entry.side}" if entry.side else ""
    return ""


def _first_sdp(call: Call | None) -> int:
    return min((e.frame for e in call.sdp), default=0) if call is not None else 0


# --- secrets in clear signalling ----------------------------------------------------------------

class Exposure:
    """Messages of each call that show secrets over a transport without TLS."""

    def __init__(self) -> None:
        self.credentials: dict[int, list[tuple[int, str, str, bool]]] = {}  # id(call) -> (frame, from, to, public)
        self.keys: dict[int, list[tuple[int, str, str, bool]]] = {}

    def message(self, msg, hop, call: Call) -> None:
        if hop.transport not in CLEAR:
            return
        where = (hop.frame, hop.source, hop.destination,
                 address_kind(hop.src) == "public" or address_kind(hop.dst) == "public")
        if msg.is_request and any("digest" in (msg.get(h) or "").lower()[:10]
                                  for h in ("authorization", "proxy-authorization")):
            _keep(self.credentials, id(call), where)
        if msg.body and b"a=crypto:" in msg.body and b"inline:" in msg.body:
            _keep(self.keys, id(call), where)

    def findings(self, call: Call) -> list[Finding]:
        return [f for f in (digest_in_clear(call, self.credentials.get(id(call), [])),
                            srtp_keys_in_clear(call, self.keys.get(id(call), []))) if f is not None]


def _keep(table: dict, key: int, where: tuple) -> None:
    seen = table.setdefault(key, [])
    if len(seen) < MAX_KEPT:
        seen.append(where)


def digest_in_clear(call: Call, seen: list[tuple[int, str, str, bool]]) -> Finding | None:
    """Digest credentials (RFC 3261 22.4, RFC 8760) sent over UDP/TCP across a public path: the
    response can be replayed while the nonce lives and guessed offline against a password list."""
    public = [w for w in seen if w[3]]
    if not public:
        return None
    frame, src, dst, _ = public[0]
    return Finding(
        code="security.digest_cleartext", severity=Severity.WARNING,
        title=f"Digest credentials sent in clear from {src} to {dst}",
        explanation=f"{len(public)} request(s) of this call carry an Authorization or Proxy-Authorization header over "
                    "a transport without TLS on a public path. Anyone on the path sees the user name, realm, nonce "
                    "and response: the response can be replayed while the nonce is accepted, and the password "
                    "guessed offline (MD5 and SHA-256 digests are fast to try).",
        fix="Use SIP over TLS (sips:, transport=tls) to the trunk; use long random passwords, and prefer IP "
            "authentication or mutual TLS where the carrier offers it.",
        call_id=call.call_id, frames=[w[0] for w in public][:10], evidence={"requests": len(public)})


def srtp_keys_in_clear(call: Call, seen: list[tuple[int, str, str, bool]]) -> Finding | None:
    """SDES keys (RFC 4568) in SIP without TLS: RFC 4568 8.3 requires the signalling to be secured,
    since whoever reads the SDP can decrypt the media."""
    if not seen:
        return None
    public = any(w[3] for w in seen)
    frame, src, dst, _ = seen[0]
    return Finding(
        code="security.srtp_keys_cleartext", severity=Severity.WARNING if public else Severity.INFO,
        title=f"SRTP keys sent in clear SIP ({src} -> {dst})",
        explanation=f"{len(seen)} message(s) of this call carry a=crypto inline keys (SDES) over a transport "
                    f"without TLS{' on a public path' if public else ''}. The media is only as secret as the "
                    "signalling: whoever can read these messages can decrypt the SRTP (RFC 4568 8.3 requires "
                    "the signalling to be protected). siptool used the keys to check the streams.",
        fix="Send SIP over TLS whenever SDES keys are used (or key the media with DTLS-SRTP, whose keys never "
            "travel in the signalling).",
        call_id=call.call_id, frames=[w[0] for w in seen][:10], evidence={"messages": len(seen), "public": public})
