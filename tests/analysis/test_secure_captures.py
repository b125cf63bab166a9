"""Issue 17 in captures: SIP over WebSocket, SCTP and TLS (key logs), SRTP streams and their checks,
and the signalling security findings, on the real-peer fixtures and on cases crafted from them."""

from __future__ import annotations

import base64
import subprocess
import sys

import numpy as np
import pytest
from crafted_calls import MACS, A, B, T0, Dialog, rtp, sdp, udp, write
from scapy.all import IP, TCP, Ether, Raw, rdpcap, wrpcap
from support import FIXTURES, require_binary

from siptool.analysis.secure_media import KeyCandidate, StreamCheck
from siptool.capture import open_capture
from siptool.drivers.files import analyze_file
from siptool.rtp import srtp_keys
from siptool.rtp.g711 import ulaw_decode
from siptool.rtp.srtp import CryptoContext, MasterKey

KEYLOG = str(FIXTURES / "tls_calls.keys")


def codes(report) -> list[str]:
    return sorted(f.code for f in report.all_findings())


def streams(report):
    return [*report.streams, *(s for c in report.calls for s in c.streams)]


# --- WebSocket ------------------------------------------------------------------------------------

def test_ws_fixture_is_a_clean_call_over_ws():
    report = analyze_file(FIXTURES / "ws_calls.pcap")
    (call,) = report.calls
    assert call.final_status == 200 and call.transport == "WS" and call.messages == 7
    assert codes(report) == []
    refused = analyze_file(FIXTURES / "ws_refused.pcap")
    (f,) = refused.findings
    assert f.code == "ws.subprotocol" and f.frames == [4, 6] and f.evidence["status"] == 400


def test_ws_without_its_handshake_is_still_read(tmp_path):
    """A long-lived WebSocket whose Upgrade came before the capture started: the frames are found
    by what they carry, and no handshake verdict is given."""
    packets = [p for p in rdpcap(str(FIXTURES / "ws_calls.pcap"))
               if TCP in p and not (p[TCP].flags & 0x02) and not bytes(p[TCP].payload).startswith((b"GET", b"HTTP"))]
    wrpcap(str(tmp_path / "mid.pcap"), packets)
    report = analyze_file(tmp_path / "mid.pcap")
    (call,) = report.calls
    assert call.messages == 7 and call.transport == "WS" and codes(report) == []


