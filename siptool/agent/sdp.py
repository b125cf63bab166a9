"""The agent's SDP (RFC 4566, RFC 3264): G.711 plus telephone-event, built through siptool.sdp's
model; reading, negotiate() and the answer's direction are siptool.sdp's own, so `call`, `echo` and
`analyze` understand SDP the same way."""

from __future__ import annotations

import time

from .. import sdp as sdplib
from ..rtp import codecs

SUPPORTED = ("PCMU", "PCMA")  # what the agent encodes and decodes (rtp/g711.py)
STATIC = {name: codecs.by_name(name).pt for name in SUPPORTED}  # name -> payload type (RFC 3551)
DTMF_PT = 101


def build(address: str, port: int, payloads: list[int], direction: str = "sendrecv", session_id: int | None = None,
          version: int = 1, dtmf_pt: int | None = DTMF_PT, ptime: int = 20, proto: str = "RTP/AVP",
          crypto: tuple | list = ()) -> bytes:
    """An audio session description (siptool.sdp's model, serialised); payloads are static G.711
    types, telephone-event appended; `proto` and `crypto` (sdp.Crypto lines) for SRTP (agent/sdes.py)."""
    sid = session_id or int(time.time())
    pts = list(payloads) + ([dtmf_pt] if dtmf_pt is not None else [])
    family = "IP6" if ":" in address else "IP4"  # RFC 4566 5.7
    rtpmap = {pt: (codecs.static(pt).name, codecs.static(pt).clock_rate, 1) for pt in payloads}
    fmtp = {}
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
