"""SRTP and SRTCP (RFC 3711, AEAD suites RFC 7714) on libsrtp, through pylibsrtp. Sans-I/O.

A `CryptoContext` is one sender's cryptographic context (RFC 3711 3.2): a crypto suite and its
master key(s). `unprotect()` returns an `Outcome` and the clear packet: authentication failures,
replays and packets libsrtp cannot take are counted in `counts`, never raised, so a handler that
reads a peer's or a capture's packets cannot be brought down by them. `protect()` is for the
agent's own packets.

pylibsrtp 1.0 ships libsrtp2 2.7.0 statically linked with OpenSSL 3.5 (no system library needed):
AES-CM with HMAC-SHA1 and AES-GCM (RFC 7714) both work. Its binding has no MKI (RFC 3711 3.1)
field, so the MKI is handled here: it is not authenticated, so it is taken out of a packet before
libsrtp checks it (and put in after protecting), and it picks which master key applies. Its binding
also cannot set the rollover counter (RFC 3711 3.3.1): a context starts at ROC 0, which is right
when it sees a stream from its first packet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable


@dataclass(frozen=True, slots=True)
class Suite:
    """An SDES crypto suite (RFC 4568 6.2, RFC 7714 14.1) and its libsrtp profile."""

    name: str
    key_length: int  # master key, bytes
    salt_length: int  # master salt, bytes
    rtp_tag: int  # authentication tag on SRTP, bytes
    rtcp_tag: int  # ... and on SRTCP
    aead: bool  # AES-GCM: the tag is part of the cipher text (RFC 7714 7)
    strength: int  # higher is stronger: the answerer's choice (`strongest`)
    profile: str  # pylibsrtp.Policy attribute

    @property
    def key_salt_length(self) -> int:
        return self.key_length + self.salt_length


SUITES = {s.name: s for s in (
    Suite("AEAD_AES_256_GCM", 32, 12, 16, 16, True, 4, "SRTP_PROFILE_AEAD_AES_256_GCM"),
    Suite("AEAD_AES_128_GCM", 16, 12, 16, 16, True, 3, "SRTP_PROFILE_AEAD_AES_128_GCM"),
    Suite("AES_CM_128_HMAC_SHA1_80", 16, 14, 10, 10, False, 2, "SRTP_PROFILE_AES128_CM_SHA1_80"),
    # RFC 4568 6.2.2: the 32-bit tag is for SRTP only; SRTCP keeps the 80-bit one
    Suite("AES_CM_128_HMAC_SHA1_32", 16, 14, 4, 10, False, 1, "SRTP_PROFILE_AES128_CM_SHA1_32"),
)}
SRTCP_INDEX = 4  # E flag and 31-bit SRTCP index (RFC 3711 3.4)
MAX_PACKET = 1500  # pylibsrtp's buffer: longer packets are refused (counted as malformed)


class Outcome(StrEnum):
    """What became of one packet given to `unprotect` (the names a report counts by)."""

    OK = "ok"  # authenticated (and decrypted)
    AUTH_FAILED = "auth_failed"  # the tag does not match: wrong key, or altered on the way
    REPLAYED = "replayed"  # a packet index seen before or older than the replay window (RFC 3711 3.3.2)
    UNKNOWN_MKI = "unknown_mki"  # an MKI that names none of the context's master keys
    MALFORMED = "malformed"  # too short for its header and tag, or too long for the library


@dataclass(slots=True)
class Counts:
    ok: int = 0
    auth_failed: int = 0
    replayed: int = 0
    unknown_mki: int = 0
    malformed: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)

    @property
    def total(self) -> int:
        return self.ok + self.auth_failed + self.replayed + self.unknown_mki + self.malformed


@dataclass(frozen=True, slots=True)
class MasterKey:
    """One master key and salt (RFC 3711 8.1), with the MKI that names it on the wire, if any."""

    key_salt: bytes  # master key || master salt, as an SDES inline key carries it
    mki: int | None = None
    mki_length: int = 0  # bytes of MKI on each packet (0: none)
    lifetime: int | None = None  # packets it may protect (SDES "|2^31"); carried, not enforced

    def mki_bytes(self) -> bytes:
        return b"" if self.mki is None else self.mki.to_bytes(self.mki_length, "big")


@dataclass(slots=True)
class Unprotected:
    outcome: Outcome
    packet: bytes | None = None  # the clear RTP/RTCP packet when the outcome is OK


class CryptoContext:
    """One sender's SRTP/SRTCP context: `unprotect` its packets (receiving or checking a capture),
    or `protect` our own (`outbound=True`). Every master key of an MKI set gets its own libsrtp
    session, picked by the packet's MKI."""

    def __init__(self, suite: Suite | str, keys: Iterable[MasterKey], outbound: bool = False,
                 window: int = 128) -> None:
        import pylibsrtp

        self.suite = SUITES[suite] if isinstance(suite, str) else suite
        self.keys = tuple(keys)
        if not self.keys:
            raise ValueError("an SRTP context needs a master key")
        mki_lengths = {k.mki_length for k in self.keys}
        if len(mki_lengths) != 1 or (len(self.keys) > 1 and 0 in mki_lengths):
            raise ValueError("several master keys need MKIs of one length (RFC 4568 6.1)")
        self.mki_length = mki_lengths.pop()
        self.counts = Counts()
        self.rtcp_counts = Counts()
        profile = getattr(pylibsrtp.Policy, self.suite.profile)
        ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        self._sessions: dict[bytes, object] = {}
        for key in self.keys:
            if len(key.key_salt) != self.suite.key_salt_length:
                raise ValueError(f"{self.suite.name} needs {self.suite.key_salt_length} bytes of key and salt, "
                                 f"not {len(key.key_salt)}")
            policy = pylibsrtp.Policy(key=key.key_salt, ssrc_type=ssrc_type, srtp_profile=profile)
            policy.window_size = window
            policy.allow_repeat_tx = outbound
            self._sessions[key.mki_bytes()] = pylibsrtp.Session(policy)
        self._error = pylibsrtp.Error
        self._out = self._sessions[self.keys[0].mki_bytes()]  # protect() uses the first key

    # --- receiving / checking ------------------------------------------------------------------

    def unprotect(self, packet: bytes, count: bool = True) -> Unprotected:
        """An SRTP packet -> the RTP packet (RFC 3711 3.3), or why not. Never raises. `count=False`:
        a failure is not counted (a packet tried against a context it may not belong to)."""
        result = self._unprotect(packet, self.suite.rtp_tag, 0, rtcp=False)
        if count or result.outcome is Outcome.OK:
            self.counts.add(result.outcome)
        return result

    def unprotect_rtcp(self, packet: bytes) -> Unprotected:
        """An SRTCP packet -> the RTCP compound packet (RFC 3711 3.4), or why not. Never raises."""
        result = self._unprotect(packet, self.suite.rtcp_tag, SRTCP_INDEX, rtcp=True)
        self.rtcp_counts.add(result.outcome)
        return result

    def _unprotect(self, packet: bytes, tag: int, index: int, rtcp: bool) -> Unprotected:
        header = 8 if rtcp else 12
        if len(packet) < header + tag + index + self.mki_length:
            return Unprotected(Outcome.MALFORMED)
        session, packet = self._without_mki(packet, tag, index)
        if session is None:
            return Unprotected(Outcome.UNKNOWN_MKI)
        try:
            clear = session.unprotect_rtcp(packet) if rtcp else session.unprotect(packet)
        except ValueError:  # longer than pylibsrtp's buffer
            return Unprotected(Outcome.MALFORMED)
        except self._error as exc:
            return Unprotected(_outcome(str(exc)))
        return Unprotected(Outcome.OK, clear)

    def _without_mki(self, packet: bytes, tag: int, index: int):
        """Take the MKI out: it sits before the tag (AES-CM, RFC 3711 3.1) or after it (AEAD, as
        libsrtp places it), after the SRTCP index for SRTCP; it is not authenticated."""
        n = self.mki_length
        if not n:
            return self._sessions[b""], packet
        end = len(packet) if self.suite.aead else len(packet) - tag
        mki = packet[end - n:end]
        return self._sessions.get(mki), packet[:end - n] + packet[end:]

    # --- sending -----------------------------------------------------------------------------

    def protect(self, packet: bytes) -> bytes:
        """An RTP packet -> SRTP with the first master key (and its MKI)."""
        return self._with_mki(self._out.protect(packet), self.suite.rtp_tag)

    def protect_rtcp(self, packet: bytes) -> bytes:
        """An RTCP compound packet -> SRTCP (encrypted, E flag set)."""
        return self._with_mki(self._out.protect_rtcp(packet), self.suite.rtcp_tag)

    def _with_mki(self, packet: bytes, tag: int) -> bytes:
        mki = self.keys[0].mki_bytes()
        if not mki:
            return packet
        at = len(packet) if self.suite.aead else len(packet) - tag
        return packet[:at] + mki + packet[at:]


_ERRORS = {"authentication failure": Outcome.AUTH_FAILED,
           "replay check failed (bad index)": Outcome.REPLAYED,
           "replay check failed (index too old)": Outcome.REPLAYED}


def _outcome(message: str) -> Outcome:
    return _ERRORS.get(message, Outcome.MALFORMED)


def strongest(offered: Iterable, supported: Iterable[str] = tuple(SUITES)):
    """The answerer's pick among offered SDES lines (anything with `.suite`): the strongest suite
    both sides support, the first offered of that suite; None when there is no common suite."""
    usable = [c for c in offered if c.suite in SUITES and c.suite in set(supported)]
    if not usable:
        return None
    best = max(SUITES[c.suite].strength for c in usable)
    return next(c for c in usable if SUITES[c.suite].strength == best)


def new_master_key(suite: Suite | str) -> bytes:
    """Fresh random key || salt for a suite (RFC 4568 6.1: from a cryptographically secure source)."""
    import secrets

    s = SUITES[suite] if isinstance(suite, str) else suite
    return secrets.token_bytes(s.key_salt_length)


__all__ = ["CryptoContext", "Counts", "MasterKey", "Outcome", "SUITES", "Suite", "Unprotected",
           "new_master_key", "strongest"]
