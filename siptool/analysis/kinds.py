"""What each stream carries (audio, video, RFC 4733 events), from the SDP m= line it was announced in
or, without SDP, from its encoding. MOS and audio verdicts are for audio only."""

from __future__ import annotations

from ..report.model import Call, Report, Stream
from ..rtp.codecs import media_kind
from .addresses import split


def classify_streams(report: Report) -> None:
    """Set every stream's `media`; drop the MOS of streams that are not audio (it has no meaning there)."""
    for call in report.calls:
        announced = _announced(call)
        for s in call.streams:
            _set(s, announced)
    for s in report.streams:
        _set(s, {})


def classify(stream: Stream, call: Call | None) -> None:
    """One stream's `media` as classify_streams will set it, from its call's SDP so far (a live run
    hands streams over as they close)."""
    _set(stream, _announced(call) if call is not None else {})


def _announced(call: Call) -> dict:
    return {(e.address, e.port): e.media for e in call.sdp if e.port}


def _set(s: Stream, announced: dict) -> None:
    by_codec = media_kind(s.codec, s.clock_rate)
    by_sdp = announced.get(split(s.dst)) or announced.get(split(s.src))
    if by_codec == "event" or by_sdp is None:
        s.media = by_codec
    else:
        s.media = by_sdp if by_sdp in ("audio", "video") else "other"
    if s.media != "audio":
        s.mos = s.r_factor = None