def _ws_capture(tmp_path, client_frames: list[bytes], server_frames: list[bytes]) -> str:
    """A WebSocket connection (with its Upgrade) carrying the given frames, one per segment."""
    a, b = "192.0.2.10", "192.0.2.20"
    request = (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: sip\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    response = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n")
    seq = {a: 1000, b: 5000}
    packets = []
    for n, (src, data) in enumerate([(a, request), (b, response)] + [(a, f) for f in client_frames]
                                    + [(b, f) for f in server_frames]):
        dst = b if src == a else a
        p = Ether(**MACS) / IP(src=src, dst=dst) / TCP(sport=40000 if src == a else 8080, dport=8080 if src == a else 40000,
                                                 flags="PA", seq=seq[src]) / Raw(data)
        p.time = T0 + n * 0.01
        seq[src] += len(data)
        packets.append(p)
    wrpcap(str(tmp_path / "ws.pcap"), packets)
    return str(tmp_path / "ws.pcap")


def test_ws_broken_frames_and_abnormal_close_are_findings(tmp_path):
    from websocket import ABNF

    def frame(data, opcode=ABNF.OPCODE_TEXT, masked=1):
        f = ABNF(1, 0, 0, 0, opcode, masked, data)
        f.get_mask_key = lambda n: b"abcd"
        return f.format()

    options = (b"OPTIONS sip:a@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK1\r\nFrom: <sip:b@x>;tag=1"
               b"\r\nTo: <sip:a@x>\r\nCall-ID: ws-1\r\nCSeq: 1 OPTIONS\r\n\r\n")
    path = _ws_capture(tmp_path, [frame(options, masked=0), b"\x8b\x80abcd"],  # unmasked; reserved opcode 0xB
                       [frame(b"\x03\xeaprotocol error", ABNF.OPCODE_CLOSE, masked=0)])
    report = analyze_file(path)
    found = {f.code: f for f in report.findings}
    assert set(found) == {"ws.malformed", "ws.closed"}
    assert found["ws.malformed"].frames == [3, 4] and found["ws.malformed"].evidence["problems"] == 2
    assert found["ws.closed"].evidence["code"] == 1002 and found["ws.closed"].frames == [5]
    assert [c.call_id for c in report.calls] == ["ws-1"]  # the unmasked frame's message is still read


# --- SCTP -----------------------------------------------------------------------------------------

def test_sctp_fixture_three_calls():
    report = analyze_file(FIXTURES / "sctp_calls.pcap")
    assert [(c.final_status, c.messages, c.transport) for c in report.calls] == [(200, 7, "SCTP")] * 3
    assert codes(report) == []


def test_sctp_fragments_out_of_order_and_missing(tmp_path):
    packets = list(rdpcap(str(FIXTURES / "sctp_calls.pcap")))
    # frames 5 and 6 carry the first INVITE's three fragments: swapped, the INVITE is still whole
    swapped = packets[:4] + [packets[5], packets[4]] + packets[6:]
    wrpcap(str(tmp_path / "swapped.pcap"), swapped)
    report = analyze_file(tmp_path / "swapped.pcap")
    assert [c.messages for c in report.calls] == [7, 7, 7] and codes(report) == []
    # without frame 5, that INVITE never completes: said, with the frame of its last fragment
    wrpcap(str(tmp_path / "lost.pcap"), packets[:4] + packets[5:])
    report = analyze_file(tmp_path / "lost.pcap")
    (f,) = [f for f in report.findings if f.code == "sctp.malformed"]
    assert "never completed" in f.explanation and f.frames == [5]
    assert sorted(c.messages for c in report.calls) == [6, 7, 7]


# --- TLS key logs -----------------------------------------------------------------------------

def test_tls_without_the_key_log_says_what_it_cannot_see():
    report = analyze_file(FIXTURES / "tls_calls.pcap")
    assert report.calls == [] and report.capture.tls_packets == 39 and report.capture.tls_decrypted == 0
    (f,) = report.findings
    assert f.code == "sip.tls" and len(f.evidence["flows"]) == 6 and len(f.evidence["streams_without_sdp"]) == 6
    assert all(s.srtp.keying == "unknown" and not s.srtp.checked for s in report.streams)
    assert all(s.mos == 4.41 and s.lost == 0 for s in report.streams)  # judged from their headers, not silent


def test_tls_with_the_key_log_is_analysed_like_clear_sip():
    report = analyze_file(FIXTURES / "tls_calls.pcap", tls_keylog=KEYLOG)
    assert [c.transport for c in report.calls] == ["TLS", "TLS", "WSS"] and report.capture.tls_decrypted == 6
    assert [c.final_status for c in report.calls] == [200] * 3 and codes(report) == []
    suites = [{s.srtp.suite for s in c.streams} for c in report.calls]
    assert suites == [{"AES_CM_128_HMAC_SHA1_80"}, {"AEAD_AES_128_GCM"}, {"AES_CM_128_HMAC_SHA1_32"}]
    for s in streams(report):
        assert s.srtp.checked and s.srtp.key_from == "sdp-tls" and s.srtp.authenticated == s.packets
    assert {e.role for c in report.calls for e in c.sdp} == {"offer", "answer"}


def test_a_key_log_of_other_sessions_opens_nothing(tmp_path):
    other = tmp_path / "other.keys"
    other.write_text("CLIENT_RANDOM " + "ab" * 32 + " " + "cd" * 48 + "\n")
    report = analyze_file(FIXTURES / "tls_calls.pcap", tls_keylog=str(other))
    (f,) = report.findings
    assert f.code == "sip.tls" and "the key log does not open them" in f.title and not report.calls


def _sdes_keys() -> list[tuple[str, str, str]]:
    """(sender ip:port, suite, key-param) of each side of tls_calls.pcap, read by tshark from the
    SDP the key log decrypts."""
    require_binary("tshark")
    out = subprocess.run(["tshark", "-n", "-r", str(FIXTURES / "tls_calls.pcap"), "-o", f"tls.keylog_file:{KEYLOG}",
                          "-d", "tls.port==5061,sip", "-Y", "sdp", "-T", "fields", "-e", "sdp.connection_info.address",
                          "-e", "sdp.media.port", "-e", "sdp.media_attr"], capture_output=True, text=True, check=True)
    keys = []
    for line in out.stdout.splitlines():
        ip, port, attrs = line.split("\t")
        crypto = next(a for a in attrs.split(",") if a.startswith("crypto:"))
        _, suite, param = crypto.split(" ")
        keys.append((f"{ip}:{port}", suite, param))
    return keys


def test_srtp_keys_file_checks_streams_the_capture_hides(tmp_path):
    keys = tmp_path / "srtp.keys"
    keys.write_text("# from the decrypted SDP\n" + "".join(f"{s} {suite} {p}\n" for s, suite, p in _sdes_keys()))
    report = analyze_file(FIXTURES / "tls_calls.pcap", srtp_keys=srtp_keys.load(str(keys)))
    assert len(report.streams) == 6
    for s in report.streams:
        assert s.srtp.checked and s.srtp.key_from == "keys-file" and s.srtp.authenticated == s.packets


def test_unprotect_step_gives_the_tone_the_caller_sent():
    """The per-stream unprotect step (what the audio content layer will call) on the caller's SRTP
    of the first TLS call: its clear payload is the 440 Hz tone fixtures/sip_client.py sent."""
    sender, suite, param = next(k for k in _sdes_keys() if k[0].startswith("10.0.1.1"))
    key = srtp_keys.parse(f"{sender} {suite} {param}")[0]
    check = StreamCheck("sdes", [KeyCandidate(suite, key.keys, "keys-file")])
    ip, port = sender.rsplit(":", 1)
    audio = []
    with open_capture(FIXTURES / "tls_calls.pcap") as source:
        for pkt in source:
            if pkt.transport == "udp" and (pkt.src, pkt.sport) == (ip, int(port)) and not 200 <= pkt.payload[1] <= 207:
                clear = check.packet(pkt.frame, pkt.payload)
                audio.append(clear[12:])
    assert check.authenticated == len(audio) == 75
    pcm = ulaw_decode(b"".join(audio)).astype(float)
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.argmax(spectrum) * 8000 / len(pcm) - 440) < 2


