"""The live driver takes any source of capture.Packets (here a capture file replayed) and keeps the live
board's snapshot from the Analyzer's own hooks and statistics: its figures are the report's."""

from __future__ import annotations

from support import FIXTURES

from siptool.analysis.session import Analyzer, _media_tracker
from siptool.capture import open_capture
from siptool.drivers.live import Counters, LiveRun


class Replay:
    """A capture file as a live source; `at(predicate, action)` runs action before yielding the first
    packet the predicate accepts (a snapshot at a chosen moment)."""

    def __init__(self, path) -> None:
        self.path, self.name, self.label = path, f"replay:{path.name}", path.name
        self.hooks: list = []
        self.read = 0
        self.last_time = None
        self.stopped = False

    def at(self, predicate, action) -> None:
        self.hooks.append((predicate, action))

    def __iter__(self):
        self.source = open_capture(self.path)
        for pkt in self.source:
            for predicate, action in self.hooks:
                if predicate(pkt):
                    action()
            self.read += 1
            self.last_time = pkt.time
            yield pkt
            if self.stopped:
                return
            yield None  # a moment for the driver's clock, as a quiet interface gives

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        self.source.capture.close()

    def counters(self) -> Counters:
        return Counters(self.read, None, "", self.last_time)

    def finish(self):
        s = self.source
        return s.info, s.decoder.skipped, s.decoder.fragments.incomplete, []


def run(path, moment=None):
    """Replay `path` through a LiveRun; a snapshot before the first packet `moment` accepts."""
    source = Replay(path)
    live = LiveRun(source, Analyzer(media=_media_tracker()))
    taken = []
    if moment is not None:
        source.at(moment, lambda: taken.append(live.snapshot()) if not taken else None)
    report = live.run()
    return report, taken[0] if taken else live.snapshot(), live


def test_live_media_figures_are_the_reports():
    """Just before the BYE of a call with 2 % loss one way, the board's call shows the packets, loss and
    voice jitter the report gives its streams (the window covers the whole 4 s of media)."""
    report, snap, _ = run(FIXTURES / "media_impaired.pcap", lambda p: p.payload.startswith(b"BYE "))
    (call,) = report.calls
    (shown,) = snap.active
    assert snap.active_total == 1 and shown.call_id == call.call_id and shown.progress == "answered"
    assert shown.rtp_packets == sum(s.packets for s in call.streams) == 396
    lost, expected = sum(s.lost for s in call.streams), sum(s.expected for s in call.streams)
    assert shown.loss_pct == 100.0 * lost / expected == 1.0
    assert round(shown.jitter_ms, 3) == max(s.max_voice_jitter_ms for s in call.streams) > 10  # report: 3 places
    assert shown.age_s > 4


def test_failures_and_calls_in_progress():
    report, end, live = run(FIXTURES / "calls_mixed.pcap")
    failed = sorted((c for c in report.calls if c.kind == "call" and c.final_status >= 300), key=lambda c: c.start)
    assert end.failed_total == len(failed) == 3 and end.active_total == 0
    assert [(f.call_id, f.status) for f in end.failed] == [(c.call_id, c.final_status) for c in failed]
    assert end.failed[1].reason == "Service Unavailable"
    assert end.sip_packets == report.capture.sip_packets == 47 and end.packets == report.capture.packets
    # just before the first 486: every call begun and not over is in progress, as far as it had come
    _, mid, _ = run(FIXTURES / "calls_mixed.pcap", lambda p: p.payload.startswith(b"SIP/2.0 486"))
    t = next(s.time for s in failed[0].ladder if s.status == 486)
    up = sorted((c for c in report.calls if c.start < t < c.end), key=lambda c: c.start)
    stage = ["answered" if c.answer is not None and c.answer < t else
             "ringing" if c.ringing is not None and c.ringing < t else "trying" for c in up]
    assert mid.failed_total == 0 and len(up) >= 2
    assert [(a.call_id, a.progress) for a in mid.active] == list(zip([c.call_id for c in up], stage))


def test_findings_so_far_come_from_the_hooks():
    """A malformed message found while reading reaches the board at once (Analyzer.on_finding)."""
    report, end, _ = run(FIXTURES / "nat_oneway_outside.pcap")
    reading = [f for f in report.all_findings() if f.code in ("sip.malformed", "sip.nonconformant",
                                                                "nat.private_contact")]
    assert end.findings_total == len(reading) == 1
    assert [f.code for f in end.findings] == [f.code for f in reading][-len(end.findings):]
