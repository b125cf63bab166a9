"""The one codec registry: what a payload's encoding name is (audio, video, RFC 4733 events), its
payload type, RTP clock rate, channels and frame size, with the E-model's codec impairment (ITU-T
G.113 Ie, Bpl). SDP, RTP statistics, MOS and the agent all read it; a new codec plugs in here, once.

Static payload types are RFC 3551 section 6 (tables 4 and 5), with Wireshark's clock map for the
reserved types 1, 2 and 19 (8000 Hz, no name). G.722 (9) has an 8000 Hz RTP clock although it samples
at 16 kHz (RFC 3551 4.5.2).

Ie and Bpl: ITU-T G.113 (11/2007) Appendix I, Tables I.1 (Ie) and I.3 (Bpl, random loss): G.711 Ie 0,
Bpl 25.1 with the G.711 Appendix I PLC, 4.3 without; G.729A+VAD Ie 11, Bpl 19.0; G.723.1 6.3 kbit/s
Ie 15, Bpl 16.1; G.723.1 5.3 kbit/s Ie 19; G.729 Ie 10 (no Bpl given: G.729A's used); GSM-EFR Ie 5, Bpl
10.0; GSM FR Ie 20 and G.726 32 kbit/s Ie 7 (no Bpl in G.113: G.711-without-PLC's 4.3 for G.726,
GSM-EFR's 10.0 for GSM FR). Not in G.113 (approximations, stated as such): iLBC Ie 10, Bpl 32 (RFC 3951
measurements as commonly quoted for the E-model); wideband codecs (G.722, Opus, AMR-WB, SILK) have no
narrowband values: they are rated like G.711 with PLC (Ie 0, Bpl 25.1), capped at narrowband quality.
G.726 at 16, 24 and 40 kbit/s: G.113 Table I.1 (Ie 50, 25, 2), with 32 kbit/s's Bpl.

`rate` is the audio's sampling rate where it is not the RTP clock, and `decoder` names the FFmpeg
decoder that rtp/audio.py decodes it with ("" when siptool cannot decode it: DVI4, LPC, MPA, SILK...).

Lookups by name, for everyone: `decoder(name, ...)` (content analysis) and `coder(name, fmtp)` (the
agent's codecs, AGENT: encode and decode), built from rtp/audio.py's implementations, which read
nothing from this module (so neither it nor rtp/g711.py imports the registry back).

Wideband codecs (G.722, Opus) have a second rating: WIDEBAND holds their ITU-T G.107.1 wideband
E-model values (Ie,wb, Bpl): rtp/mos.py rates them on that scale and the report marks the MOS as
an estimate (docs/json-schema.md, `mos_model`).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import audio


@dataclass(frozen=True, slots=True)
class Codec:
    name: str  # as SDP's rtpmap writes it (RFC 3551 / IANA)
    clock_rate: int  # RTP timestamp rate
    pt: int | None = None  # static payload type, None for dynamic ones
    channels: int = 1
    frame_ms: int = 20  # usual packet interval
    media: str = "audio"
    ie: float = 0.0  # G.113 equipment impairment
    bpl: float = 25.1  # G.113 packet-loss robustness
    named: bool = True  # False: a reserved static type that only has a clock (Wireshark's map)
    rate: int = 0  # audio sampling rate when it differs from the RTP clock (0: the clock rate)
    decoder: str = ""  # FFmpeg's decoder for its payloads (rtp/audio.py), "" when none


UNKNOWN = (0.0, 25.1)  # an unknown codec is rated as G.711 with PLC (documented default)

REGISTRY: tuple[Codec, ...] = (
    Codec("PCMU", 8000, 0, decoder="pcm_mulaw"), Codec("reserved", 8000, 1, named=False),
    Codec("reserved", 8000, 2, named=False), Codec("GSM", 8000, 3, ie=20.0, bpl=10.0, decoder="gsm"),
    Codec("G723", 8000, 4, frame_ms=30, ie=15.0, bpl=16.1, decoder="g723_1"),
    Codec("DVI4", 8000, 5), Codec("DVI4", 16000, 6), Codec("LPC", 8000, 7), Codec("PCMA", 8000, 8, decoder="pcm_alaw"),
    Codec("G722", 8000, 9, rate=16000, decoder="g722"), Codec("L16", 44100, 10, channels=2, decoder="pcm_s16be"),
    Codec("L16", 44100, 11, decoder="pcm_s16be"), Codec("QCELP", 8000, 12, decoder="qcelp"), Codec("CN", 8000, 13),
    Codec("MPA", 90000, 14), Codec("G728", 8000, 15, decoder="g728"),
    Codec("DVI4", 11025, 16), Codec("DVI4", 22050, 17), Codec("G729", 8000, 18, ie=11.0, bpl=19.0, decoder="g729"),
    Codec("reserved", 8000, 19, named=False),
    Codec("CelB", 90000, 25, media="video"), Codec("JPEG", 90000, 26, media="video"),
    Codec("nv", 90000, 28, media="video"), Codec("H261", 90000, 31, media="video"),
    Codec("MPV", 90000, 32, media="video"), Codec("MP2T", 90000, 33, media="video"),
    Codec("H263", 90000, 34, media="video"),
    # dynamic payload types (RFC 3551 4.5, RFC 7587, RFC 4867, RFC 3951, RFC 5574, RFC 4733)
    Codec("G726-32", 8000, ie=7.0, bpl=4.3, decoder="g726le"), Codec("G726-16", 8000, ie=50.0, bpl=4.3, decoder="g726le"),
    Codec("G726-24", 8000, ie=25.0, bpl=4.3, decoder="g726le"), Codec("G726-40", 8000, ie=2.0, bpl=4.3, decoder="g726le"),
    Codec("AAL2-G726-32", 8000, ie=7.0, bpl=4.3, decoder="g726"),
    Codec("iLBC", 8000, frame_ms=30, ie=10.0, bpl=32.0, decoder="ilbc"),
    Codec("opus", 48000, channels=2, decoder="libopus"), Codec("AMR", 8000, ie=5.0, bpl=10.0, decoder="amrnb"),
    Codec("AMR-WB", 16000, decoder="amrwb"), Codec("SILK", 16000),
    Codec("speex", 8000, ie=10.0, bpl=20.0, decoder="speex"), Codec("GSM-EFR", 8000, ie=5.0, bpl=10.0),
    Codec("telephone-event", 8000, media="event"),
)

# Names the E-model knows besides the registry's own (lower case): variants and common spellings.
_IMPAIRMENT = {"g711": (0.0, 25.1), "g711-noplc": (0.0, 4.3), "g729a": (11.0, 19.0), "g729ab": (11.0, 19.0),
               "g723.1": (15.0, 16.1), "g723-5.3": (19.0, 16.1), "g726": (7.0, 4.3)}
_ALIASES = {"g711u": "pcmu", "g711a": "pcma", "ulaw": "pcmu", "alaw": "pcma", "g.711": "g711",
            "g.729": "g729", "g.723.1": "g723.1", "g.722": "g722", "g.726": "g726", "g726-32": "g726",
            "g7231": "g723.1", "gsm-fr": "gsm"}

STATIC: dict[int, Codec] = {c.pt: c for c in REGISTRY if c.pt is not None}
_BY_NAME: dict[str, Codec] = {}
for _c in REGISTRY:
    if _c.named:
        _BY_NAME.setdefault(_c.name.lower(), _c)


def static(pt: int) -> Codec | None:
    """The static payload type's codec (RFC 3551), named ones only."""
    c = STATIC.get(pt)
    return c if c is not None and c.named else None