# --- SRTP streams ---------------------------------------------------------------------------

def test_srtp_call_both_ways_authenticated():
    report = analyze_file(FIXTURES / "srtp_call.pcap")
    (call,) = report.calls
    assert [(s.srtp.checked, s.srtp.suite, s.srtp.auth_failures) for s in call.streams] == \
        [(True, "AES_CM_128_HMAC_SHA1_80", 0)] * 2
    (f,) = call.findings
    assert f.code == "security.srtp_keys_cleartext" and f.severity == "info"  # private addresses
    reported = [s for s in call.streams if s.rtcp_jitter_ms is not None]
    assert reported  # the receiver's SRTCP report was decrypted and read


def test_srtp_wrong_key_is_one_way_audio():
    report = analyze_file(FIXTURES / "srtp_wrong_key.pcap")
    (call,) = report.calls
    (f,) = [f for f in call.findings if f.code == "srtp.auth_failed"]
    assert f.severity == "error" and f.title.startswith("SRTP one-way audio: the caller cannot decrypt 10.0.1.2:")
    bad, good = sorted(call.streams, key=lambda s: s.srtp.checked)
    assert bad.srtp.auth_failures == bad.packets and bad.srtp.authenticated == 0 and f.frames == [bad.first_frame]
    assert good.srtp.checked and good.srtp.auth_failures == 0
    assert "media.one_way" not in codes(report)  # packets do arrive: it is the key, said by srtp.auth_failed


def test_srtp_replays_are_found(tmp_path):
    """srtp_call with packets of the caller's stream sent again, and one held back 150 packets."""
    packets = rdpcap(str(FIXTURES / "srtp_call.pcap"))
    caller = [i for i, p in enumerate(packets) if IP in p and p[IP].src == "10.0.1.1" and p.haslayer("UDP")
              and p["UDP"].sport == 7000]
    out = list(packets)
    for i in caller[20:23]:  # three duplicates
        copy = packets[i].copy()
        copy.time = packets[i].time + 0.001
        out.append(copy)
    late = packets[caller[30]]
    out.remove(late)
    late = late.copy()
    late.time = packets[caller[180]].time + 0.001
    out.append(late)
    write(tmp_path / "replay.pcap", out)
    report = analyze_file(tmp_path / "replay.pcap")
    (f,) = [f for f in report.all_findings() if f.code == "srtp.replay"]
    assert f.evidence["replayed"] == 4 and "10.0.1.1:7000" in f.title


def _crypto_line(tag: int, suite: str, key: bytes) -> str:
    return f"a=crypto:{tag} {suite} inline:{base64.b64encode(key).decode()}\r\n"


def _savp(port: int, extra: str) -> str:
    return f"m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"


