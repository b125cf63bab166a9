"""siptool's RTP streams against tshark's `-z rtp,streams` on the same captures.

Packets and lost must be equal; max delta and mean/max jitter within 1 % or 0.05 ms. Runs on the
project's fixtures (tshark run live) and on ../shared/pcaps with tshark's recorded reference.
"""

from __future__ import annotations

import pytest
from support import FIXTURES, SHARED, load_reference, require_binary, shared_references
from tshark_rtp import tshark_streams as _tshark_streams

from siptool.drivers.files import analyze_file

REFUSED = {"protos_c07-sip-r2.cap"}  # NetMon 2.x (see test_shared_calls.REFUSED)


def tshark_streams(path, extra=()) -> list[dict]:
    """tshark's rows, one-packet streams included (it prints -1 for their minimum delta/jitter)."""
    return _tshark_streams(require_binary("tshark"), path, extra)


def compare(report, theirs: list[dict], sdp_only: bool, not_from_sdp_ok: set = frozenset(),
            jitter_tolerance: float = 0.01) -> None:
    every = [s for c in report.calls for s in c.streams] + report.streams
    ours = {(s.src, s.dst, s.ssrc): s for s in every}
    wanted = {(t["src"], t["dst"], int(t["ssrc"], 16)): t for t in theirs}
    # tshark keeps one stream per 5-tuple and SSRC: siptool must not split one of them in pieces.
    split = [k for k in wanted if sum((s.src, s.dst, s.ssrc) == k for s in every) > 1]
    assert split == []
    # Every stream tshark reports is found, with the same figures.
    assert sorted(set(wanted) - set(ours)) == []
    # With tshark's defaults it only knows SDP-announced streams: ours from SDP must be the same set.
    if sdp_only:
        from_sdp = {k for k, s in ours.items() if s.from_sdp}
        assert from_sdp == set(wanted) - set(not_from_sdp_ok)
    for key, t in wanted.items():
        s = ours[key]
        assert (s.packets, s.lost) == (t["packets"], t["lost"]), key
        assert abs(s.max_delta_ms - t["max_delta_ms"]) <= max(0.05, 0.01 * t["max_delta_ms"]), key
        for name in ("mean_jitter_ms", "max_jitter_ms"):
            assert abs(getattr(s, name) - t[name]) <= max(0.05, jitter_tolerance * abs(t[name])), (key, name)


FIXTURE_PCAPS = sorted(FIXTURES.glob("media_*.pcap")) + [FIXTURES / "calls_mixed.pcap"]


@pytest.mark.parametrize("path", FIXTURE_PCAPS, ids=lambda p: p.name)
def test_fixture_streams_equal_tshark(path):
    theirs = tshark_streams(path)
    report = analyze_file(path)
    compare(report, theirs, sdp_only=True)


def test_fixture_media_has_streams():
    # Guards against a silently disabled media path: the clean call has two G.711 streams with MOS.
    report = analyze_file(FIXTURES / "media_ok.pcap")
    streams = [s for c in report.calls for s in c.streams]
    assert len(streams) == 2 and all(s.from_sdp and s.codec == "PCMU" and s.packets > 100 for s in streams)
    assert all(4.0 < s.mos <= 4.5 for s in streams)


REFS = shared_references()
# Streams tshark associates through signalling siptool does not parse (MGCP SDP): siptool still finds
# them heuristically (from_sdp = False) with the same figures.
NOT_FROM_SIP_SDP = {
    "wsc_SIP_CALL_RTP_G711.pcap": {("200.57.7.202:30000", "200.57.7.196:40362", 0x2E3D)},
}


@pytest.mark.skipif(not REFS, reason="../shared/pcaps is not present")
@pytest.mark.parametrize("ref_path", REFS, ids=lambda p: p.name[:-5])
def test_shared_streams_equal_tshark(ref_path):
    ref = load_reference(ref_path)
    if ref.get("error") or ref["file"] in REFUSED:
        pytest.skip("not read on purpose; test_shared_calls checks the one-line error")
    report = analyze_file(SHARED / ref["file"])
    heuristic = ref["primary_rtp"] != "default"
    theirs = ref["rtp_streams_heuristic"] if heuristic else ref["rtp_streams"]
    compare(report, theirs, sdp_only=not heuristic, not_from_sdp_ok=NOT_FROM_SIP_SDP.get(ref["file"], set()))
