"""The agent's SDP (RFC 4566, RFC 3264): its codecs (rtp/codecs.AGENT: G.711, G.722, Opus) plus
telephone-event, built through siptool.sdp's model; reading, negotiate() and the answer's direction
are siptool.sdp's own, so `call`, `echo` and `analyze` understand SDP the same way.

Opus is offered as RFC 7587 6.1 has it: `opus/48000/2` on a dynamic payload type, with fmtp saying
we take in-band FEC, decode up to 48 kHz, and prefer mono; G.722 as payload type 9 with its 8000 Hz
RTP clock (RFC 3551 4.5.2). An answer repeats the offer's payload type, rtpmap and fmtp for the
codec it chose (RFC 3264 6.1)."""

from __future__ import annotations

import time

from .. import sdp as sdplib
from ..rtp import codecs

SUPPORTED = codecs.AGENT  # what the agent encodes and decodes (rtp/codecs.coder)
OPUS_PT = 111  # a dynamic payload type (RFC 3551 6), the one most user agents pick for Opus
OPUS_FMTP = "useinbandfec=1; maxplaybackrate=48000; stereo=0"  # RFC 7587 6.1
PT = {name.upper(): codecs.by_name(name).pt if codecs.by_name(name).pt is not None else OPUS_PT
      for name in SUPPORTED}  # name (upper case) -> the payload type we offer it on
DTMF_PT = 101

Format = tuple[str, int, int, str]  # (encoding name, clock rate, channels, fmtp) of one payload type


def offered(name: str) -> Format:
    """How we offer one of our codecs: its rtpmap and fmtp."""
    c = codecs.by_name(name)
    return c.name, c.clock_rate, c.channels, OPUS_FMTP if c.name == "opus" else ""


def formats(names) -> dict[int, Format]:
    """Payload type -> format for the codecs we offer, in order."""
    return {PT[n.upper()]: offered(n) for n in names}


def negotiate(offer: sdplib.Media, names) -> tuple[str, int] | None:
    """siptool.sdp's negotiate() (RFC 3264 6.1), the codec named as the registry names it ("opus")."""
    chosen = sdplib.negotiate(offer, list(names))
    return (codecs.by_name(chosen[0]).name, chosen[1]) if chosen is not None else None


def chosen_format(offer: sdplib.Media, pt: int) -> Format:
    """The offer's rtpmap and fmtp of the payload type an answer picked (static types from RFC 3551)."""
    if pt in offer.rtpmap:
        name, rate, channels = offer.rtpmap[pt]
    else:
        c = codecs.static(pt)
        name, rate, channels = (c.name, c.clock_rate, c.channels) if c else (str(pt), 8000, 1)
    return name, rate or 8000, channels or 1, offer.fmtp.get(pt, "")


def build(address: str, port: int, payloads: list[int], direction: str = "sendrecv", session_id: int | None = None,
          version: int = 1, dtmf_pt: int | None = DTMF_PT, ptime: int = 20,
          formats: dict[int, Format] | None = None, proto: str = "RTP/AVP", crypto: tuple | list = ()) -> bytes:
    """An audio session description (siptool.sdp's model, serialised): `payloads` in order, each
    described by `formats` (else as its static type, RFC 3551), telephone-event appended; `proto`
    and `crypto` (sdp.Crypto lines) for SRTP (agent/sdes.py)."""
    sid = session_id or int(time.time())
    pts = list(payloads) + ([dtmf_pt] if dtmf_pt is not None else [])
    family = "IP6" if ":" in address else "IP4"  # RFC 4566 5.7
    known = formats or {}
    rtpmap, fmtp = {}, {}
    for pt in payloads:
        name, rate, channels, params = known.get(pt) or offered(codecs.static(pt).name)
        rtpmap[pt] = (name, rate, channels)
        if params:
            fmtp[pt] = params
    if dtmf_pt is not None:
        rtpmap[dtmf_pt], fmtp[dtmf_pt] = ("telephone-event", 8000, 1), "0-16"
    media = sdplib.Media("audio", port, proto, [str(pt) for pt in pts], rtpmap=rtpmap, fmtp=fmtp, ptime=ptime,
                         direction=direction, crypto=list(crypto))
    return sdplib.SessionDescription(version="0", origin=f"siptool {sid} {version} IN {family} {address}",
                                     session_name="siptool", connection=address, media=[media]).serialise()


def parse(body: bytes) -> sdplib.Media | None:
    """The first audio m= section in force (address and direction resolved), read by the analyser's
    SDP parser; None when there is none."""
    return sdplib.audio_in_force(sdplib.parse(body))
