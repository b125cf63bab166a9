"""SRTP (RFC 3711) keyed by SDES (RFC 4568) between siptool's agent and real peers: baresip's srtp
module answering `siptool call` and calling `siptool echo`, kamailio rewriting what an SBC gets wrong
(the answer's key, the answer's transport), SIPp playing SRTP with duplicates and late packets, and
(tests/agent/test_srtp_calls.py: siptool's own echo, and what it refuses). Each failure ends in its
own verdict."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import struct
import subprocess
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from interop.peers import HERE, free_port
from interop.secure_lab import CALLEE, SecureLab
from support import REPO, require_binary

from siptool.agent import CallOptions, Thresholds, place_call
from siptool.drivers.files import analyze_file
from siptool.rtp.srtp import CryptoContext, MasterKey

SHA80, GCM = "AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"
# baresip's audio loop paces what it sends by its own clock: on a loaded machine its jitter (and the
# MOS of it) varies; these tests judge SRTP, not that
LENIENT = Thresholds.from_limits(mos=1.0, jitter_ms=1000.0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.fixture
def lab(tmp_path):
    lab = SecureLab(tmp_path, "srtp")
    yield lab
    lab.close()


def call_json(lab: SecureLab, *args) -> dict:
    proc = lab.siptool("call", *args, "--json", timeout=60)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def codes(res: dict) -> dict[str, str]:
    return {f["code"]: f["severity"] for f in res["findings"]}


def listening(peer, port: int) -> None:
    """Wait until the peer listens on UDP `port` (on the host's loopback)."""
    deadline = time.time() + 15
    while time.time() < deadline and peer.proc.poll() is None:
        if f"127.0.0.1:{port} " in subprocess.run(["ss", "-Hlun"], capture_output=True, text=True).stdout:
            return
        time.sleep(0.05)
    raise RuntimeError(f"not listening on {port}: {peer.stop()[-1500:]}")


def tone_hz(samples: np.ndarray, rate: int = 8000) -> float:
    """The strongest frequency of a stretch of audio."""
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


# --- baresip answers siptool call -----------------------------------------------------------------

@pytest.mark.parametrize("suite", [GCM, SHA80, "AES_CM_128_HMAC_SHA1_32"])
def test_call_to_baresip_over_srtp_audio_both_ways_and_round_trip(peers, tmp_path, suite):
    """baresip (srtp module, mediaenc=srtp-mand) answers and plays back what it hears (aubridge): our
    SRTP reaches its decoder and its SRTP ours, so the echoed audio correlates with what we sent."""
    baresip = require_binary("baresip")
    port, rtp = free_port(), free_port(pair=True)
    (tmp_path / "config").write_text(
        f"sip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\naudio_player aubridge,loop\n"
        "audio_source aubridge,loop\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aubridge.so\nmodule srtp.so\n"
        f"module account.so\nmodule menu.so\nrtp_ports {rtp}-{rtp + 9}\n")
    (tmp_path / "accounts").write_text("<sip:bob@127.0.0.1>;regint=0;answermode=auto;mediaenc=srtp-mand;"
                                       "audio_codecs=PCMU\n")
    peer = peers([baresip, "-f", tmp_path])
    listening(peer, port)
    res = run(place_call(CallOptions(uri=f"sip:bob@127.0.0.1:{port}", duration=2.0, srtp="mandatory",
                                     srtp_suites=(suite,), t1=0.2, thresholds=LENIENT)))
    assert res.ok, (res.error, res.problems, peer.stop()[-1500:])
    assert res.call.agent.srtp.suite == suite and res.call.agent.srtp.auth_failures == 0
    assert res.rx.packets > 80 and res.rx.srtp_dropped == 0 and res.rx.mos is not None
    # the Analyzer checked every packet of both streams with the keys of the SDP
    assert [(s.srtp.suite, s.srtp.authenticated == s.packets) for s in res.call.streams] == [(suite, True)] * 2
    assert res.rtt_ms is not None and 20 < res.rtt_ms < 1000  # baresip's jitter buffer and audio loop


# --- baresip calls siptool echo --------------------------------------------------------------------

@pytest.mark.parametrize("mediaenc, proto, codec", [("srtp-mand", "RTP/SAVP", "PCMU"),
                                                    ("srtp-mandf", "RTP/SAVPF", "PCMU"),
                                                    ("srtp", "RTP/AVP", "PCMU"), ("srtp-mand", "RTP/SAVP", "opus")])
def test_baresip_calls_the_echo_over_srtp_and_hears_itself(lab, mediaenc, proto, codec):
    """baresip plays a 440 Hz tone to `siptool echo` (RTP/SAVP with srtp-mand, RTP/SAVPF with
    srtp-mandf; best-effort RTP/AVP with a=crypto with srtp; and Opus in RTP/SAVP): the echo answers
    in the offer's transport, decrypts and protects again with its own key. The capture,
    analysed with the keys of its clear SDP, authenticates every packet both ways, and the audio
    going back to baresip is baresip's tone."""
    sox = require_binary("sox")
    opus = codec == "opus"
    if opus and not Path("/usr/lib/baresip/modules/opus.so").exists():  # Debian ships it with baresip
        pytest.skip("baresip's opus module is not installed")
    tone = lab.dir / "tone.wav"
    rate, channels = (48000, 2) if opus else (8000, 1)  # baresip's aufile does not convert
    subprocess.run([sox, "-n", "-r", str(rate), "-c", str(channels), "-b", "16", tone, "synth", "2.5", "sine", "440",
                    "vol", "0.5"], check=True)
    echo = lab.echo()
    modules = ("g711",) + (("opus",) if opus else ()) + ("aubridge", "aufile", "srtp", "account", "menu")  # codecs first
    conf, cmd = lab.baresip("caller", 5070, 7000, f"<sip:caller@127.0.0.1>;regint=0;mediaenc={mediaenc};"
                            f"audio_codecs={'opus/48000/2' if opus else 'PCMU'}", source=f"aufile,{tone}",
                            modules=modules, extra=("-e", f"/dial sip:echo@127.0.0.1:{CALLEE}", "-t", "4"))
    capture = lab.capture(f"{mediaenc}-{codec}").start()
    dialled = lab.run(*cmd, timeout=30)  # the call ends with the tone (2.5 s), baresip at -t 4
    pcap = capture.stop()
    assert "Call established" in dialled.stdout, dialled.stdout[-2000:]
    line = echo.stop().splitlines()
    (call_line,) = [ln for ln in line if " from 127.0.0.1:5070 " in ln]
    assert "SRTP AES_CM_128_HMAC_SHA1_80" in call_line and "dropped" not in call_line  # baresip's first suite
    report = analyze_file(pcap)
    (call,) = report.calls
    offer = next(e for e in call.sdp if e.role == "offer")
    answer = next(e for e in call.sdp if e.role == "answer")
    assert offer.protocol == answer.protocol == proto and SHA80 in offer.crypto and answer.crypto == [SHA80]
    assert len(call.streams) == 2
    for s in call.streams:
        assert s.srtp.checked and s.srtp.suite == SHA80 and s.srtp.authenticated == s.packets > 100
        assert s.codec.lower() == codec.lower()
    echoed = int(call_line.split("echoed ")[1].split()[0])
    back = next(s for s in call.streams if int(s.dst.rsplit(":", 1)[1]) in range(7000, 7010))  # to baresip
    assert abs(back.packets - echoed) <= 2
    out = lab.dir / "heard.wav"
    made = lab.siptool("audio", pcap, "-o", out, "-q")
    assert made.returncode == 0, made.stderr
    with wave.open(str(out)) as w:
        heard_rate = w.getframerate()
        both = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    for side in (0, 1):  # caller (baresip's tone) and callee (the echo of it)
        x = both[heard_rate // 2:heard_rate * 2, side]
        assert abs(tone_hz(x, heard_rate) - 440) < 5


# --- an SBC that rewrites what it should not -------------------------------------------------------

def test_a_rewritten_answer_key_is_srtp_one_way_audio(lab):
    """kamailio rewrites the key in the SDP answer (fixtures/kamailio.cfg WRONG_KEY): the echo's SRTP
    arrives, but the key the answer gave does not authenticate it."""
    lab.kamailio("WRONG_KEY")
    lab.echo()
    res = call_json(lab, "sip:alice@127.0.0.1:5060", "--srtp", "mandatory", "--srtp-suites", SHA80, "-d", "2")
    assert not res["ok"] and res["status"] == 200
    assert res["one_way"].startswith("SRTP one-way audio: the caller cannot decrypt 127.0.0.1:")
    assert res["problems"] == [res["one_way"]]
    assert codes(res)["srtp.auth_failed"] == "error"
    rx, srtp = res["rx"], res["call"]["agent"]["srtp"]
    assert rx["packets"] == 0 and rx["srtp_dropped"] == rx["lost"] >= 90 and rx["loss_pct"] == 100.0
    assert srtp["suite"] == SHA80 and srtp["auth_failures"] == srtp["received"] == rx["srtp_dropped"]
    assert res["tx"]["packets"] >= 90


def test_an_answer_downgraded_to_rtp_avp_ends_the_call_before_any_media(lab):
    """kamailio turns the RTP/SAVP answer into RTP/AVP without a=crypto (DOWNGRADE): with SRTP
    mandatory the caller hangs up without sending a packet, and says why."""
    lab.kamailio("DOWNGRADE")
    lab.echo()
    res = call_json(lab, "sip:alice@127.0.0.1:5060", "--srtp", "mandatory", "-d", "2")
    assert not res["ok"] and res["status"] == 200 and res["ended_by"] == "local"
    assert res["problems"] == ["SRTP downgraded: the answer is RTP/AVP to an RTP/SAVP offer (media would go in "
                               "clear; RFC 3264 6: the answer keeps the offer's transport)"]
    assert codes(res)["srtp.downgrade"] == "error"
    assert res["tx"]["packets"] == 0 and res["call"]["streams"] == []
    assert [e["event"] for e in res["events"]][-3:] == ["-> ACK", "-> BYE", "<- 200 OK (BYE)"]


# --- replays: SIPp plays SRTP with duplicates and packets past the window ----------------------------

KEY = bytes(range(30))  # the SIPp callee's SDES key (test only)


def srtp_pcap(path: Path, late: range, duplicated: range, after: int = 145) -> int:
    """150 packets of a 440 Hz tone, SRTP with KEY: each packet of `duplicated` sent twice, those of
    `late` held back and sent after packet `after` (more than the 128-packet replay window behind;
    not two in a row, which RFC 3550 A.1 would take for a new sequence). Returns the packets written."""
    spec = importlib.util.spec_from_file_location("gen", REPO / "fixtures" / "scenarios" / "gen_rtp_pcap.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    ctx = CryptoContext(SHA80, [MasterKey(KEY)], outbound=True)
    packets = [(i, ctx.protect(rtp)) for i, rtp in gen.rtp_packets(440.0, 0x51B0CAFE, 1000, 8000, 3.0)]
    order = []
    for i, p in packets:
        if i not in late:
            order += [(i, p)] * (2 if i in duplicated else 1)
        if i == after:
            order += [(j, q) for j, q in packets if j in late]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for k, (_, payload) in enumerate(order):
            frame = gen.ipv4_udp(payload)
            usec = k * 20_000
            f.write(struct.pack("<IIII", 1_000_000_000 + usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)))
            f.write(frame)
    return len(order)


def test_replays_are_dropped_and_what_is_lost_by_them_is_loss(sipp, peers, tmp_path):
    """SIPp answers with an SDES key and plays SRTP where 10 packets come twice (duplicates: the
    replay window drops the copy, nothing is lost) and 5 come after all the others (past the
    window: dropped, lost audio). The verdict counts the 5 as loss and names the replays."""
    written = srtp_pcap(tmp_path / "srtp.pcap", late=range(5, 15, 2), duplicated=range(20, 120, 10))
    assert written == 160
    port, mport = free_port(), free_port(pair=True)
    peer = peers([sipp, "-sf", HERE / "uas_srtp.xml", "-i", "127.0.0.1", "-p", port, "-mi", "127.0.0.1", "-mp",
                  mport, "-m", "1", "-nostdin", "-timeout", "30s", "-key", "srtp_key",
                  base64.b64encode(KEY).decode()], cwd=tmp_path)
    listening(peer, port)
    res = run(place_call(CallOptions(uri=f"sip:srtp@127.0.0.1:{port}", duration=3.0, srtp="mandatory",
                                     srtp_suites=(SHA80,), t1=0.2,  # late packets are jitter too: not judged here
                                     thresholds=Thresholds.from_limits(jitter_ms=10_000))))
    assert res.status == 200 and res.call.agent.srtp.suite == SHA80, (res.error, peer.stop()[-1500:])
    received = next(s for s in res.call.streams if s.dst == res.call.agent.media)
    assert received.packets == 160 and received.duplicates == 10 and received.srtp.replayed == 15
    assert received.srtp.authenticated == 145 and received.srtp.auth_failures == 0
    assert res.call.agent.srtp.replayed == 15 and res.call.agent.srtp.authenticated == 145
    assert res.rx.srtp_dropped == 5 and res.rx.packets == 145 and res.rx.lost == 5 and res.rx.missing_at_end == 0
    assert "srtp.replay" in {f.code for f in res.findings}
    assert not res.ok and ("loss received 3.33% >= 1% (5 SRTP packets that came were dropped: failed "
                           "authentication or past the replay window)") in res.problems
    assert peer.wait(10) == 0
