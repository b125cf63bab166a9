"""What a payload's encoding name says about it: audio, video, RFC 4733 events, or unknown.

The seed of the project's codec registry: names as SDP rtpmap (RFC 8866 6.6) and RFC 3551 write them.
"""

from __future__ import annotations

AUDIO = frozenset((
    "pcmu", "pcma", "g722", "g723", "g726-16", "g726-24", "g726-32", "g726-40", "g726", "g728", "g729",
    "g729a", "g729b", "g729d", "g729e", "g7221", "g719", "gsm", "gsm-efr", "gsm-hr-08", "ilbc", "amr", "amr-wb",
    "opus", "speex", "silk", "l8", "l16", "l24", "dvi4", "lpc", "qcelp", "evrc", "evrc0", "evrcb", "evrcwb",
    "mpa", "g7291", "aac", "mp4a-latm", "evs", "isac", "red", "cn",
))
VIDEO = frozenset(("h261", "h263", "h263-1998", "h263-2000", "h264", "h265", "vp8", "vp9", "av1", "jpeg", "mpv",
                   "mp2t", "mp4v-es", "celb", "nv", "theora"))
EVENTS = frozenset(("telephone-event", "tone"))


def media_kind(codec: str, clock_rate: int = 0) -> str:
    """'audio', 'video', 'event' (RFC 4733 telephone-event) or 'other' for an encoding name."""
    name = (codec or "").strip().lower().split("/")[0]
    if name in EVENTS:
        return "event"
    if name in VIDEO:
        return "video"
    if name in AUDIO:
        return "audio"
    return "video" if clock_rate == 90000 else "other"
