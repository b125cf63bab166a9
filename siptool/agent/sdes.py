"""SRTP for the agent, sans-I/O: SDES keys in the offer and answer (RFC 4568) and the protection of
one RTP session with them (RFC 3711, AEAD suites RFC 7714).

The offerer (`call`, `check`) offers every suite it is given, strongest first, each a=crypto line
with a fresh key of its own (RFC 4568 6.1); the answerer (`echo`) takes the strongest suite both
support (`rtp/srtp.strongest`) and answers with that line's tag and suite and a key of its own
(7.1.2). Each side protects what it sends with its own key and unprotects with the other's: two
keys, one per direction.

Modes (`--srtp`):
  mandatory  RTP/SAVP with a=crypto: SRTP or no call. An answer in RTP/AVP is a downgrade (RFC 3264
             6: the answer keeps the offer's transport), refused by hanging up before any media.
  optional   "best-effort SRTP": RTP/AVP with a=crypto lines. An answerer that does SRTP answers
             with a=crypto and the media is SRTP; one that does not ignores the unknown attribute
             (RFC 4566 5.13) and the media is plain RTP. This is what Asterisk, FreeSWITCH and
             baresip (mediaenc=srtp) do; the standard way to offer both, SDP capability negotiation
             (RFC 5939), is rarely implemented, and two alternative m= lines break most peers.
  off        plain RTP/AVP.
An answerer in mode `off` refuses RTP/SAVP offers (488) and answers best-effort offers in plain
RTP; in `optional` it follows the offer; in `mandatory` it refuses what is not SRTP.

`Protection` holds the four libsrtp contexts of one session (SRTP and SRTCP, each way). SRTP and
SRTCP have contexts of their own so that the echo's port thread (RTP) and the event loop (RTCP)
never share one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .. import sdp as sdplib
from ..report.model import AgentSrtp
from ..rtp.packet import is_rtcp
from ..rtp.srtp import SUITES, CryptoContext, MasterKey, Outcome, new_master_key, strongest

OFFERED = ("AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")  # the default, strongest first
KNOWN_PARAMS = ("WSH=",)  # session parameters honoured (RFC 4568 6.3.7: a window size hint, ignored)


class SrtpMode(StrEnum):
    OFF = "off"
    OPTIONAL = "optional"
    MANDATORY = "mandatory"


@dataclass(frozen=True, slots=True)
class Keys:
    """What SDES agreed for one stream: the suite, our a=crypto line (the key we protect with) and
    the far end's (the key its packets are unprotected with)."""

    suite: str
    local: sdplib.Crypto
    remote: sdplib.Crypto


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an answerer refuses an offer's media (488 Not Acceptable Here, RFC 3261 21.4.26), with the
    Warning it says so in (RFC 3261 20.43)."""

    warning: int  # 302 incompatible transport protocol, 399 miscellaneous
    text: str


def secure(proto: str) -> bool:
    """An SRTP profile: RTP/SAVP or RTP/SAVPF (RFC 3711 12, RFC 5124)."""
    return proto.upper() in ("RTP/SAVP", "RTP/SAVPF")


def offer(mode: SrtpMode, suites=OFFERED) -> tuple[str, list[sdplib.Crypto]]:
    """The m= line's transport and a=crypto lines of an offer: one line per suite, tags from 1, a
    fresh key each (RFC 4568 6.1: keys from a cryptographically strong source)."""
    mode = SrtpMode(mode)
    if mode is SrtpMode.OFF:
        return "RTP/AVP", []
    lines = [sdplib.Crypto(tag, suite, [MasterKey(new_master_key(suite))]) for tag, suite in enumerate(suites, 1)]
    return ("RTP/SAVP" if mode is SrtpMode.MANDATORY else "RTP/AVP"), lines


def usable(lines: list[sdplib.Crypto]) -> list[sdplib.Crypto]:
    """Lines whose suite, keys and session parameters libsrtp can honour (RFC 4568 7.1.2: an
    answerer ignores the others): several keys need MKIs of one length (6.1)."""
    return [c for c in lines if c.suite in SUITES and all(p.upper().startswith(KNOWN_PARAMS) for p in c.session_params)
            and len({k.mki_length for k in c.keys}) == 1 and (len(c.keys) == 1 or c.keys[0].mki_length > 0)]


def answer(offered: sdplib.Media, mode: SrtpMode, suites=OFFERED) -> Keys | Refusal | None:
    """The answerer's side: Keys (answer in SRTP with `keys.local`), a Refusal, or None (plain RTP)."""
    mode = SrtpMode(mode)
    proto = offered.proto.upper()
    if "TLS" in proto or offered.fingerprint:
        return Refusal(302, "DTLS-SRTP is not supported (SDES keys only)")
    if secure(proto) and mode is SrtpMode.OFF:
        return Refusal(302, "SRTP is not enabled here (RTP/AVP only)")
    if not secure(proto) and (mode is SrtpMode.OFF or not offered.crypto):
        return Refusal(302, "SRTP (RTP/SAVP) is required") if mode is SrtpMode.MANDATORY else None
    chosen = strongest(usable(offered.crypto), suites)
    if chosen is None:
        if not secure(proto) and mode is SrtpMode.OPTIONAL:
            return None  # best effort: no suite in common, plain RTP
        names = ", ".join(c.suite for c in offered.crypto) or "none"
        return Refusal(399, f"no common SRTP crypto suite (offered {names}; accepted {', '.join(suites)})")
    ours = sdplib.Crypto(chosen.tag, chosen.suite, [MasterKey(new_master_key(chosen.suite))])
    return Keys(chosen.suite, ours, chosen)


