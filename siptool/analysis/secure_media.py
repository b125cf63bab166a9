"""SRTP streams in a capture (RFC 3711): which streams are SRTP, how their keys were agreed, and,
when the keys are in sight, what checking each packet's authentication tag finds.

Keys in sight are SDES keys (RFC 4568) from the call's SDP (clear SIP, or SIP a key log opened)
and the --srtp-keys file (rtp/srtp_keys.py). An SDES line is its sender's key, but which side's
line fits which stream is not trusted to the offer/answer roles (a proxy, a fork, a re-INVITE
with new keys): every key of the call is a candidate, and the one that authenticates a stream's
packets is kept for it (`StreamCheck`); a later key is tried when the kept one stops working.
Streams whose keys never travel in the signalling (DTLS-SRTP, ZRTP) are marked with the reason
and not checked: a stream is never judged silent or broken because it is encrypted.

`StreamCheck.packet()` returns a packet's clear RTP once authenticated: the per-stream unprotect
step that the audio content layer needs to read SRTP payloads.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..report.model import Srtp
from ..rtp.srtp import CryptoContext, MasterKey, Outcome

SDES, DTLS, ZRTP, UNKNOWN = "sdes", "dtls-srtp", "zrtp", "unknown"
RETRY_EVERY = 64  # failed packets between tries of the other keys once one key was kept
ZRTP_MAGIC = b"ZRTP"  # RFC 6189 5: magic cookie at bytes 4-7, first byte 0x10
REASONS = {
    DTLS: "its keys are agreed in a DTLS handshake on the media path (DTLS-SRTP, RFC 5764) and never travel in "
          "the signalling: no capture shows them",
    ZRTP: "its keys are agreed by ZRTP (RFC 6189) on the media path: no capture shows them",
    SDES: "the SDP says SRTP but carries no a=crypto key siptool could read (keys exchanged another way, "
          "e.g. MIKEY); give them with --srtp-keys",
    UNKNOWN: "the signalling is encrypted (TLS) and no key log opens it: whether this stream is SRTP, and its "
             "keys, cannot be seen; give the key log with --tls-keylog",
}


@dataclass(frozen=True, slots=True)
class KeyCandidate:
    """One key that could be a stream's sender's: an SDES line seen in the call, or a keys-file line."""

    suite: str
    keys: tuple[MasterKey, ...]
    key_from: str  # "sdp", "sdp-tls", "keys-file"
    frame: int = 0  # of the SIP message that carried it (0: the keys file)


def keying(proto: str, fingerprint: str, attributes) -> str:
    """How an m= section's media is keyed: "" for plain RTP (RFC 3551), SDES for RTP/SAVP(F)
    (RFC 4568), DTLS-SRTP for UDP/TLS/RTP/SAVP(F) or a=fingerprint (RFC 5764), ZRTP when
    a=zrtp-hash is there (RFC 6189 8, which keeps RTP/AVP)."""
    upper = proto.upper()
    if "UDP/TLS/" in upper or (fingerprint and "SAVP" in upper):
        return DTLS
    if any(name == "zrtp-hash" for name, _ in attributes):
        return ZRTP
    return SDES if "SAVP" in upper else ""


def media_path_keying(payload: bytes) -> str:
    """What a non-RTP packet on a media port says about the keys (RFC 7983 demultiplexing): a ZRTP
    packet, a DTLS record (content types 20-63), or nothing ("")."""
    if len(payload) >= 12 and payload[0] == 0x10 and payload[4:8] == ZRTP_MAGIC:
        return ZRTP
    if len(payload) >= 13 and 20 <= payload[0] <= 63 and payload[1] == 0xFE:  # DTLS 1.x version major
        return DTLS
    return ""


class StreamCheck:
    """The SRTP packets (or SRTCP, `rtcp=True`) of one stream, checked against candidate keys.

    `candidates` is a list the caller may extend while the stream runs (a re-INVITE's new key)."""

    __slots__ = ("keying", "candidates", "rtcp", "_contexts", "_kept", "_tried", "_since", "packets",
                 "authenticated", "auth_failures", "replayed", "first_failure_frame")

    def __init__(self, kind: str, candidates: list[KeyCandidate], rtcp: bool = False) -> None:
        self.keying = kind
        self.candidates = candidates
        self.rtcp = rtcp
        self._contexts: dict[int, CryptoContext | None] = {}  # candidate index -> context (None: unusable)
        self._kept: int | None = None  # the candidate that authenticates the stream
        self._tried = 0  # candidates tried since the last success
        self._since = 0  # failures since the kept key last worked
        self.packets = self.authenticated = self.auth_failures = self.replayed = 0
        self.first_failure_frame = 0

    @property
    def keyed(self) -> bool:
        return bool(self.candidates)

    def packet(self, frame: int, data: bytes) -> bytes | None:
        """One SRTP (SRTCP) packet in capture order -> its clear packet when a key authenticates it."""
        self.packets += 1
        if self._kept is not None:
            outcome, clear = self._try(self._kept, data)
            if outcome is Outcome.OK:
                self.authenticated += 1
                self._since = 0
                return clear
            if outcome is Outcome.REPLAYED:
                self.replayed += 1
                return None
            self._since += 1
            if self._since % RETRY_EVERY != 1 and len(self.candidates) == self._tried:
                return self._failed(frame)
        for i in range(len(self.candidates)):
            if i == self._kept:
                continue
            outcome, clear = self._try(i, data)
            if outcome is Outcome.OK:
                self._kept, self._since = i, 0
                self._tried = len(self.candidates)
                self.authenticated += 1
                return clear
        self._tried = len(self.candidates)
        return self._failed(frame)

    def _failed(self, frame: int) -> None:
        self.auth_failures += 1
        if not self.first_failure_frame:
            self.first_failure_frame = frame
        return None

    def _try(self, i: int, data: bytes):
        if i not in self._contexts:
            c = self.candidates[i]
            try:
                self._contexts[i] = CryptoContext(c.suite, c.keys)
            except (ValueError, KeyError):  # a suite libsrtp has no profile for, keys of mixed MKI lengths
                self._contexts[i] = None
        ctx = self._contexts[i]
        if ctx is None:
            return Outcome.MALFORMED, None
        result = ctx.unprotect_rtcp(data) if self.rtcp else ctx.unprotect(data)
        return result.outcome, result.packet

    def summary(self) -> Srtp:
        """The stream's Srtp record for the report."""
        out = Srtp(keying=self.keying, packets=self.packets, authenticated=self.authenticated,
                   auth_failures=self.auth_failures, replayed=self.replayed,
                   first_failure_frame=self.first_failure_frame)
        if self._kept is not None:
            kept = self.candidates[self._kept]
            out.checked, out.suite, out.key_from = True, kept.suite, kept.key_from
        elif self.candidates:
            out.reason = (f"none of the {len(self.candidates)} key(s) seen for it ("
                          f"{', '.join(sorted({c.key_from for c in self.candidates}))}) authenticates its packets")
        else:
            out.reason = REASONS.get(self.keying, REASONS[SDES])
        return out


def unexplained(kind: str) -> Srtp:
    """The mark of a stream whose keys cannot be in sight (DTLS-SRTP, ZRTP, unreadable signalling)."""
    return Srtp(keying=kind, reason=REASONS[kind])


def mark_unannounced(report) -> None:
    """The signalling could not be read (TLS without keys): a stream no SDP announced may be SRTP,
    so it is marked so, with the reason, rather than read as plain RTP."""
    for stream in [*report.streams, *(s for c in report.calls for s in c.streams)]:
        if not stream.from_sdp and stream.srtp is None:
            stream.srtp = unexplained(UNKNOWN)
