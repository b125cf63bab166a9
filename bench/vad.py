"""Speech detectors against the speech fixtures' ground truth (fixtures/pcaps/speech_*.truth.json):
siptool's energy detector (rtp/speech.py, as `analyze --content` runs it) and webrtcvad (the
webrtcvad-wheels build of WebRTC's GMM detector, modes 0-3, on the same decoded audio in 10 ms
frames, spurts joined as siptool joins them). Prints, per detector, how far the talk spurt edges
land from the truth (ms: median and worst) and the spurts missed or extra.

python bench/vad.py                  # every speech fixture
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from siptool.analysis.content import ContentOptions  # noqa: E402
from siptool.drivers.files import analyze_file  # noqa: E402
from siptool.drivers.recording import tracks  # noqa: E402
from siptool.rtp import speech  # noqa: E402

FIXTURES = REPO / "fixtures" / "pcaps"
CASES = sorted(p.stem for p in FIXTURES.glob("speech_*.pcap"))


def webrtc_spurts(x: np.ndarray, rate: int, start: float, mode: int) -> list[tuple[float, float]]:
    """webrtcvad's decision per 10 ms frame (8/16/32/48 kHz, 16-bit), joined like siptool's spurts."""
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    n = rate // 100
    voiced = [vad.is_speech(x[i:i + n].astype("<i2").tobytes(), rate) for i in range(0, len(x) - n + 1, n)]
    f = speech.Frames(start=start + np.arange(len(voiced)) * 0.01, length=np.full(len(voiced), 0.01),
                      peak=np.where(voiced, 32767.0, 0.0).astype(np.float32),
                      power=np.zeros(len(voiced), np.float32), clipped=np.zeros(len(voiced), np.int32),
                      samples=np.full(len(voiced), n, np.int32))
    return speech.activity(f, speech.Vad(abs_dbfs=-1.0)).spurts  # a frame is active iff webrtcvad said so


def errors(got: list, want: list) -> tuple[list[float], int]:
    """Edge errors (ms) of the spurts matched to the truth by overlap, and the count unmatched (either way)."""
    out, used = [], set()
    for a, b in want:
        match = next((i for i, (x, y) in enumerate(got) if i not in used and x < b and y > a), None)
        if match is None:
            continue
        used.add(match)
        x, y = got[match]
        out += [abs(x - a) * 1000, abs(y - b) * 1000]
    return out, (len(want) - len(used)) + (len(got) - len(used))


def main() -> int:
    results: dict[str, dict] = {}
    for case in CASES:
        truth = json.loads((FIXTURES / f"{case}.truth.json").read_text())
        report = analyze_file(FIXTURES / f"{case}.pcap", content=ContentOptions())
        call = report.calls[0]
        heard = {t.side: t for t in tracks(FIXTURES / f"{case}.pcap", call)}
        for s in call.streams:
            side, first = s.content.side, s.start
            want = [(first + a / 1000, first + b / 1000) for a, b in truth[side]["spurts_ms"]]
            track = heard[side]
            rows = {"siptool energy": [(x.start, x.end) for x in s.content.talk_spurts]}
            for mode in range(4):
                rows[f"webrtcvad mode {mode}"] = webrtc_spurts(track.samples, track.rate, track.start, mode)
            for name, got in rows.items():
                r = results.setdefault(name, {"edges": [], "unmatched": 0})
                e, missed = errors(got, want)
                r["edges"] += e
                r["unmatched"] += missed
    print(f"speech fixtures: {', '.join(CASES)}")
    print(f"{'detector':20} {'edges':>6} {'median ms':>10} {'worst ms':>9} {'<=20 ms':>8} {'unmatched':>10}")
    for name, r in results.items():
        e = r["edges"]
        within = sum(x <= 20 for x in e) / len(e) if e else 0
        print(f"{name:20} {len(e):6} {statistics.median(e) if e else float('nan'):10.1f} {max(e, default=0):9.1f} "
              f"{within:8.0%} {r['unmatched']:10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
