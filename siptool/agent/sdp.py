"""Small SDP offer/answer for the agent (RFC 4566, RFC 3264): G.711 plus telephone-event.

Building is done here; reading goes through the analyser's parser (siptool/sdp.py), so `call`, `echo`
and `analyze` understand SDP the same way."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import sdp as sdplib
from ..rtp import codecs

SUPPORTED = ("PCMU", "PCMA")  # what the agent encodes and decodes (rtp/g711.py)
STATIC = {name: codecs.by_name(name).pt for name in SUPPORTED}  # name -> payload type (RFC 3551)
NAMES = {pt: name for name, pt in STATIC.items()}
DTMF_PT = 101


@dataclass
class Media:
    address: str = ""
    port: int = 0
    payloads: list[int] = field(default_factory=list)
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)  # pt -> (name, rate)
    direction: str = "sendrecv"
    ptime: int | None = None

    def codec_name(self, pt: int) -> str:
        if pt in self.rtpmap:
            return self.rtpmap[pt][0]
        return NAMES.get(pt, str(pt))

    def pt_for(self, name: str) -> int | None:
        for pt in self.payloads:
            if self.codec_name(pt).lower() == name.lower():
                return pt
        return None


def build(address: str, port: int, payloads: list[int], direction: str = "sendrecv", session_id: int | None = None,
          version: int = 1, dtmf_pt: int | None = DTMF_PT, ptime: int = 20) -> bytes:
    """An audio session description; payloads are static G.711 types, telephone-event appended."""
    sid = session_id or int(time.time())
    pts = list(payloads) + ([dtmf_pt] if dtmf_pt is not None else [])
    family = "IP6" if ":" in address else "IP4"  # RFC 4566 5.7
    lines = ["v=0", f"o=siptool {sid} {version} IN {family} {address}", "s=siptool", f"c=IN {family} {address}", "t=0 0",
             f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}"]
    for pt in payloads:
        lines.append(f"a=rtpmap:{pt} {NAMES.get(pt, str(pt))}/8000")
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines += [f"a=ptime:{ptime}", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def parse(body: bytes) -> Media | None:
    """The first audio m= line with its connection address, read by the analyser's SDP parser
    (siptool.sdp); None when there is none."""
    desc = sdplib.parse(body)
    for m in desc.media:
        if m.media != "audio":
            continue
        return Media(address=sdplib.connection_address(desc, m), port=m.port, payloads=m.payload_types,
                     rtpmap={pt: (name, rate or 8000) for pt, (name, rate, _ch) in m.rtpmap.items()},
                     direction=sdplib.direction(desc, m) if m.port else "inactive", ptime=m.ptime)
    return None


def choose(offer: Media, supported: list[str]) -> tuple[str, int] | None:
    """Answerer's choice (RFC 3264 6.1): the first offered codec we support, in the offer's order."""
    wanted = {c.upper() for c in supported}
    for pt in offer.payloads:
        name = offer.codec_name(pt).upper()
        if name in wanted:
            return name, pt
    return None


def dtmf_pt(m: Media) -> int | None:
    for pt in m.payloads:
        if m.codec_name(pt).lower() == "telephone-event":
            return pt
    return None


def answer_direction(offer_direction: str) -> str:
    return {"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}.get(offer_direction, "sendrecv")
