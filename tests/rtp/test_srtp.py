"""rtp/srtp.py against the RFCs' vectors and an independent implementation.

libsrtp takes master keys; RFC 3711 B.3 gives a master key with its derived session keys, RFC 3711
B.2 an AES-CM keystream and RFC 7714 16-17 AES-GCM packets made with session keys. So a small
oracle written here from the RFCs (AES from the `cryptography` package) is first held to those
vectors, then libsrtp's packets (through CryptoContext) are held to the oracle's, for every suite,
on SRTP and SRTCP.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from siptool.rtp.srtp import SUITES, CryptoContext, MasterKey, Outcome, new_master_key, strongest

# RFC 3711 B.3
B3_KEY = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
B3_SALT = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")


# --- the oracle (RFC 3711 4.1.1, 4.2, 4.3; RFC 7714 8-9) -------------------------------------

def aes_ctr(key: bytes, iv: bytes, n: int) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(bytes(n)) + enc.finalize()


def kdf(master_key: bytes, master_salt: bytes, label: int, n: int) -> bytes:
    """RFC 3711 4.3.1 with key_derivation_rate 0; a 12-byte (AEAD) salt is padded to 14 with zeros."""
    salt = int.from_bytes(master_salt.ljust(14, b"\0"), "big")
    x = salt ^ (label << 48)
    return aes_ctr(master_key, (x << 16).to_bytes(16, "big"), n)


def session_keys(suite, master: bytes, rtcp: bool) -> tuple[bytes, bytes, bytes]:
    key, salt = master[:suite.key_length], master[suite.key_length:]
    base = 3 if rtcp else 0
    return (kdf(key, salt, base, suite.key_length), kdf(key, salt, base + 1, 20),
            kdf(key, salt, base + 2, suite.salt_length))


def cm_iv(salt: bytes, ssrc: int, index: int) -> bytes:
    return ((int.from_bytes(salt, "big") << 16) ^ (ssrc << 64) ^ (index << 16)).to_bytes(16, "big")


def oracle_rtp(suite, master: bytes, packet: bytes, roc: int = 0) -> bytes:
    enc_key, auth_key, salt = session_keys(suite, master, rtcp=False)
    ssrc = struct.unpack_from("!I", packet, 8)[0]
    seq = struct.unpack_from("!H", packet, 2)[0]
    header, payload = packet[:12], packet[12:]
    if suite.aead:  # RFC 7714 8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt; AAD = header
        iv = bytes(a ^ b for a, b in zip(struct.pack("!HIIH", 0, ssrc, roc, seq), salt))
        return header + AESGCM(enc_key).encrypt(iv, payload, header)
    index = (roc << 16) | seq
    cipher = bytes(a ^ b for a, b in zip(payload, aes_ctr(enc_key, cm_iv(salt, ssrc, index), len(payload))))
    tag = hmac.new(auth_key, header + cipher + struct.pack("!I", roc), hashlib.sha1).digest()[:suite.rtp_tag]
    return header + cipher + tag


def oracle_rtcp(suite, master: bytes, packet: bytes, index: int) -> bytes:
    enc_key, auth_key, salt = session_keys(suite, master, rtcp=True)
    ssrc = struct.unpack_from("!I", packet, 4)[0]
    header, body = packet[:8], packet[8:]
    e_index = struct.pack("!I", 0x80000000 | index)
    if suite.aead:  # RFC 7714 9.1: IV = (00 00 || SSRC || 00 00 || 0 || index) XOR salt; AAD = header || E+index
        iv = bytes(a ^ b for a, b in zip(struct.pack("!HIHI", 0, ssrc, 0, index), salt))
        return header + AESGCM(enc_key).encrypt(iv, body, header + e_index) + e_index
    cipher = bytes(a ^ b for a, b in zip(body, aes_ctr(enc_key, cm_iv(salt, ssrc, index), len(body))))
    tag = hmac.new(auth_key, header + cipher + e_index, hashlib.sha1).digest()[:suite.rtcp_tag]
    return header + cipher + e_index + tag


# --- the oracle against the RFCs ----------------------------------------------------------------

def test_oracle_key_derivation_rfc3711_b3():
    assert kdf(B3_KEY, B3_SALT, 0, 16).hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert kdf(B3_KEY, B3_SALT, 2, 14).hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"
    assert kdf(B3_KEY, B3_SALT, 1, 20).hex().upper() == "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"


def test_oracle_keystream_rfc3711_b2():
    key = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
    iv = bytes.fromhex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000")
    assert aes_ctr(key, iv, 48).hex().upper() == (
        "E03EAD0935C95E80E166B16DD92B4EB4D23513162B02D0F72A43A2FE4A5F97AB41E95B3BB0A2E8DD477901E4FCA894C0")


RFC7714_KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
RFC7714_SALT = bytes.fromhex("517569642070726f2071756f")
RFC7714_RTP = bytes.fromhex("8040f17b8041f8d35501a0b2") + b"Gallia est omnis divisa in partes tres"


def test_oracle_aead_rfc7714_16_and_17():
    """RFC 7714 16.1.1 (SRTP) and 17.1 (SRTCP): session key and salt given directly."""
    rtp = RFC7714_RTP
    iv = bytes(a ^ b for a, b in zip(struct.pack("!HIIH", 0, 0x5501A0B2, 0, 0xF17B), RFC7714_SALT))
    assert iv.hex() == "51753c6580c2726f20718414"
    out = rtp[:12] + AESGCM(RFC7714_KEY).encrypt(iv, rtp[12:], rtp[:12])
    assert out.hex() == ("8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a"
                         "51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce")
    rtcp = bytes.fromhex("81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61" + "deadbeef" * 5)
    e_index = struct.pack("!I", 0x80000000 | 0x5D4)
    iv = bytes(a ^ b for a, b in zip(struct.pack("!HIHI", 0, 0x4D617273, 0, 0x5D4), RFC7714_SALT))
    out = rtcp[:8] + AESGCM(RFC7714_KEY).encrypt(iv, rtcp[8:], rtcp[:8] + e_index) + e_index
    assert out.hex() == ("81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda"
                         "4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4")


# --- libsrtp (CryptoContext) against the oracle -------------------------------------------------

def rtp_packet(seq: int, ssrc: int = 0xCAFEBABE, payload: bytes = b"\xab" * 160) -> bytes:
    return struct.pack("!BBHII", 0x80, 0x00, seq, 0xDECAFBAD, ssrc) + payload


def sender_report(ssrc: int = 0xCAFEBABE) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def master_for(suite) -> bytes:
    """RFC 3711 B.3's master key, with its salt cut to the suite's length."""
    if suite.key_length == 16:
        return B3_KEY + B3_SALT[:suite.salt_length]
    return B3_KEY * 2 + B3_SALT[:suite.salt_length]


@pytest.mark.parametrize("name", sorted(SUITES))
def test_libsrtp_equals_the_oracle(name):
    suite = SUITES[name]
    master = master_for(suite)
    sender = CryptoContext(suite, [MasterKey(master)], outbound=True)
    for seq in (0x1234, 0x1235, 0xFFFF):
        assert sender.protect(rtp_packet(seq)) == oracle_rtp(suite, master, rtp_packet(seq))
    # the sequence wrapped: the rollover counter is 1 now (RFC 3711 3.3.1)
    assert sender.protect(rtp_packet(0)) == oracle_rtp(suite, master, rtp_packet(0), roc=1)
    for index in (1, 2):  # libsrtp numbers SRTCP packets from 1
        assert sender.protect_rtcp(sender_report()) == oracle_rtcp(suite, master, sender_report(), index)


@pytest.mark.parametrize("name", sorted(SUITES))
def test_round_trip_and_outcomes(name):
    suite = SUITES[name]
    master = new_master_key(suite)
    sender = CryptoContext(suite, [MasterKey(master)], outbound=True)
    receiver = CryptoContext(suite, [MasterKey(master)])
    wrong = CryptoContext(suite, [MasterKey(new_master_key(suite))])
    first = sender.protect(rtp_packet(7))
    assert len(first) == len(rtp_packet(7)) + suite.rtp_tag
    assert receiver.unprotect(first).packet == rtp_packet(7)
    assert receiver.unprotect(first).outcome is Outcome.REPLAYED  # the same index again
    assert wrong.unprotect(first).outcome is Outcome.AUTH_FAILED
    tampered = bytearray(sender.protect(rtp_packet(8)))
    tampered[20] ^= 1
    assert receiver.unprotect(bytes(tampered)).outcome is Outcome.AUTH_FAILED
    assert receiver.unprotect(first[:12 + suite.rtp_tag - 1]).outcome is Outcome.MALFORMED
    assert receiver.unprotect(rtp_packet(9, payload=bytes(1600))).outcome is Outcome.MALFORMED
    report = sender.protect_rtcp(sender_report())
    assert receiver.unprotect_rtcp(report).packet == sender_report()
    assert wrong.unprotect_rtcp(report).outcome is Outcome.AUTH_FAILED
    assert (receiver.counts.ok, receiver.counts.replayed, receiver.counts.auth_failed,
            receiver.counts.malformed) == (1, 1, 1, 2)
    assert receiver.rtcp_counts.ok == 1 and wrong.counts.auth_failed == 1


def test_replay_window():
    """A packet older than the window is a replay drop even when never seen (RFC 3711 3.3.2)."""
    suite = SUITES["AES_CM_128_HMAC_SHA1_80"]
    master = new_master_key(suite)
    sender = CryptoContext(suite, [MasterKey(master)], outbound=True)
    receiver = CryptoContext(suite, [MasterKey(master)], window=64)
    old = sender.protect(rtp_packet(100))
    for seq in range(101, 300):
        assert receiver.unprotect(sender.protect(rtp_packet(seq))).outcome is Outcome.OK
    assert receiver.unprotect(old).outcome is Outcome.REPLAYED


@pytest.mark.parametrize("name", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_mki_picks_the_key(name):
    """Two master keys told apart by a 2-byte MKI: placed before the tag for AES-CM (RFC 3711
    Figure 1), after it for AEAD (as libsrtp does); an unknown MKI is counted, not raised."""
    suite = SUITES[name]
    k1, k2 = (MasterKey(new_master_key(suite), mki, 2) for mki in (1, 2))
    receiver = CryptoContext(suite, [k1, k2])
    for key in (k1, k2):
        packet = CryptoContext(suite, [key], outbound=True).protect(rtp_packet(5, ssrc=key.mki))
        plain = CryptoContext(suite, [MasterKey(key.key_salt)], outbound=True).protect(rtp_packet(5, ssrc=key.mki))
        at = len(plain) if suite.aead else len(plain) - suite.rtp_tag
        assert packet == plain[:at] + key.mki.to_bytes(2, "big") + plain[at:]
        assert receiver.unprotect(packet).packet == rtp_packet(5, ssrc=key.mki)
    stray = CryptoContext(suite, [MasterKey(k1.key_salt, 3, 2)], outbound=True).protect(rtp_packet(6))
    assert receiver.unprotect(stray).outcome is Outcome.UNKNOWN_MKI


def test_bad_keys_are_refused_at_once():
    with pytest.raises(ValueError, match="30 bytes"):
        CryptoContext("AES_CM_128_HMAC_SHA1_80", [MasterKey(bytes(16))])
    with pytest.raises(ValueError, match="MKI"):
        CryptoContext("AES_CM_128_HMAC_SHA1_80", [MasterKey(bytes(30)), MasterKey(bytes(30), 1, 1)])


def test_strongest_common_suite():
    class Line:
        def __init__(self, suite):
            self.suite = suite

    offer = [Line("AES_CM_128_HMAC_SHA1_32"), Line("AES_CM_128_HMAC_SHA1_80"), Line("AEAD_AES_128_GCM"),
             Line("F8_128_HMAC_SHA1_80")]
    assert strongest(offer).suite == "AEAD_AES_128_GCM"
    assert strongest(offer, ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"]).suite == "AES_CM_128_HMAC_SHA1_80"
    assert strongest(offer[3:]) is None
