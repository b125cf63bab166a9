"""Opus, G.722 and G.711 with a real peer: baresip (Debian's, with its opus and g722 modules) answers
`siptool call` and calls `siptool echo`, its aufile source playing a WAV and its sndfile module
writing what it decoded. Media goes both ways and is checked by content, not by packet counts:
siptool's decode of baresip's audio (`call --record`) correlates with the WAV baresip played, and
what baresip decoded of siptool's audio correlates with the WAV siptool played (or, through the
echo, with baresip's own WAV)."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from interop.peers import free_port
from support import require_binary

from siptool.agent import CallOptions, EchoServer, options_ping, place_call
from siptool.agent.caller import AgentError
from siptool.agent.media import read_wav, save_wav
from siptool.rtp import g711
from siptool.rtp.audio import resample

MODULES = Path("/usr/lib/baresip/modules")
# codec as siptool names it -> (baresip's audio_codecs, its WAV rate and channels, the least correlation)
CODECS = {"opus": ("opus/48000/2", 48000, 2, 0.8), "G722": ("G722/16000/1", 16000, 1, 0.9),
          "PCMU": ("PCMU/8000/1", 8000, 1, 0.9)}
SECONDS = 2.5


def _baresip(tmp_path: Path, codec: str, source: Path, answer: bool) -> tuple[Path, int]:
    """A headless baresip config: its WAV as the microphone, what it decodes dumped by sndfile."""
    require_binary("baresip")
    for module in ("opus", "g722", "aufile", "aubridge", "sndfile"):
        if not (MODULES / f"{module}.so").exists():
            pytest.skip(f"baresip's {module} module is not installed")
    port, rtp = free_port(), free_port(pair=True)
    conf = tmp_path / "baresip"
    (conf / "snd").mkdir(parents=True)
    (conf / "config").write_text("\n".join([
        f"sip_listen 127.0.0.1:{port}", "net_interface 127.0.0.1", f"rtp_ports {rtp}-{rtp + 9}",
        f"module_path {MODULES}", "module g711.so", "module g722.so", "module opus.so", "module aufile.so",
        "module aubridge.so", "module account.so", "module menu.so", "module sndfile.so", f"snd_path {conf / 'snd'}",
        f"audio_source aufile,{source}", "audio_player aubridge,sink", "opus_bitrate 32000", ""]))
    mode = ";answermode=auto" if answer else ""
    (conf / "accounts").write_text(f"<sip:bob@127.0.0.1:{port}>;regint=0{mode};audio_codecs={CODECS[codec][0]}\n")
    return conf, port


def _wav_for_baresip(path: Path, rate: int, channels: int, seed: int) -> np.ndarray:
    """Speech-like audio at the codec's rate and channels (baresip's aufile does not convert)."""
    x = g711.speech_like(SECONDS, rate, -18.0, seed=seed)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(x[:, None], channels, axis=1).astype("<i2").tobytes())
    return resample(x, rate, 8000)


def _decoded(conf: Path) -> np.ndarray:
    """What baresip decoded (sndfile's -dec.wav), at 8 kHz."""
    (dump,) = (conf / "snd").glob("*-dec.wav")
    x, rate = read_wav(str(dump))
    return resample(x, rate, 8000)


def correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 4000) -> float:
    """The largest normalised cross-correlation of a and b within +-max_lag samples (codec delays,
    jitter buffers)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    c = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lag = int(np.r_[np.arange(max_lag), np.arange(-max_lag, 0)][np.argmax(np.r_[c[:max_lag], c[size - max_lag:]])])
    x, y = (a[:len(b) - lag], b[lag:]) if lag >= 0 else (a[-lag:], b[:len(a) + lag])
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


def _listening(port: int) -> None:
    deadline = time.time() + 15
    while True:  # until it answers OPTIONS
        try:
            asyncio.run(options_ping(f"sip:127.0.0.1:{port}", t1=0.05))
            return
        except AgentError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("codec", list(CODECS))
def test_siptool_calls_baresip(codec, tmp_path, peers):
    """`siptool call --codec X --play A --record got.wav` to baresip playing B: got.wav correlates with
    B (siptool's decode of baresip's audio, Opus included), baresip's decode with A."""
    _, rate, channels, least = CODECS[codec]
    theirs = _wav_for_baresip(tmp_path / "theirs.wav", rate, channels, seed=5)
    ours = g711.speech_like(SECONDS, 8000, -18.0, seed=9)
    save_wav(str(tmp_path / "ours.wav"), ours)
    conf, port = _baresip(tmp_path, codec, tmp_path / "theirs.wav", answer=True)
    peer = peers(["baresip", "-f", conf])
    _listening(port)
    res = asyncio.run(place_call(CallOptions(uri=f"sip:bob@127.0.0.1:{port}", codecs=(codec,), duration=SECONDS + 1,
                                             play=str(tmp_path / "ours.wav"), record=str(tmp_path / "got.wav"))))
    assert res.status == 200 and res.codec == codec and res.rx.packets > 80, (res.error, peer.stop()[-2000:])
    got, got_rate = read_wav(str(tmp_path / "got.wav"))
    assert got_rate == (rate if codec != "PCMU" else 8000)  # recorded at the codec's audio rate
    assert correlation(theirs, resample(got, got_rate, 8000)) >= least
    peer.stop()  # sndfile closes its files
    assert correlation(ours, _decoded(conf)) >= least


@pytest.mark.parametrize("codec", list(CODECS))
def test_baresip_calls_siptool_echo(codec, tmp_path, peers):
    """baresip dials `siptool echo` (its shared port: packets echoed without decoding) offering only
    codec X: it hears its own WAV back."""
    _, rate, channels, least = CODECS[codec]
    theirs = _wav_for_baresip(tmp_path / "theirs.wav", rate, channels, seed=7)
    conf, _ = _baresip(tmp_path, codec, tmp_path / "theirs.wav", answer=False)

    async def go():
        async with EchoServer(("127.0.0.1", 0), media_port=0) as echo:
            peer = peers(["baresip", "-f", conf, "-t", str(SECONDS + 3), "-e", f"/dial sip:echo@127.0.0.1:{echo.port}"])
            for _ in range(400):  # baresip hangs up when its file ends
                if echo.finished or peer.proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            return list(echo.finished), peer
    finished, peer = asyncio.run(go())
    peer.wait(SECONDS + 10)
    assert len(finished) == 1, peer.output[-2000:]
    call = finished[0].call
    assert call.agent.codec == codec and call.agent.echoed > 80 and call.final_status == 200
    assert correlation(theirs, _decoded(conf)) >= least
