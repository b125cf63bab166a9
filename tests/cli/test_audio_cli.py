"""`siptool audio`: the WAV it writes plays as the call sounded. sox reads it back (duration, each
channel's RMS) against what went in: the speech fixtures' own audio (made again by gen_speech.py),
and a real test call through `siptool echo` written with `siptool call --pcap`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import wave

import numpy as np
import pytest
from support import FIXTURES, REPO, require_binary
from typer.testing import CliRunner

from siptool.cli import get_app

RUN = [sys.executable, "-m", "siptool"]


def sox_stats(path, channel: int | None = None) -> dict[str, float]:
    """sox's `stat` of a WAV (one channel of it): length in seconds and RMS amplitude (full scale 1)."""
    sox = require_binary("sox")
    args = [sox, str(path), "-n"] + (["remix", str(channel)] if channel else []) + ["stat"]
    text = subprocess.run(args, capture_output=True, text=True, check=True).stderr
    return {"length": float(re.search(r"Length \(seconds\):\s+([\d.]+)", text).group(1)),
            "rms": float(re.search(r"RMS\s+amplitude:\s+([\d.]+)", text).group(1))}


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) / 32768)


def db(a: float, b: float) -> float:
    return abs(20 * np.log10(a / b))


@pytest.mark.parametrize("case", ["speech_turns", "speech_faults", "speech_g722"])
def test_stereo_wav_of_a_speech_fixture(case, tmp_path):
    """Caller left, callee right, as long as the call's audio, each channel the speech that side
    played (the same RMS, and the same waveform where the streams began)."""
    require_binary("espeak-ng")
    sys.path.insert(0, str(REPO / "fixtures" / "scenarios"))
    import gen_speech

    sides, truth = gen_speech.compose(gen_speech.CASES[case], tmp_path)
    out = tmp_path / "call.wav"
    result = CliRunner().invoke(get_app(), ["audio", str(FIXTURES / f"{case}.pcap"), "--call", "1", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, truth["rate"])
        got = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, 2)
    whole = sox_stats(out)
    assert abs(whole["length"] - truth["length_s"]) < 0.05
    for channel, side in ((1, "caller"), (2, "callee")):
        assert db(sox_stats(out, channel)["rms"], rms(sides[side])) < 0.5, side
        x, y = got[:, channel - 1].astype(float), sides[side].astype(float)
        span = truth["rate"] // 20  # the streams begin within 50 ms of each other (and codecs delay)
        n = min(len(x), len(y)) - span
        best = max(max(np.corrcoef(x[lag:lag + n], y[:n])[0, 1], np.corrcoef(x[:n], y[lag:lag + n])[0, 1])
                   for lag in range(span))
        assert best > (0.99 if truth["codec"] == "PCMU" else 0.95), side


def test_split_and_one_stream(tmp_path):
    out = tmp_path / "c.wav"
    result = CliRunner().invoke(get_app(), ["audio", str(FIXTURES / "speech_opus.pcap"), "--split", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    files = sorted(tmp_path.glob("c-*.wav"))
    assert [f.name for f in files] == ["c-1-caller.wav", "c-2-callee.wav"]
    lengths = {sox_stats(f)["length"] for f in files}
    assert len(lengths) == 1  # one time line for all
    for f in files:
        with wave.open(str(f)) as w:
            assert (w.getnchannels(), w.getframerate()) == (1, 48000)  # Opus decodes at 48 kHz (RFC 7587)
    one = tmp_path / "one.wav"
    result = CliRunner().invoke(get_app(), ["audio", str(FIXTURES / "speech_opus.pcap"), "--stream", "2", "-o", str(one),
                                            "-q"])
    assert result.exit_code == 0 and sox_stats(one)["rms"] == pytest.approx(sox_stats(files[1])["rms"], rel=0.05)


@pytest.mark.parametrize("args,message", [
    (["--call", "9"], "no call"),
    (["--stream", "7"], "has no stream 7"),
    (["--split", "--stream", "1"], "not both"),
    (["-o", "x.mp3"], "give a file name ending in .wav"),
])
def test_errors_are_one_line(args, message, tmp_path):
    result = CliRunner().invoke(get_app(), ["audio", str(FIXTURES / "speech_turns.pcap"), *args, "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    for capture, why in (("calls_mixed.pcap", "no call in this capture has media"), ("media_oneway.pcap", None)):
        r = CliRunner().invoke(get_app(), ["audio", str(FIXTURES / capture), "-o", str(tmp_path / "a.wav"), "-q"])
        assert (r.exit_code == 2 and why in r.output) if why else r.exit_code == 0


@pytest.mark.interop
def test_a_test_call_through_siptool_echo(tmp_path):
    """`siptool call --play tone.wav --pcap c.pcap` against `siptool echo`, then `siptool audio c.pcap`:
    the caller's channel is the tone that was sent, the callee's its echo, both as long as the media."""
    from interop.peers import free_port

    tone = (0.25 * 32767 * np.sin(2 * np.pi * 440 * np.arange(24000) / 8000)).astype(np.int16)  # 3 s, -15 dBov
    played = tmp_path / "tone.wav"
    with wave.open(str(played), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone.tobytes())
    port = free_port()
    echo = subprocess.Popen(RUN + ["echo", "--listen", f"127.0.0.1:{port}"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # until the echo agent listens
            call = subprocess.run(RUN + ["call", f"sip:echo@127.0.0.1:{port}", "--duration", "3", "--play", str(played),
                                         "--pcap", str(tmp_path / "c.pcap"), "--json"], capture_output=True, text=True,
                                  cwd=REPO, timeout=60)
            if call.stdout.strip() and json.loads(call.stdout)["status"] is not None:
                break
        assert json.loads(call.stdout)["status"] == 200
    finally:
        echo.terminate()
        echo.wait(10)
    out = tmp_path / "call.wav"
    made = subprocess.run(RUN + ["audio", str(tmp_path / "c.pcap"), "-o", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert made.returncode == 0, made.stderr
    whole, caller, callee = sox_stats(out), sox_stats(out, 1), sox_stats(out, 2)
    assert 2.9 < whole["length"] < 3.6
    assert db(caller["rms"], rms(tone)) < 0.3 and db(callee["rms"], rms(tone)) < 0.5
