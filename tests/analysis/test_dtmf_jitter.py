"""Jitter verdicts leave RFC 4733 telephone-events out (issue 13): an event's packets keep the
timestamp of its start (RFC 4733 2.2.1), so tshark's Max Jitter counts a long digit as jitter on
a network that delivered every packet on time. siptool still reports tshark's figure, and judges
the voice packets' own jitter, whose ground truth the crafted arrival times give."""

from __future__ import annotations

import pytest
from crafted_calls import A, B, T0, Dialog, audio, rtp, sdp, write
from support import require_binary
from tshark_rtp import tshark_streams

from siptool.analysis.thresholds import Thresholds
from siptool.drivers.files import analyze_file


def voice_then_digits(digit_s: float, digits: int, late: dict[int, float] | None = None):
    """PCMU every 20 ms for 1 s, then `digits` RFC 4733 events of digit_s each (packets every
    20 ms, one timestamp per event), voice between and after. `late`: voice packet index -> extra
    delay (s). Returns (time_s, seq, ts, pt, marker, payload) rows."""
    rows, t, seq, ts, voice = [], 0.0, 1000, 160000, 0
    late = late or {}

    def talk(n):
        nonlocal t, seq, ts, voice
        for i in range(n):
            rows.append((t + late.get(voice, 0.0), seq, ts, 0, int(i == 0), b"\xff" * 160))
            t, seq, ts, voice = t + 0.02, seq + 1, ts + 160, voice + 1

    talk(50)
    for _ in range(digits):
        n = round(digit_s / 0.02)
        for i in range(n):  # digit 1, volume 10; the last three carry the end bit (RFC 4733 2.5.1.4)
            end, duration = i >= n - 3, 160 * min(i + 1, n - 2)
            payload = bytes([1, 0x0A | (0x80 if end else 0), duration >> 8, duration & 0xFF])
            rows.append((t, seq, ts, 101, int(i == 0), payload))  # the event's timestamp stands still
            t, seq = t + 0.02, seq + 1
        ts += 160 * n
        talk(25)
    return rows


def capture(path, rows):
    dialog = Dialog("dtmf-jitter")
    packets = [dialog.request(A, "INVITE", T0, sdp(A, audio(20000, (0, 101))), initial=True),
               dialog.response(200, "OK", T0 + 0.01, sdp(B, audio(30000, (0, 101)))), dialog.ack(T0 + 0.02)]
    for when, seq, ts, pt, marker, payload in rows:
        packets.append(rtp(A, 20000, B, 30000, T0 + 0.1 + when, seq, ts, 0x4242, pt, marker, payload))
    write(path, packets)
    (stream,) = [s for c in analyze_file(path).calls for s in c.streams]
    return stream, analyze_file(path)


def jitter_codes(report):
    return [f for f in report.all_findings() if f.code == "media.jitter"]


@pytest.mark.parametrize("digit_s,digits", [(1.0, 1), (1.0, 3), (2.0, 2)])
def test_long_digits_on_a_perfect_network_are_not_jitter(tmp_path, digit_s, digits):
    stream, report = capture(tmp_path / "dtmf.pcap", voice_then_digits(digit_s, digits))
    (row,) = tshark_streams(require_binary("tshark"), tmp_path / "dtmf.pcap")
    assert stream.max_jitter_ms == pytest.approx(row["max_jitter_ms"], abs=0.0015)  # tshark's figure, kept
    assert row["max_jitter_ms"] >= 30  # tshark would call this jitter ...
    assert stream.max_voice_jitter_ms == pytest.approx(0.0, abs=0.001)  # ... the network had none
    assert stream.dtmf == "1" * digits
    assert jitter_codes(report) == []


def rfc3550_max_jitter_ms(rows) -> float:
    """The RFC 3550 6.4.1 recurrence over the voice rows, straight from its text."""
    voice = [(row[0] * 1000.0, row[2] / 8.0) for row in rows if row[3] == 0]
    j = top = 0.0
    for (t0, s0), (t1, s1) in zip(voice, voice[1:]):
        j += (abs((t1 - t0) - (s1 - s0)) - j) / 16
        top = max(top, j)
    return top


def test_real_jitter_next_to_digits_is_still_found(tmp_path):
    """After the digit the network stalls: voice packets 60-69 are held and arrive together (a
    queue that empties at once). That is jitter a listener hears; it is found, at its true size."""
    late = {60 + i: 0.02 * (9 - i) + 0.0001 * i for i in range(10)}
    rows = voice_then_digits(0.4, 1, late)
    path = tmp_path / "stall.pcap"
    stream, _ = capture(path, rows)
    truth = rfc3550_max_jitter_ms(rows)
    assert truth > 5
    assert stream.max_voice_jitter_ms == pytest.approx(truth, abs=0.002)
    report = analyze_file(path, thresholds=Thresholds.from_limits(jitter_ms=5))
    (finding,) = jitter_codes(report)
    assert finding.evidence["max_jitter_ms"] == stream.max_voice_jitter_ms
    assert "DTMF 1" in finding.explanation