def test_rekey_by_reinvite_and_keys_in_clear_on_a_public_path(tmp_path):
    """A crafted call on public addresses: SDES keys in clear SIP (a warning there), then a re-INVITE
    with a new key for A's media, which A switches to: every packet still authenticates."""
    suite = "AES_CM_128_HMAC_SHA1_80"
    ka, kb, ka2 = (bytes([n]) * 30 for n in (1, 2, 3))
    d = Dialog("rekey-1")
    pkts = [d.request(A, "INVITE", T0, sdp(A, _savp(4000, _crypto_line(1, suite, ka))), initial=True),
            d.response(200, "OK", T0 + 0.1, sdp(B, _savp(5000, _crypto_line(1, suite, kb)))), d.ack(T0 + 0.11)]
    senders = {A: CryptoContext(suite, [MasterKey(ka)], outbound=True),
               B: CryptoContext(suite, [MasterKey(kb)], outbound=True)}
    for n in range(100):
        t = T0 + 0.2 + n * 0.02
        if n == 50:
            pkts += [d.request(A, "INVITE", t - 0.01, sdp(A, _savp(4000, _crypto_line(1, suite, ka2)), version=2)),
                     d.response(200, "OK", t - 0.005, sdp(B, _savp(5000, _crypto_line(1, suite, kb)), version=2)),
                     d.ack(t - 0.004)]
            senders[A] = CryptoContext(suite, [MasterKey(ka2)], outbound=True)
        for src, (sport, dst, dport, ssrc) in ((A, (4000, B, 5000, 0xA)), (B, (5000, A, 4000, 0xB))):
            packet = rtp(src, sport, dst, dport, t, 1000 + n, 160 * n, ssrc)
            packet["UDP"].remove_payload()
            clear = bytes.fromhex("80") + bytes([0]) + (1000 + n).to_bytes(2, "big") + (160 * n).to_bytes(4, "big") \
                + ssrc.to_bytes(4, "big") + b"\xff" * 160
            pkts.append(udp(src, sport, dst, dport, senders[src].protect(clear), t))
    write(tmp_path / "rekey.pcap", pkts)
    report = analyze_file(tmp_path / "rekey.pcap")
    (call,) = report.calls
    assert [(s.srtp.checked, s.srtp.authenticated, s.srtp.auth_failures) for s in call.streams] == [(True, 100, 0)] * 2
    (f,) = call.findings
    assert f.code == "security.srtp_keys_cleartext" and f.severity == "warning" and f.evidence["messages"] == 4


@pytest.mark.parametrize("kind,extra,proto", [
    ("dtls-srtp", "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n", "UDP/TLS/RTP/SAVP"),
    ("zrtp", "a=zrtp-hash:1.10 " + "ab" * 32 + "\r\n", "RTP/AVP"),
])
def test_media_keyed_on_the_media_path_is_marked_not_misjudged(tmp_path, kind, extra, proto):
    """DTLS-SRTP and ZRTP: the keys never travel in SIP. The streams say so, are not checked, and
    are judged from their headers like any stream (no one-way or silence verdict for encryption)."""
    d = Dialog(f"{kind}-1")
    m = lambda port: f"m=audio {port} {proto} 0\r\na=rtpmap:0 PCMU/8000\r\n{extra}"  # noqa: E731
    pkts = [d.request(A, "INVITE", T0, sdp(A, m(4000)), initial=True),
            d.response(200, "OK", T0 + 0.1, sdp(B, m(5000))), d.ack(T0 + 0.11)]
    if kind == "dtls-srtp":  # a DTLS record on the media path (RFC 7983: first byte 20-63)
        pkts.append(udp(A, 4000, B, 5000, bytes([22, 0xFE, 0xFD]) + bytes(40), T0 + 0.15))
    else:  # a ZRTP Hello (RFC 6189 5): first byte 0x10, magic cookie ZRTP
        pkts.append(udp(A, 4000, B, 5000, b"\x10\x00\x00\x01ZRTP\x00\x00\x00\x0a" + bytes(80), T0 + 0.15))
    for n in range(100):
        t = T0 + 0.2 + n * 0.02
        pkts += [rtp(A, 4000, B, 5000, t, n, 160 * n, 0xA, payload=bytes(range(160))),
                 rtp(B, 5000, A, 4000, t, n, 160 * n, 0xB, payload=bytes(range(160)))]
    write(tmp_path / "path.pcap", pkts)
    report = analyze_file(tmp_path / "path.pcap")
    (call,) = report.calls
    for s in call.streams:
        assert s.srtp.keying == kind and not s.srtp.checked and "media path" in s.srtp.reason
    assert codes(report) == []


