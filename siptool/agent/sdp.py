"""Small SDP offer/answer for the agent (RFC 4566, RFC 3264): G.711 plus telephone-event.

Building is done here. `parse` is a minimal local reader of what offer/answer needs (c=, m=audio, rtpmap,
direction, ptime): siptool/sdp.py did not exist when this was written; switch to it once it does."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

STATIC = {"PCMU": 0, "PCMA": 8}
NAMES = {0: "PCMU", 8: "PCMA"}
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
    lines = ["v=0", f"o=siptool {sid} {version} IN IP4 {address}", "s=siptool", f"c=IN IP4 {address}", "t=0 0",
             f"m=audio {port} RTP/AVP {' '.join(map(str, pts))}"]
    for pt in payloads:
        lines.append(f"a=rtpmap:{pt} {NAMES.get(pt, str(pt))}/8000")
    if dtmf_pt is not None:
        lines += [f"a=rtpmap:{dtmf_pt} telephone-event/8000", f"a=fmtp:{dtmf_pt} 0-16"]
    lines += [f"a=ptime:{ptime}", f"a={direction}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def parse(body: bytes) -> Media | None:
    """The first audio m= line with its connection address; None when there is none."""
    text = body.decode("utf-8", "replace")
    session_c = ""
    media: Media | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            if media is not None:
                break  # first audio stream only
            parts = value.split()
            if len(parts) >= 3 and parts[0] == "audio" and parts[1].split("/")[0].isdigit():
                media = Media(address=session_c, port=int(parts[1].split("/")[0]),
                              payloads=[int(p) for p in parts[3:] if p.isdigit()])
        elif kind == "c":
            addr = value.split()[-1].split("/")[0] if value.split() else ""
            if media is None:
                session_c = addr
            else:
                media.address = addr
        elif kind == "a" and media is not None:
            name, _, rest = value.partition(":")
            if name == "rtpmap":
                pt, _, enc = rest.partition(" ")
                parts = enc.split("/")
                if pt.isdigit() and parts:
                    media.rtpmap[int(pt)] = (parts[0], int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 8000)
            elif name in ("sendrecv", "sendonly", "recvonly", "inactive"):
                media.direction = name
            elif name == "ptime" and rest.strip().isdigit():
                media.ptime = int(rest)
    return media


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
