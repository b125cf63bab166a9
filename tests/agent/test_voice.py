"""Voice-agent latency tests (`call --say`, `echo --greeting`): the script and the speaker on their
own, then siptool's voice agent as a ground truth. It greets `delay_s` after answering and replies
`gap_s` after the caller's speech ends, so the greeting and response latencies the call measures
from its own packets (content analysis) must be those, within 20 ms, in each codec; and it is
reported talking over the caller exactly when it is configured to keep talking."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest
from support import REPO, require_binary

from siptool.agent import CallOptions, EchoServer, place_call
from siptool.agent import script as sc
from siptool.agent.media import save_wav
from siptool.agent.speaker import Speaker
from siptool.agent.voice_agent import AgentPlan
from siptool.errors import SiptoolError

TOLERANCE_MS = 20.0


def sound(seconds: float, rate: int = 8000, f0: float = 180.0) -> np.ndarray:
    """A voice-like sound with no pause in it (a gliding tone under a 4 Hz envelope), starting and
    ending at full level: speech whose talk spurt is exactly the clip."""
    t = np.arange(int(seconds * rate)) / rate
    x = 6000 * np.sin(2 * np.pi * (f0 + 40 * np.sin(2 * np.pi * 3 * t)) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return np.round(x).astype(np.int16)


# --- the script and the speaker ----------------------------------------------------------------

def test_script_file_steps_and_errors():
    steps = sc.parse("# a test\nwait\nsay hi.wav  # greeting\nsay What are your hours?\npause 1.5\nwait 20\n")
    assert [(s.kind, s.text, s.seconds) for s in steps] == [
        (sc.Kind.WAIT, "", sc.WAIT_MAX_S), (sc.Kind.SAY, "hi.wav", 0.0), (sc.Kind.SAY, "What are your hours?", 0.0),
        (sc.Kind.PAUSE, "", 1.5), (sc.Kind.WAIT, "", 20.0)]
    with pytest.raises(SiptoolError, match="t.txt line 2: 'soon' is not a number of seconds"):
        sc.parse("wait\npause soon\n", "t.txt")
    with pytest.raises(SiptoolError, match="line 1: 'shout hello'"):
        sc.parse("shout hello\n")
    with pytest.raises(SiptoolError, match="no say or wait step"):
        sc.parse("pause 1\n")


def test_say_and_pause_options_as_steps():
    kinds = [(s.kind.value, s.text or s.seconds) for s in sc.from_options(["a.wav", "b.wav"], None)]
    assert kinds == [("wait", 10.0), ("say", "a.wav"), ("wait", 10.0), ("say", "b.wav"), ("wait", 10.0)]
    kinds = [(s.kind.value, s.text or s.seconds) for s in sc.from_options(["a.wav"], 0.5)]
    assert kinds == [("wait", 10.0), ("say", "a.wav"), ("pause", 0.5)]


def test_speaker_places_clips_to_the_sample_and_cuts_them():
    sp = Speaker(8000, t0=100.0)
    a = sp.play(250, np.full(400, 7, np.int16), "a")
    b = sp.play(300, np.full(100, 9, np.int16), "b")  # after what plays: clips never overlap
    assert (a.start, a.end, b.start, b.end) == (250, 650, 650, 750)
    x = sp.samples(160, 640)
    assert not x[:90].any() and (x[90:490] == 7).all() and (x[490:590] == 9).all() and not x[590:].any()
    assert sp.position(100.05) == 400 and sp.time(400) == pytest.approx(100.05)
    assert sp.cut(700) is b and b.end == 700 and not sp.samples(700, 80).any()


# --- the voice agent as ground truth -----------------------------------------------------------

def _run(plan: AgentPlan, codec: str, **options):
    async def go():
        async with EchoServer(("127.0.0.1", 0), agent=plan) as agent:
            res = await place_call(CallOptions(uri=f"sip:bot@127.0.0.1:{agent.port}", duration=None, codecs=(codec,),
                                               local_ip="127.0.0.1", **options))
            for _ in range(100):  # the agent's side of the call, once its BYE is answered
                if agent.finished:
                    break
                await asyncio.sleep(0.02)
            return res, agent.finished
    return asyncio.run(asyncio.wait_for(go(), 60))


@pytest.mark.parametrize("codec", ["PCMU", "opus", "G722"])
def test_measured_latencies_are_the_agents_configured_ones(codec, tmp_path):
    prompt = tmp_path / "prompt.wav"
    save_wav(str(prompt), sound(1.0, 16000, 220), 16000)
    plan = AgentPlan(greeting=(sound(1.2), 8000), replies=((sound(0.8, 48000, 150), 48000),), delay_s=0.7,
                     gap_s=0.55)
    res, finished = _run(plan, codec, says=(str(prompt),))
    assert res.ok, (res.error, res.problems)
    v = res.call.agent.voice
    assert abs(v.greeting_ms - 700) <= TOLERANCE_MS, v
    (turn,) = v.prompts
    assert turn.prompt == "prompt.wav" and abs(turn.response_ms - 550) <= TOLERANCE_MS, v
    assert abs(turn.speech_end - turn.start - 1.0) <= TOLERANCE_MS / 1000  # our speech is the prompt's
    assert v.overlap_ms == 0 and not v.talk_over and v.level_dbov is not None
    assert [u.label for u in finished[0].call.agent.said] == ["greeting", "reply 1"]
    stream = next(s for s in res.call.streams if s.src != res.call.agent.media)
    assert stream.codec.lower() == codec.lower() and stream.content.side == "callee"
    assert (stream.mos_model == "G.107.1-estimate") == (codec != "PCMU")


@pytest.mark.parametrize("talk_over", [True, False])
def test_talk_over_is_reported_when_the_agent_keeps_talking(talk_over, tmp_path):
    """The caller barges into a 3 s greeting after 1 s (a script: pause, say, wait). An agent that
    keeps talking is media.talk_over and fails the test; one that stops is neither."""
    save_wav(str(tmp_path / "barge.wav"), sound(1.0, 8000, 240))
    (tmp_path / "barge.txt").write_text("pause 1.0\nsay barge.wav\nwait 3\n")
    plan = AgentPlan(greeting=(sound(3.0), 8000), replies=((sound(0.6), 8000),), delay_s=0.2, gap_s=0.6,
                     talk_over=talk_over)
    res, finished = _run(plan, "PCMU", script=str(tmp_path / "barge.txt"))
    v = res.call.agent.voice
    greeting = finished[0].call.agent.said[0]
    codes = [f.code for f in res.findings]
    if talk_over:
        assert v.talk_over and "media.talk_over" in codes and not res.ok
        assert "the far end talked over us (media.talk_over)" in res.problems
        assert greeting.end - greeting.start == pytest.approx(3.0)
    else:
        assert not v.talk_over and "media.talk_over" not in codes and res.ok, res.problems
        assert greeting.end - greeting.start < 1.0  # it stopped when we barged in (at 0.8 s into it)
        assert v.overlap_ms < 150 and abs(v.prompts[0].response_ms - 600) <= TOLERANCE_MS


def test_cli_voice_agent_and_voice_test_with_spoken_words(tmp_path, echo_proc):
    """`siptool echo --greeting WORDS --reply WORDS` and `siptool call --say WORDS --json`: espeak-ng
    speaks both sides; the JSON has the voice test's figures, and a limit below them fails the call."""
    require_binary("espeak-ng")
    proc, port = echo_proc("--greeting", "Hello, how can I help?", "--greeting-delay", "0.6",
                           "--reply", "Sure, one moment.", "--reply-gap", "0.5")
    out = subprocess.run([sys.executable, "-m", "siptool", "call", f"sip:bot@127.0.0.1:{port}", "--codec", "g722",
                          "--say", "What are your opening hours?", "--max-response-ms", "400", "--json",
                          "--record", str(tmp_path / "heard.wav")], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    data = json.loads(out.stdout)
    assert data["schema"] == "siptool.call/1.4" and data["codec"] == "G722", out.stderr
    voice = data["voice"]
    assert abs(voice["greeting_ms"] - 600) <= 40  # espeak-ng's first words start a few ms into its file
    (turn,) = voice["prompts"]
    assert turn["prompt"] == "What are your opening hours?" and abs(turn["response_ms"] - 500) <= 40
    assert out.returncode == 1 and data["problems"] == [
        f"response latency to 'What are your opening hours?' {turn['response_ms']:.0f} ms > 400 ms"]
    said = data["call"]["agent"]["said"]
    assert [u["label"] for u in said] == ["What are your opening hours?"]
    import wave
    with wave.open(str(tmp_path / "heard.wav")) as w:  # what came back, at G.722's 16 kHz
        assert w.getframerate() == 16000 and w.getnframes() > 16000 * 3


def test_voice_options_are_checked_before_anything_is_sent(tmp_path):
    for args, message in ((["--pause", "1"], "--pause goes with --say"),
                          (["--say", "missing.wav"], "--say missing.wav: no such file"),
                          (["--script", str(tmp_path / "none.txt")], "--script"),
                          (["--say", "a", "--max-response-ms", "-5"], "--max-response-ms -5")):
        out = subprocess.run([sys.executable, "-m", "siptool", "call", "sip:bot@127.0.0.1:9", *args], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)
    out = subprocess.run([sys.executable, "-m", "siptool", "echo", "--talk-over"], cwd=REPO, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "--talk-over is for the voice agent" in out.stderr


def test_check_suite_voice_agent_type(tmp_path):
    """A suite's voice_agent check (WAVs beside the suite file) against the voice agent: it passes
    with the latencies as figures, and fails, saying why, when the limit is under the agent's gap."""
    import tomllib

    from siptool.check.suite import parse_suite

    from check.lab import run_in_process

    save_wav(str(tmp_path / "q.wav"), sound(0.8, 8000, 230))
    plan = AgentPlan(greeting=(sound(0.8), 8000), replies=((sound(0.5), 8000),), delay_s=0.4, gap_s=0.5)

    async def go():
        async with EchoServer(("127.0.0.1", 0), agent=plan) as agent:
            text = f'''[target]
uri = "sip:bot@127.0.0.1:{agent.port}"

[[check]]
type = "voice_agent"
name = "quick"
say = ["q.wav"]
codec = "G722"

[[check]]
type = "voice_agent"
name = "strict"
say = ["q.wav"]
max_response_ms = 300
'''
            suite = parse_suite(tomllib.loads(text), str(tmp_path / "suite.toml"))
            return await run_in_process(suite)
    result = asyncio.run(asyncio.wait_for(go(), 60))
    r = {c.name: c for c in result.results}
    assert r["quick"].status == "pass", r["quick"].message
    f = r["quick"].figures
    assert f["codec"] == "G722" and abs(f["greeting_ms"] - 400) <= TOLERANCE_MS
    assert len(f["response_ms"]) == 1 and abs(f["response_ms"][0] - 500) <= TOLERANCE_MS
    assert r["strict"].status == "fail" and "response latency to 'q.wav'" in r["strict"].message