# --- signalling security ---------------------------------------------------------------------

def test_digest_over_clear_udp_on_a_public_path(tmp_path):
    d = Dialog("digest-1")
    challenge = 'Digest realm="example.test", nonce="abc", qop="auth", algorithm=MD5'
    invite = d.request(A, "INVITE", T0, initial=True)
    reply = d.response(401, "Unauthorized", T0 + 0.01)
    text = bytes(reply["UDP"].payload).replace(b"Content-Length", f"WWW-Authenticate: {challenge}\r\nContent-Length".encode())
    reply = udp(B, 5060, A, 5060, text, T0 + 0.01)
    ack = d.ack(T0 + 0.02)
    retry = d.request(A, "INVITE", T0 + 0.03, initial=True)
    auth = ('Authorization: Digest username="alice", realm="example.test", nonce="abc", uri="sip:bob@198.51.100.7", '
            'response="0123456789abcdef0123456789abcdef", qop=auth, nc=00000001, cnonce="x"\r\n')
    retry = udp(A, 5060, B, 5060, bytes(retry["UDP"].payload).replace(b"Content-Length", auth.encode() + b"Content-Length"),
                T0 + 0.03)
    write(tmp_path / "digest.pcap", [invite, reply, ack, retry, d.response(486, "Busy Here", T0 + 0.05), d.ack(T0 + 0.06)])
    report = analyze_file(tmp_path / "digest.pcap")
    (f,) = [f for f in report.all_findings() if f.code == "security.digest_cleartext"]
    assert f.severity == "warning" and f.frames == [4] and "TLS" in f.fix
    # the fixture's challenge and retry run over loopback: not a public path, so no finding
    assert "security.digest_cleartext" not in codes(analyze_file(FIXTURES / "auth_401.pcap"))


# frag_udp's 16-codec INVITE offers an a=crypto key over UDP: its keys-in-clear note is right there
@pytest.mark.parametrize("path", sorted(p for p in FIXTURES.glob("*.pcap")
                                        if not p.name.startswith(("srtp", "tls", "ws", "frag_udp"))),
                         ids=lambda p: p.name)
def test_new_findings_quiet_on_the_clean_fixtures(path):
    new = {"srtp.auth_failed", "srtp.replay", "security.digest_cleartext", "security.srtp_keys_cleartext",
           "ws.subprotocol", "ws.malformed", "ws.closed", "sctp.malformed"}
    assert not new & set(codes(analyze_file(path)))


# --- command line -----------------------------------------------------------------------------

def run(*args):
    return subprocess.run([sys.executable, "-m", "siptool", *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args,message", [
    (["--tls-keylog", "/nonexistent/keys"], "no such key log file"),
    (["--tls-keylog", FIXTURES / "README.md"], "not an NSS key log"),
    (["--srtp-keys", "/nonexistent/keys"], "no such SRTP keys file"),
])
def test_bad_key_files_are_one_line(args, message):
    r = run("analyze", FIXTURES / "tls_calls.pcap", *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_keys_file_line_is_named(tmp_path):
    keys = tmp_path / "k"
    keys.write_text("# ok\n10.0.1.1:5000 AES_CM_128_HMAC_SHA1_80 inline:AAAA\n")
    r = run("analyze", FIXTURES / "tls_calls.pcap", "--srtp-keys", keys)
    assert r.returncode == 2 and "line 2" in r.stderr and "30-byte key" in r.stderr


def test_cli_tls_keylog_json():
    import json

    r = run("analyze", FIXTURES / "tls_calls.pcap", "--tls-keylog", KEYLOG, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert [c["transport"] for c in data["calls"]] == ["TLS", "TLS", "WSS"]
    assert data["calls"][1]["streams"][0]["srtp"]["suite"] == "AEAD_AES_128_GCM"


def test_a_websocket_of_something_else_is_not_read_as_sip(tmp_path):
    """JSON over a WebSocket (another subprotocol's messages): not SIP, so no malformed-SIP findings."""
    from websocket import ABNF

    messages = []
    for n in range(12):
        f = ABNF(1, 0, 0, 0, ABNF.OPCODE_TEXT, 1, b'{"event": "tick", "n": %d}' % n)
        f.get_mask_key = lambda n: b"abcd"
        messages.append(f.format())
    report = analyze_file(_ws_capture(tmp_path, messages, []))
    assert report.calls == [] and report.capture.sip_packets == 0 and codes(report) == []
