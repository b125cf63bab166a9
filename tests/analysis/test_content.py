"""Content analysis against the ground truth of the speech fixtures (fixtures/make_pcaps.sh speech_*,
truth JSON beside each capture): talk spurts, answer to first speech and turn gaps within 20 ms,
levels and clipping; each content finding fires on its fault and stays quiet on every clean
fixture; the fast path and the per-packet path agree; without content analysis the report is
what it was; Opus and G.722 decodes follow the WAVs baresip played."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from support import FIXTURES, REPO, SHARED, require_binary

from siptool.analysis.content import ContentOptions
from siptool.drivers import files
from siptool.drivers.files import analyze_file
from siptool.report.jsonout import report_dict

CASES = ["speech_turns", "speech_faults", "speech_silent", "speech_opus", "speech_g722"]
CONTENT_CODES = {"media.silent", "media.late_audio", "media.slow_turns", "media.talk_over", "media.clipping",
                 "media.low_level"}
TOLERANCE_MS = 20


@pytest.fixture(scope="module")
def reports():
    return {case: analyze_file(FIXTURES / f"{case}.pcap", content=ContentOptions()) for case in CASES}


def truth(case: str) -> dict:
    return json.loads((FIXTURES / f"{case}.truth.json").read_text())


def by_side(call) -> dict:
    out = {s.content.side: s for s in call.streams}
    assert set(out) == {"caller", "callee"}
    return out


@pytest.mark.parametrize("case", CASES)
def test_talk_spurts_match_the_ground_truth(reports, case):
    (call,) = reports[case].calls
    t = truth(case)
    for side, s in by_side(call).items():
        want = [(s.start + a / 1000, s.start + b / 1000) for a, b in t[side]["spurts_ms"]]
        got = [(x.start, x.end) for x in s.content.talk_spurts]
        assert len(got) == len(want), (side, got, want)
        for (a, b), (x, y) in zip(want, got):
            assert abs(x - a) * 1000 <= TOLERANCE_MS and abs(y - b) * 1000 <= TOLERANCE_MS, (side, (a, b), (x, y))
        assert s.content.silent == t[side]["silent"]


@pytest.mark.parametrize("case", CASES)
def test_first_speech_and_turn_gaps_match_the_ground_truth(reports, case):
    (call,) = reports[case].calls
    t, sides, conv = truth(case), by_side(reports[case].calls[0]), call.conversation
    for side in ("caller", "callee"):
        s = sides[side]
        first = getattr(conv, f"{side}_first_speech_ms")
        if t[side]["spurts_ms"]:
            want = (s.start - call.answer) * 1000 + t[side]["spurts_ms"][0][0]
            assert abs(first - want) <= TOLERANCE_MS
        else:
            assert first is None
        assert getattr(conv, f"{side}_first_rtp_ms") == pytest.approx((s.start - call.answer) * 1000, abs=0.1)
    want = [(x["after"], x["by"], (sides[x["by"]].start + x["by_start_ms"] / 1000
                                   - sides[x["after"]].start - x["after_end_ms"] / 1000) * 1000) for x in t["turns"]]
    got = [(x.after, x.by, x.gap_ms) for x in conv.turns]
    assert [w[:2] for w in want] == [g[:2] for g in got]
    assert all(abs(w[2] - g[2]) <= TOLERANCE_MS for w, g in zip(want, got)), (want, got)


@pytest.mark.parametrize("case", CASES)
def test_levels_and_clipping(reports, case):
    t = truth(case)
    for side, s in by_side(reports[case].calls[0]).items():
        c = s.content
        if t[side]["level_dbov"] is None:
            assert c.level_dbov is None
            continue
        assert abs(c.level_dbov - t[side]["level_dbov"]) <= 2.0  # G.711: power measured in one packet in 8
        assert (c.clipped_pct > 0) == (t[side]["clipped_pct"] > 0)
        if t[side]["clipped_pct"]:
            assert abs(c.clipped_pct - t[side]["clipped_pct"]) < 1.0


def content_codes(report) -> set[str]:
    return {f.code for f in report.all_findings()} & CONTENT_CODES


def test_each_fault_fires(reports):
    faults = reports["speech_faults"]
    (call,) = faults.calls
    found = {f.code: f for f in call.findings}
    assert content_codes(faults) == CONTENT_CODES - {"media.silent"}
    t, sides = truth("speech_faults"), by_side(call)
    late = found["media.late_audio"]
    assert late.evidence["first_speech_ms"] > 2000 and "caller spoke first" in late.explanation
    slow = found["media.slow_turns"].evidence
    assert slow["responses"] == 2 and slow["slow"] == 2 and abs(slow["max_ms"] - 1500) <= TOLERANCE_MS
    over = found["media.talk_over"].evidence
    greeting_end = sides["callee"].start + t["callee"]["spurts_ms"][0][1] / 1000
    barge_in = sides["caller"].start + t["caller"]["spurts_ms"][1][0] / 1000
    assert abs(over["longest_ms"] - (greeting_end - barge_in) * 1000) <= TOLERANCE_MS
    assert found["media.clipping"].evidence["side"] == "caller"
    assert found["media.low_level"].evidence["side"] == "callee"
    silent = [f for f in reports["speech_silent"].calls[0].findings if f.code in CONTENT_CODES]
    assert [(f.code, f.severity, f.evidence["side"]) for f in silent] == [("media.silent", "error", "callee")]
    assert "digital silence" in silent[0].title


CLEAN = [p for p in sorted(FIXTURES.glob("*.pcap")) if p.stem not in ("speech_faults", "speech_silent")]


@pytest.mark.parametrize("path", CLEAN, ids=lambda p: p.name)
def test_quiet_on_clean_fixtures(path):
    report = analyze_file(path, content=ContentOptions())
    assert not content_codes(report)


def _without_content(d):
    if isinstance(d, dict):
        return {k: _without_content(v) for k, v in d.items() if k not in ("content", "conversation")}
    if isinstance(d, list):
        return [_without_content(v) for v in d]
    return d


@pytest.mark.parametrize("path", CLEAN, ids=lambda p: p.name)
def test_content_only_adds(path):
    """Content analysis adds its fields and nothing else changes; off, no field of it is there."""
    off = report_dict(analyze_file(path))
    assert _without_content(off) == off
    on = report_dict(analyze_file(path, content=ContentOptions()))
    assert _without_content(on) == off


SHARED_CAPTURES = [SHARED / n for n in ("wsc_sip-rtp-g722.pcap", "wsc_sip-rtp-opus.pcap", "wsc_SIP_CALL_RTP_G711.pcap",
                                        "rtpproxy_dtmf.pcap", "voipshark_SIP-RTP-Normal_Call_two_parties.pcap")]


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.pcap")) + [p for p in SHARED_CAPTURES if p.exists()],
                         ids=lambda p: p.name)
def test_fast_path_equals_packet_path(path, monkeypatch):
    fast = report_dict(files.analyze_file(path, content=ContentOptions()))
    monkeypatch.setattr(files, "batches_supported", lambda capture: False)
    assert report_dict(files.analyze_file(path, content=ContentOptions())) == fast


def gen_speech():
    sys.path.insert(0, str(REPO / "fixtures" / "scenarios"))
    import gen_speech

    return gen_speech


@pytest.mark.parametrize("case,codec,quality", [("speech_opus", "opus", 0.85), ("speech_g722", "G722", 0.95)])
def test_decode_follows_the_wav_baresip_played(case, codec, quality, tmp_path):
    """siptool's Opus and G.722 decode of baresip's RTP correlates with the WAV baresip's aufile
    played (made again by gen_speech.py: espeak-ng and sox, the same schedule and truth)."""
    require_binary("espeak-ng")
    require_binary("sox")
    gs = gen_speech()
    sides, t = gs.compose(gs.CASES[case], tmp_path)
    committed = truth(case)
    assert {s: t[s]["spurts_ms"] for s in sides} == {s: committed[s]["spurts_ms"] for s in sides}, \
        "espeak-ng or sox speak differently here than when the fixture was made"
    from siptool.capture import open_capture
    from siptool.rtp import audio
    from siptool.rtp.packet import parse_rtp

    report = analyze_file(FIXTURES / f"{case}.pcap", content=ContentOptions())
    for side, s in by_side(report.calls[0]).items():
        src = tuple(s.src.rsplit(":", 1))
        packets = []
        with open_capture(FIXTURES / f"{case}.pcap") as source:
            for pkt in source:
                h = parse_rtp(pkt.payload) if pkt.transport == "udp" and (pkt.src, str(pkt.sport)) == src else None
                if h is not None and h.payload_type == s.payload_type:
                    packets.append((h.sequence, pkt.payload[h.payload_offset:h.payload_offset + h.payload_length]))
        dec = audio.decoder(codec, s.clock_rate, 2 if codec == "opus" else 1)
        got = np.concatenate([dec.decode(p) for _, p in sorted(packets)]).astype(float)
        played = sides[side].astype(float)
        n = min(len(got), len(played))
        lags = range(0, t["rate"] // 50)  # the decoders' delay: up to 20 ms
        r = max(np.corrcoef(got[lag:n], played[:n - lag])[0, 1] for lag in lags)
        assert r >= quality, (side, r)


# --- rules on crafted calls: what no fixture shows ------------------------------------------------

def crafted(tmp_path, caller_pcm, callee_pcm, callee_pt=0, cn_from=None):
    """A PCMU call with the given audio each way (20 ms packets), answered at T0 + 0.1."""
    from crafted_calls import A, B, T0, Dialog, audio, rtp, sdp, write

    from siptool.rtp import g711

    d = Dialog("content-1")
    pkts = [d.request(A, "INVITE", T0, sdp(A, audio(4000, (0, 13))), initial=True),
            d.response(200, "OK", T0 + 0.1, sdp(B, audio(5000, (0, 13)))), d.ack(T0 + 0.11)]
    for (src, sp, dst, dp, pcm, ssrc) in ((A, 4000, B, 5000, caller_pcm, 1), (B, 5000, A, 4000, callee_pcm, 2)):
        payload = g711.ulaw_encode(pcm)
        seq = 0
        for i in range(len(payload) // 160):
            t = T0 + 0.12 + 0.02 * i
            if ssrc == 2 and cn_from is not None and i * 0.02 >= cn_from:
                if i % 10 == 0:  # RFC 3389: a comfort noise packet now and then, nothing between
                    pkts.append(rtp(src, sp, dst, dp, t, seq, 160 * i, ssrc, pt=13, payload=b"\x40"))
                    seq += 1
                continue
            pkts.append(rtp(src, sp, dst, dp, t, seq, 160 * i, ssrc, payload=payload[160 * i:160 * i + 160]))
            seq += 1
    end = T0 + 0.2 + len(caller_pcm) / 8000
    pkts += [d.request(A, "BYE", end), d.response(200, "OK", end + 0.01)]
    path = tmp_path / "crafted.pcap"
    write(path, pkts)
    return analyze_file(path, content=ContentOptions())


def speech_at(seconds, spurts, noise=0.0, level=-20.0):
    sys.path.insert(0, str(REPO / "tests" / "rtp"))
    from test_speech import timeline

    return timeline(seconds, spurts, level=level, noise=noise)


def test_digital_silence_mid_call_after_live_pauses(tmp_path):
    """The caller's line carries its noise floor between words, then 4 s of exact digital silence:
    its source was cut. The same 4 s from a side whose pauses are digital silence anyway: nothing."""
    cut = speech_at(9.0, [(0.5, 1.5), (7.0, 8.0)], noise=6)
    cut[int(2.5 * 8000):int(6.5 * 8000)] = 0
    report = crafted(tmp_path, cut, speech_at(9.0, [(1.8, 2.4)]))
    (f,) = [f for f in report.calls[0].findings if f.code == "media.silent"]
    assert f.severity == "warning" and f.evidence["side"] == "caller" and abs(f.evidence["longest_s"] - 4.0) < 0.05
    agent = crafted(tmp_path, speech_at(9.0, [(0.5, 1.5), (7.0, 8.0)]), speech_at(9.0, [(1.8, 2.4)]))
    assert not content_codes(agent)


def test_comfort_noise_only_direction_is_silent(tmp_path):
    report = crafted(tmp_path, speech_at(4.0, [(0.5, 1.5)], noise=6), speech_at(4.0, []), cn_from=0.0)
    (f,) = [f for f in report.calls[0].findings if f.code == "media.silent"]
    assert f.severity == "error" and "comfort noise only" in f.title


def test_both_starting_together_is_no_talk_over(tmp_path):
    report = crafted(tmp_path, speech_at(4.0, [(0.5, 3.0)]), speech_at(4.0, [(0.55, 3.5)]))
    conv = report.calls[0].conversation
    assert conv.overlaps and conv.overlaps[0].duration_ms > 2000 and not content_codes(report)


@pytest.mark.interop
def test_script_regenerates_the_speech_cases(tmp_path):
    """make_pcaps.sh speech_turns and speech_g722 (SIPp, and baresip with G.722) into a temporary
    folder: the new captures meet the truth the script wrote beside them (needs root)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("make_pcaps.sh needs root for its network namespace")
    for tool in ("sipp", "tcpdump", "ip", "baresip", "espeak-ng", "sox"):
        require_binary(tool)
    env = dict(os.environ, SIPTOOL_FX_OUT=str(tmp_path))
    subprocess.run([str(REPO / "fixtures" / "make_pcaps.sh"), "speech_turns", "speech_g722"], env=env, check=True,
                   capture_output=True, timeout=180)
    for case in ("speech_turns", "speech_g722"):
        report = analyze_file(tmp_path / f"{case}.pcap", content=ContentOptions())
        t = json.loads((tmp_path / f"{case}.truth.json").read_text())
        assert t == truth(case)  # the same speech, the same schedule
        for side, s in by_side(report.calls[0]).items():
            want = [(s.start + a / 1000, s.start + b / 1000) for a, b in t[side]["spurts_ms"]]
            got = [(x.start, x.end) for x in s.content.talk_spurts]
            assert len(got) == len(want)
            assert all(abs(x - a) <= 0.02 and abs(y - b) <= 0.02 for (a, b), (x, y) in zip(want, got)), (side, want, got)
        assert not content_codes(report)