def static_clock_rate(pt: int) -> int | None:
    """RTP clock of a static payload type, reserved ones included (as Wireshark counts them)."""
    c = STATIC.get(pt)
    return c.clock_rate if c is not None else None


def by_name(name: str) -> Codec | None:
    """The codec SDP's encoding name means (case-insensitive)."""
    return _BY_NAME.get((name or "").strip().lower())


def impairment(name: str) -> tuple[float, float]:
    """(Ie, Bpl) for a codec name as SDP or tshark writes it (case-insensitive, "G729" or "g729a")."""
    key = (name or "").strip().lower().split("/")[0]
    for k in (key, key.replace(".", "").replace("_", "-")):
        k = _ALIASES.get(k, k)
        if k in _IMPAIRMENT:
            return _IMPAIRMENT[k]
        c = _BY_NAME.get(k)
        if c is not None:
            return c.ie, c.bpl
    return UNKNOWN


# What an encoding name says about the payload, for names the registry has no entry for as well.
AUDIO = frozenset((
    "pcmu", "pcma", "g722", "g723", "g726-16", "g726-24", "g726-32", "g726-40", "g726", "aal2-g726-32", "g728", "g729",
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


def decoder(name: str, clock_rate: int = 0, channels: int = 1, fmtp: str = "") -> audio.Decoder:
    """The decoder for an SDP encoding name (as rtpmap writes it), its clock and channels, and its
    fmtp (rtp/audio.py). Raises audio.AudioError for a codec siptool cannot decode."""
    c = by_name(name)
    if c is None or not c.decoder:
        raise audio.AudioError(f"no decoder for {name or 'an unknown codec'}")
    return audio.make_decoder(c, clock_rate, channels, fmtp)


AGENT = ("PCMU", "PCMA", "G722", "opus")  # what the agent encodes and decodes: call --codec, echo --codec


def coder(name: str, fmtp: str = "", ptime_ms: int = 20) -> audio.Coder | None:
    """The agent's coder for an encoding name (one of AGENT, any case), None for others. `fmtp` is
    the far end's for the payload type (RFC 7587 6.1: useinbandfec turns Opus FEC on)."""
    c = by_name(name)
    if c is None or c.name not in AGENT:
        return None
    return audio.Coder(c.name, c.clock_rate, c.rate or c.clock_rate, ptime_ms,
                       lambda: audio.encoder(c.name, ptime_ms, fmtp),
                       lambda: audio.make_decoder(c, c.clock_rate, c.channels, fmtp), fmtp)


# ITU-T G.107.1 wideband E-model values (Ie,wb, Bpl) for the wideband codecs the agent sends. G.722
# 64 kbit/s: Ie,wb 13, ITU-T G.113 Appendix IV (provisional planning value); G.113 gives no Bpl for
# it, so siptool's estimate is 10 (ADPCM with packet loss concealment). Opus is not in G.113's
# wideband tables: Ie,wb 10 and Bpl 20 (FEC and concealment) are siptool's estimates for Opus at
# 24-32 kbit/s in wideband mode. Ratings from these are estimates and the report says so.
WIDEBAND = {"g722": (13.0, 10.0), "opus": (10.0, 20.0)}
