"""Wideband codecs inside SRTP, over real loopback sockets: an Opus or G.722 call that requires SRTP
through `siptool echo` (its shared port decrypts and protects each packet again), the round trip
found by correlating the audio sent with the audio echoed, the report's two streams authenticated
with the SDP's keys and decoded, and `siptool audio` hearing the caller's tone both ways; and the
echo's voice agent answering an SRTP voice test (it hears through the caller's key and speaks
through its own)."""

from __future__ import annotations

import asyncio
import json
import wave

import numpy as np
import pytest
from agent.helpers import siptool

from siptool.agent import CallOptions, EchoServer, Thresholds, place_call
from siptool.agent.media import save_wav
from siptool.agent.voice_agent import AgentPlan

GCM = "AEAD_AES_128_GCM"
TONE_HZ = 440.0
LENIENT = Thresholds.from_limits(mos=1.0, jitter_ms=1000.0)  # these tests judge codecs in SRTP, not the load


def tone(path, seconds: float, rate: int) -> None:
    t = np.arange(int(seconds * rate)) / rate
    save_wav(str(path), np.round(8000 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16), rate)


def peak_hz(x: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(np.fft.rfft(x * np.hanning(len(x))))) * rate / len(x))


@pytest.mark.parametrize("codec, rate", [("opus", 48000), ("G722", 16000)])
def test_wideband_call_with_mandatory_srtp_through_the_echo(codec, rate, echo_proc, tmp_path):
    _, port = echo_proc("--srtp", "mandatory")
    sound, pcap, wav_path = tmp_path / "tone.wav", tmp_path / "call.pcap", tmp_path / "heard.wav"
    tone(sound, 3.0, rate)
    proc = siptool("call", f"sip:echo@127.0.0.1:{port}", "--codec", codec, "--srtp", "mandatory", "-d", "3",
                   "--play", sound, "--pcap", pcap, "--json", "--mos", "1", "--jitter", "1000", "--loss", "20")
    res = json.loads(proc.stdout)
    assert res["ok"], (res["error"], res["problems"], proc.stderr[-2000:])
    assert res["codec"].lower() == codec.lower() and res["rtt_ms"] is not None  # the tone came back, correlated
    assert res["call"]["agent"]["srtp"] == {"suite": GCM, "received": res["rx"]["packets"],
                                            "authenticated": res["rx"]["packets"], "auth_failures": 0, "replayed": 0}
    assert res["rx"]["packets"] >= 140 and res["rx"]["srtp_dropped"] == 0
    assert [(s["protocol"], s["crypto"][:1]) for s in res["call"]["sdp"]] == [("RTP/SAVP", [GCM])] * 2
    streams = res["call"]["streams"]
    assert len(streams) == 2
    for s in streams:  # each direction checked with the keys in the SDP, then decoded
        assert s["codec"].lower() == codec.lower() and s["mos_model"] == "G.107.1-estimate"
        assert s["srtp"]["suite"] == GCM and s["srtp"]["authenticated"] == s["packets"] >= 140 and s["lost"] == 0
        assert s["content"]["decoded"] and s["content"]["audio_s"] > 2.5
    made = siptool("audio", pcap, "-o", wav_path, "-q")
    assert made.returncode == 0, made.stderr
    with wave.open(str(wav_path)) as w:
        out_rate = w.getframerate()
        both = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2).astype(np.float64)
    for side in (0, 1):  # the caller's tone, and the echo of it, decrypted and decoded from the capture
        x = both[out_rate // 2:out_rate * 5 // 2, side]
        assert np.sqrt(np.mean(x ** 2)) > 1000, side
        assert peak_hz(x, out_rate) == pytest.approx(TONE_HZ, abs=5), side


def test_voice_agent_answers_an_srtp_voice_test_in_opus(tmp_path):
    """The voice agent greets and replies inside SRTP; the caller's content analysis hears both (its
    packets decrypted with the agent's key), and the agent's side authenticated every packet."""
    prompt = tmp_path / "prompt.wav"
    tone(prompt, 1.0, 16000)
    t = np.arange(8000) / 8000
    speech = np.round(6000 * np.sin(2 * np.pi * 200 * t)).astype(np.int16)
    plan = AgentPlan(greeting=(speech, 8000), replies=((speech[:6400], 8000),), delay_s=0.5, gap_s=0.5)

    async def go():
        async with EchoServer(("127.0.0.1", 0), agent=plan, srtp="mandatory") as agent:
            res = await place_call(CallOptions(uri=f"sip:bot@127.0.0.1:{agent.port}", duration=None,
                                               codecs=("opus",), local_ip="127.0.0.1", says=(str(prompt),),
                                               srtp="mandatory", thresholds=LENIENT))
            for _ in range(100):  # the agent's side of the call, once its BYE is answered
                if agent.finished:
                    break
                await asyncio.sleep(0.02)
            return res, agent.finished
    res, finished = asyncio.run(asyncio.wait_for(go(), 60))
    assert res.ok, (res.error, res.problems)
    assert res.call.agent.srtp.suite == GCM and res.call.agent.srtp.auth_failures == 0
    v = res.call.agent.voice
    assert v.greeting_ms is not None and abs(v.greeting_ms - 500) <= 20, v
    (turn,) = v.prompts
    assert turn.response_ms is not None and abs(turn.response_ms - 500) <= 20, v
    (record,) = finished
    assert [u.label for u in record.call.agent.said] == ["greeting", "reply 1"]
    assert record.call.agent.srtp.suite == GCM and record.call.agent.srtp.auth_failures == 0
    assert record.call.agent.srtp.authenticated == res.tx.packets
    heard = next(s for s in res.call.streams if s.src != res.call.agent.media)
    assert heard.codec.lower() == "opus" and heard.srtp.authenticated == heard.packets and heard.content.decoded