def accept(offered: list[sdplib.Crypto], proto: str, answered: sdplib.Media, mode: SrtpMode) -> Keys | str | None:
    """The offerer's side, reading the answer: Keys, None (plain RTP: we offered none, or the best-
    effort offer was declined), or what is wrong with it in words (the call then ends before any
    media: our keys must not protect nothing, nor our audio go in clear when SRTP is mandatory)."""
    mode = SrtpMode(mode)
    if not offered:
        if secure(answered.proto):
            return f"the answer is {answered.proto} to an RTP/AVP offer (RFC 3264 6: it keeps the offer's transport)"
        return None
    if mode is SrtpMode.MANDATORY and not secure(answered.proto):
        return (f"SRTP downgraded: the answer is {answered.proto} to an {proto} offer (media would go in clear; "
                "RFC 3264 6: the answer keeps the offer's transport)")
    by_tag = {c.tag: c for c in offered}
    theirs = next((c for c in usable(answered.crypto) if c.tag in by_tag and c.suite == by_tag[c.tag].suite), None)
    if theirs is None:
        if not answered.crypto and not secure(answered.proto):
            return None  # best effort declined: plain RTP
        said = ", ".join(f"{c.tag} {c.suite}" for c in answered.crypto) or "none"
        return f"the answer has no a=crypto line matching an offered one (RFC 4568 7.1.3; answered: {said})"
    return Keys(theirs.suite, by_tag[theirs.tag], theirs)


class Protection:
    """SRTP and SRTCP for one RTP session: `protect` what we send with our key, `unprotect` what comes
    with the far end's (None when it fails: counted in `rx.counts` / `rx_rtcp.rtcp_counts`); `echo`
    turns a received SRTP packet into the one the echo sends back. Plugs into RtpSession's hooks."""

    def __init__(self, keys: Keys, window: int = 128) -> None:
        self.keys = keys
        self.tx = CryptoContext(keys.suite, keys.local.keys, outbound=True)
        self.rx = CryptoContext(keys.suite, keys.remote.keys, window=window)
        self.tx_rtcp = CryptoContext(keys.suite, keys.local.keys, outbound=True)
        self.rx_rtcp = CryptoContext(keys.suite, keys.remote.keys, window=window)

    @property
    def suite(self) -> str:
        return self.keys.suite

    def facts(self) -> AgentSrtp:
        """What our receiving context did with the far end's SRTP, for the report (call.agent.srtp)."""
        c = self.rx.counts
        return AgentSrtp(self.suite, received=c.total, authenticated=c.ok, auth_failures=c.auth_failed,
                         replayed=c.replayed)

    def protect(self, packet: bytes) -> bytes:
        """RTP -> SRTP, RTCP -> SRTCP (told apart by the packet type, RFC 5761 4)."""
        return self.tx_rtcp.protect_rtcp(packet) if is_rtcp(packet) else self.tx.protect(packet)

    def unprotect(self, packet: bytes) -> bytes | None:
        if is_rtcp(packet):
            result = self.rx_rtcp.unprotect_rtcp(packet)
        else:
            result = self.rx.unprotect(packet)
        return result.packet if result.outcome is Outcome.OK else None

    def echo(self, packet: bytes, count: bool = True) -> bytes | None:
        """A received SRTP packet, decrypted and protected again with our key (None: dropped).
        `count=False`: a failure is not counted (a packet from a source not yet known to be this
        call's, tried to find whose it is: only its own key authenticates it)."""
        result = self.rx.unprotect(packet, count)
        return self.tx.protect(result.packet) if result.outcome is Outcome.OK else None


__all__ = ["Keys", "OFFERED", "Protection", "Refusal", "SrtpMode", "accept", "answer", "offer", "secure", "usable"]
