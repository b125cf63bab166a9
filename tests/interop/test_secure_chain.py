"""The whole secure chain with real peers (docs/secure-captures.md, "Walkthrough"): `siptool call`
over TLS with SRTP to a TLS-terminating kamailio, which relays over UDP to `siptool echo`; tcpdump
captures the caller's side (TLS and media; the proxy's UDP leg is left out, as a capture at the
caller's edge would not see it). With the key log the call wrote, `analyze` shows the ladder, the
SDP, the SRTP streams checked with the keys found inside TLS, their figures and their audio; without
it, it says exactly what it cannot see."""

from __future__ import annotations

import json
import subprocess
import wave

import numpy as np
import pytest
from interop.secure_lab import SecureLab
from support import require_binary

GCM = "AEAD_AES_128_GCM"
CALLER_EDGE = "tcp port 5061 or (udp and not port 5060 and not port 5062)"
QUALITY = {"media.mos", "media.jitter", "media.loss"}  # what a loaded machine may add: not judged here


def codes(findings) -> set[str]:
    return {f["code"] for f in findings}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One call through the chain, captured: (lab, capture, key log, the call's JSON, the echo's output)."""
    tmp = tmp_path_factory.mktemp("chain")
    lab = SecureLab(tmp, "chain")
    try:
        cert, _ = lab.certificate()
        lab.kamailio()
        echo = lab.echo("--ring", "0.2")  # kamailio's two workers could relay a 180 and a 200 at once out of order
        tone, keys = tmp / "tone.wav", tmp / "keys.log"
        subprocess.run([require_binary("sox"), "-n", "-r", "8000", "-c", "1", "-b", "16", tone, "synth", "3", "sine",
                        "440", "vol", "0.5"], check=True)
        capture = lab.capture("chain", CALLER_EDGE).start()
        proc = lab.siptool("call", "sip:alice@127.0.0.1", "--proxy", "sips:127.0.0.1:5061", "--ca-file", cert,
                           "--sni", "sip.example.test", "--srtp", "mandatory", "--tls-keylog", keys, "-d", "3",
                           "--play", tone, "--json", "--mos", "1", "--jitter", "1000")  # not the machine's load
        pcap = capture.stop()
        assert proc.stdout.strip(), proc.stderr[-2000:]
        yield lab, pcap, keys, json.loads(proc.stdout), echo.stop()
    finally:
        lab.close()


def analyze(lab: SecureLab, *args) -> dict:
    proc = lab.siptool("analyze", *args, "--json")
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_the_call_passes_over_tls_with_srtp(chain):
    _, _, keys, res, echo_out = chain
    assert res["ok"], (res["error"], res["problems"])
    assert res["call"]["agent"]["srtp"] == {"suite": GCM, "received": res["rx"]["packets"],
                                            "authenticated": res["rx"]["packets"], "auth_failures": 0, "replayed": 0}
    assert res["rx"]["packets"] >= 145 and res["rtt_ms"] is not None
    assert "SRTP AEAD_AES_128_GCM" in echo_out and "echoed " in echo_out
    assert (keys.stat().st_mode & 0o777) == 0o600


def test_with_the_key_log_analyze_reads_the_call_its_srtp_and_its_audio(chain):
    lab, pcap, keys, res, _ = chain
    report = analyze(lab, pcap, "--tls-keylog", keys, "--content")
    assert report["capture"]["tls_decrypted"] == 2 and codes(report["findings"]) <= QUALITY
    (call,) = report["calls"]
    assert call["call_id"] == res["call_id"] and call["final_status"] == 200 and call["state"] == "completed"
    assert [(s["status"] or s["method"], s["transport"]) for s in call["ladder"]] == [
        ("INVITE", "TLS"), (100, "TLS"), (180, "TLS"), (200, "TLS"), ("ACK", "TLS"), ("BYE", "TLS"), (200, "TLS")]
    offer, answer = call["sdp"]
    assert (offer["protocol"], offer["crypto"]) == ("RTP/SAVP", [GCM, "AES_CM_128_HMAC_SHA1_80",
                                                                 "AES_CM_128_HMAC_SHA1_32"])
    assert (answer["protocol"], answer["crypto"]) == ("RTP/SAVP", [GCM])
    assert codes(call["findings"]) <= QUALITY  # the keys travelled inside TLS only: no security.srtp_keys_cleartext
    assert len(call["streams"]) == 2
    for s in call["streams"]:
        srtp = s["srtp"]
        assert (srtp["keying"], srtp["checked"], srtp["suite"], srtp["key_from"]) == ("sdes", True, GCM, "sdp-tls")
        assert srtp["authenticated"] == srtp["packets"] == s["packets"] >= 145 and s["lost"] == 0
        assert s["mos"] is not None and s["content"]["decoded"] and s["content"]["audio_s"] > 2.5
    # what the caller sent and what the echo sent back, as the agent measured them
    sent = next(s for s in call["streams"] if s["src"] == res["call"]["agent"]["media"])
    assert sent["packets"] == res["tx"]["packets"]
    ladder = lab.siptool("ladder", pcap, "--tls-keylog", keys, "--no-color")
    assert ladder.returncode == 0 and "INVITE" in ladder.stdout and "BYE" in ladder.stdout
    wav_path = lab.dir / "heard.wav"
    made = lab.siptool("audio", pcap, "--tls-keylog", keys, "-o", wav_path, "-q")
    assert made.returncode == 0, made.stderr
    with wave.open(str(wav_path)) as w:
        both = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(np.float64)
    for side in (0, 1):  # the caller's tone, and the echo of it
        x = both[4000:20000, side]
        assert np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * 8000 / len(x) == pytest.approx(440, abs=5)


def test_without_the_key_log_analyze_says_what_it_cannot_see(chain):
    lab, pcap, _, _, _ = chain
    report = analyze(lab, pcap)
    assert report["calls"] == [] and report["capture"]["tls_packets"] >= 10
    (tls,) = [f for f in report["findings"] if f["code"] == "sip.tls"]
    for words in ("could not be read: no key log was given (--tls-keylog)", "whether it is SRTP",
                  "2 RTP stream(s) that no SDP in this capture announces"):
        assert words in tls["explanation"]
    assert len(report["streams"]) == 2
    for s in report["streams"]:
        assert s["srtp"]["keying"] == "unknown" and "no key log opens it" in s["srtp"]["reason"]
        assert s["lost"] == 0 and s["packets"] >= 145  # measured from the headers, never judged broken
    assert codes(report["findings"]) - QUALITY == {"sip.tls"}
