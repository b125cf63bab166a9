"""Media diagnoses over a finished Call: who hears what (one-way audio, no audio, hold), NAT, codecs,
SSRC changes. One function per rule; judge.py lists them.

Rules read `call.sdp` (what each side said) and `call.streams` (what was sent), never packets. Sides
come from the SIP dialog's tags (SdpEntry.side), so a capture taken at a proxy, where every message
passes twice, still tells the caller's SDP from the callee's.
"""

from __future__ import annotations

from typing import Iterable

from ..report.model import Call, Finding, SdpEntry, Severity, Stream
from ..sip.uri import top_via, uri_host
from .addresses import UNREACHABLE, address_kind, host, split
from .context import Context

MEDIA_DUE_S = 1.0  # RTP starts within ~100 ms of the answer; a capture must cover this much to judge it
OTHER = {"caller": "callee", "callee": "caller"}


def _negotiated(call: Call) -> tuple[SdpEntry | None, SdpEntry | None]:
    """Latest audio offer and answer of the call."""
    offer = answer = None
    for e in call.sdp:
        if e.media != "audio":
            continue
        if e.role == "offer":
            offer, answer = e, None
        elif e.role == "answer":
            answer = e
    return offer, answer


def _side(call: Call, e: SdpEntry) -> str:
    """Whose SDP: from the dialog's tags, else (no tags) from the sending address."""
    if e.side:
        return e.side
    return "caller" if host(e.sender) == host(call.caller) else "callee"


def _announced(call: Call) -> dict[str, list[tuple[str, int]]]:
    """Every audio endpoint each side announced, in order: {'caller': [(ip, port), ...], 'callee': ...}."""
    out: dict[str, list[tuple[str, int]]] = {}
    for e in call.sdp:
        if e.media != "audio" or not e.port:
            continue
        out.setdefault(_side(call, e), []).append((e.address, e.port))
    return out


def _sides(call: Call) -> dict[str, tuple[str, int]]:
    """Which media endpoint each side announced last: {'caller': (ip, port), 'callee': (ip, port)}."""
    return {side: endpoints[-1] for side, endpoints in _announced(call).items()}


def audio(call: Call) -> list[Stream]:
    """The call's audio streams that carried packets (not video, not DTMF-only)."""
    return [s for s in call.streams if s.packets and s.media == "audio"]


class Paths:
    """Who sent each audio stream and whom it reached, from what each side announced and where its
    own RTP came from (a side behind NAT is reached at its NAT's address by a peer that latches)."""

    def __init__(self, call: Call) -> None:
        self.announced = {k: set(v) for k, v in _announced(call).items()}
        self.streams = audio(call)
        self.sender: dict[int, str | None] = {}
        for s in self.streams:
            src, dst = split(s.src), split(s.dst)
            by = next((side for side, eps in self.announced.items() if src in eps), None)
            if by is None:
                to = next((side for side, eps in self.announced.items() if dst in eps), None)
                by = OTHER[to] if to else None
            self.sender[id(s)] = by
        self.sources = {side: {split(s.src) for s in self.streams if self.sender[id(s)] == side}
                        for side in OTHER}
        public = [e for e in (call.caller, call.callee) if e and address_kind(host(e)) == "public"]
        public += [e for s in self.streams for e in (s.src, s.dst) if address_kind(host(e)) == "public"]
        self.crosses_public = bool(public)

    def reached(self, s: Stream) -> str | None:
        """The side a stream reached, or None when it went to neither side's address, or to a private one
        that the Internet cannot deliver to."""
        if self.lost_to_nat(s):
            return None
        by, dst = self.sender[id(s)], split(s.dst)
        for side in OTHER:
            if side != by and (dst in self.announced.get(side, ()) or dst in self.sources[side]):
                return side
        return None

    def lost_to_nat(self, s: Stream) -> bool:
        """Sent to an address that cannot be reached across the Internet, in a call that crosses it."""
        return self.crosses_public and address_kind(host(s.dst)) in UNREACHABLE and \
            split(s.dst) not in {split(x.src) for x in self.streams}


def _expected_one_way(call: Call) -> str | None:
    """If the negotiated directions make media one-way or none on purpose, say which."""
    offer, answer = _negotiated(call)
    dirs = {e.direction for e in (offer, answer) if e is not None}
    if "inactive" in dirs:
        return "inactive"
    if dirs & {"sendonly", "recvonly"}:
        return "one-way"
    return None


def _covered(call: Call, ctx: Context) -> float | None:
    """Seconds of the answered call that the capture covers (answer to BYE, or to the capture's end)."""
    end = call.end if call.end is not None else ctx.capture_end
    return None if end is None or call.answer is None else end - call.answer


def one_way_audio(call: Call, ctx: Context) -> Iterable[Finding]:
    if call.kind != "call" or call.answer is None or not call.sdp:
        return
    designed = _expected_one_way(call)
    if designed:
        if designed == "one-way" and not any(e.direction in ("sendonly", "recvonly") for e in call.sdp[:1]) \
                and call.reinvites:
            yield Finding(code="media.hold", severity=Severity.INFO, title="Call put on hold (re-INVITE)",
                          explanation="A re-INVITE made the media one-way (sendonly/recvonly): this is hold, "
                                      "not a one-way audio fault.",
                          call_id=call.call_id, frames=[e.frame for e in call.sdp if e.direction != "sendrecv"][:4])
        return
    covered = _covered(call, ctx)
    if covered is not None and covered < MEDIA_DUE_S:
        return  # too little of the call was captured (or it lasted too little) to expect media
    paths = Paths(call)
    if not paths.streams:
        if not any(s.packets for s in call.streams):
            yield _no_audio(call)
        return
    sides = _sides(call)
    for side in ("caller", "callee"):
        if side not in sides or any(paths.reached(s) == side for s in paths.streams):
            continue
        yield _one_way(call, side, paths, sides)


def _no_audio(call: Call) -> Finding:
    return Finding(
        code="media.none", severity=Severity.ERROR, title="No audio at all on an answered call",
        explanation="The call was answered and SDP was exchanged, but no RTP was seen in either direction. "
                    "Either the capture does not include the media path (capture filter, or media "
                    "flows through another interface), or both sides send to addresses that do not "
                    "reach the other (NAT without an SBC, firewall blocking the RTP port range).",
        fix="Check the capture covers the RTP ports; check firewall rules for the RTP range and the "
            "c=/m= addresses in both SDPs.",
        call_id=call.call_id, frames=[e.frame for e in call.sdp][:4],
        evidence={"sdp": [f"{e.sender}: {e.address}:{e.port}" for e in call.sdp][:4]})


def _ep(ep: tuple[str, int]) -> str:
    return f"[{ep[0]}]:{ep[1]}" if ":" in ep[0] else f"{ep[0]}:{ep[1]}"


def _one_way(call: Call, deaf: str, paths: Paths, sides: dict) -> Finding:
    """`deaf` receives no RTP: say so, with what did flow and the most likely cause."""
    talker = OTHER[deaf]
    said = sides[deaf]
    flowing = [s for s in paths.streams]
    from_talker = [s for s in flowing if paths.sender[id(s)] == talker]
    lost = [s for s in from_talker if paths.lost_to_nat(s)]
    evidence = {"hears_nothing": deaf, "missing_from": talker, "sdp_said": _ep(said),
                "flowing": ", ".join(f"{s.src} -> {s.dst}" for s in flowing[:4])}
    frames = list(dict.fromkeys([s.first_frame for s in flowing[:2]] + [e.frame for e in call.sdp][:3]))
    deaf_media = sorted({s.src for s in flowing if paths.sender[id(s)] == deaf})
    if lost:
        s = lost[0]
        kind = address_kind(host(s.dst))
        evidence.update(cause="nat", sent_to=s.dst, media_from=deaf_media[0] if deaf_media else None)
        seen = (f" The {deaf}'s own RTP comes from {deaf_media[0]}: that is where it can be reached (its NAT)."
                if deaf_media else "")
        return Finding(
            code="media.one_way", severity=Severity.ERROR,
            title=f"One-way audio: the {deaf} hears nothing (RTP sent to {kind} {s.dst})",
            explanation=f"The {talker} sends its RTP to {s.dst}, the {kind} address in the {deaf}'s SDP, and "
                        f"nothing ever came from that address. A {kind} address cannot be reached across the "
                        f"Internet: the {deaf} is behind NAT and nothing rewrote its SDP.{seen}",
            fix=f"Make the {talker} (or its SBC) latch: send RTP to where the {deaf}'s RTP comes from "
                f"(symmetric RTP, comedia, NAT=yes). Or have the {deaf} advertise its public address "
                "(external media address, STUN, an SBC that rewrites SDP); check that no SIP ALG mangles SDP.",
            call_id=call.call_id, frames=list(dict.fromkeys([s.first_frame] + frames))[:4], evidence=evidence)
    if from_talker:
        s = from_talker[0]
        evidence.update(cause="misdirected", sent_to=s.dst)
        return Finding(
            code="media.one_way", severity=Severity.ERROR,
            title=f"One-way audio: the {deaf} hears nothing (RTP goes to {s.dst}, not {_ep(said)})",
            explanation=f"The {talker}'s RTP goes from {s.src} to {s.dst}, but the {deaf}'s SDP asked for media at "
                        f"{_ep(said)} and its own RTP does not come from {s.dst} either, so nothing is sent "
                        f"where the {deaf} listens.",
            fix=f"Make the {talker} send to the address and port in the {deaf}'s SDP (check re-INVITE/UPDATE "
                f"handling and any SBC or ALG rewriting SDP), or latch to where the {deaf}'s RTP comes from.",
            call_id=call.call_id, frames=frames, evidence=evidence)
    talker_said = sides.get(talker)
    behind = address_kind(said[0]) in UNREACHABLE and paths.crosses_public and (
        talker_said is None or address_kind(talker_said[0]) not in UNREACHABLE
        or address_kind(host(call.callee if deaf == "caller" else call.caller)) == "public")
    evidence["cause"] = "nat" if behind else "not_sent"
    if behind:
        explanation = (f"No RTP from the {talker} reached the capture point. The {deaf}'s SDP offers "
                       f"{_ep(said)}, a {address_kind(said[0])} address, to a far end across the Internet: the "
                       f"{talker} cannot reach it, so its RTP is lost before it gets here.")
        fix = (f"Have the {deaf} advertise its public address (external media address, STUN, an SBC that "
               f"rewrites SDP), or make the {talker} latch to where the {deaf}'s RTP comes from (symmetric "
               "RTP, comedia); check that no SIP ALG mangles SDP.")
    else:
        explanation = (f"No RTP from the {talker} reached the capture point (the {deaf}'s SDP asked for it at "
                       f"{_ep(said)}). The {talker}'s media is blocked on its way (firewall, RTP port range "
                       f"closed), the {talker} never started sending (muted, codec, waiting to latch), or it "
                       "takes a path this capture does not see.")
        fix = (f"Check the {talker}'s media: firewall rules for its RTP ports, that it sends at all, and that "
               "the capture point sees both directions of the media.")
    return Finding(
        code="media.one_way", severity=Severity.ERROR,
        title=f"One-way audio: the {deaf} hears nothing (no RTP from the {talker})",
        explanation=explanation, fix=fix, call_id=call.call_id, frames=frames, evidence=evidence)


def nat_addresses(call: Call, ctx: Context) -> Iterable[Finding]:
    """Private or CGNAT addresses in SDP while the signalling came from a public address."""
    for e in call.sdp:
        kind = address_kind(e.address)
        sender_kind = address_kind(host(e.sender))
        if kind in UNREACHABLE and sender_kind == "public":
            yield Finding(
                code="nat.private_sdp", severity=Severity.WARNING,
                title=f"SDP advertises {kind} address {e.address} from public {host(e.sender)}",
                explanation=f"The {e.message} (frame {e.frame}) came from {host(e.sender)} but its SDP asks for "
                            f"media at {e.address}:{e.port}, a {kind} address that is unreachable from the "
                            "Internet. The device is behind NAT and nothing rewrote the SDP.",
                fix="Set the external/public media address on the device or PBX, use an SBC that rewrites "
                    "SDP, or rely on symmetric RTP (latching) at the far end.",
                call_id=call.call_id, frames=[e.frame], evidence={"sdp_address": e.address, "sender": e.sender})
            return


def rtp_source_mismatch(call: Call, ctx: Context) -> Iterable[Finding]:
    """RTP sent from an address/port that side never announced in its SDP (needs latching)."""
    paths = Paths(call)
    sides = _announced(call)
    for s in paths.streams:
        sender = paths.sender[id(s)]
        if not s.from_sdp or sender is None:
            continue
        said = sides.get(sender)
        if not said or split(s.src) in said:  # any of its offers/answers (re-INVITE, UPDATE move media)
            continue
        announced = said[-1]
        if announced[1]:
            kind = address_kind(announced[0])
            behind = (f" The SDP address {announced[0]} is a {kind} address: the {sender} is behind NAT and "
                      "nothing rewrote its SDP, so media sent to what it announced will not reach it."
                      if kind in UNREACHABLE else "")
            yield Finding(
                code="nat.rtp_source", severity=Severity.WARNING,
                title=f"RTP from {s.src}, but the {sender}'s SDP said {_ep(announced)}",
                explanation="Media arrives from a different address or port than the sender announced in its "
                            "SDP. " + ("This is what NAT does" if paths.crosses_public else
                                       "A media relay or SBC in the path does this, or NAT")
                            + "; it only works if the receiver sends its own RTP back to where packets come "
                              "from (symmetric RTP / latching)." + behind,
                fix="Enable symmetric RTP / comedia / NAT=yes on the receiving side, or fix the sender's "
                    "advertised media address.",
                call_id=call.call_id, frames=[s.first_frame],
                evidence={"rtp_source": s.src, "sdp_said": _ep(announced)})


def _srtp_offer(offer: SdpEntry) -> bool:
    """An RTP/SAVP(F) offer: its refusal is security.srtp_refused's (suites or codecs)."""
    return offer.protocol.upper() in ("RTP/SAVP", "RTP/SAVPF")


def codec_problems(call: Call, ctx: Context) -> Iterable[Finding]:
    offer, answer = _negotiated(call)
    if call.final_status in (488, 415, 606) and offer is not None and not _srtp_offer(offer):
        yield Finding(
            code="codec.no_common", severity=Severity.ERROR, title="No common codec: the offer was refused",
            explanation=f"The far end answered {call.final_status}: none of the offered codecs "
                        f"({', '.join(offer.codecs) or 'none'}) or SDP options was acceptable.",
            fix="Offer G.711 (PCMU/PCMA) at least; remove SRTP/video/unsupported attributes the trunk does not take.",
            call_id=call.call_id, frames=[offer.frame], evidence={"offered": offer.codecs})
    if answer is None:
        return
    allowed = {c.split()[0] for e in call.sdp for c in e.codecs}  # every m= line (audio, video...)
    for s in call.streams:
        if s.packets and str(s.payload_type) not in allowed and s.from_sdp:
            yield Finding(
                code="codec.unexpected_pt", severity=Severity.WARNING,
                title=f"RTP payload type {s.payload_type} ({s.codec}) is not in the answer",
                explanation=f"The stream {s.src} -> {s.dst} uses payload type {s.payload_type}, but the SDP "
                            f"answer allowed only {', '.join(answer.codecs)}. The receiver may drop it.",
                fix="Make the sender use a negotiated payload type (check codec settings and re-INVITE handling).",
                call_id=call.call_id, frames=[s.first_frame])
    codecs = {s.codec for s in call.streams if s.packets and s.codec != "telephone-event"}
    if len(codecs) > 1 and len([s for s in call.streams if s.packets]) >= 2:
        yield Finding(
            code="codec.asymmetric", severity=Severity.INFO, title=f"Different codecs per direction: {', '.join(sorted(codecs))}",
            explanation="The two directions use different codecs. RFC 3264 allows it, but some gateways "
                        "mis-handle it and transcoding may reduce quality.",
            fix="Put the same preferred codec first on both sides.", call_id=call.call_id)
    ptimes = {e.ptime for e in (offer, answer) if e is not None and e.ptime}
    if len(ptimes) > 1:
        yield Finding(
            code="codec.ptime_mismatch", severity=Severity.INFO, title=f"ptime differs between offer and answer: {sorted(ptimes)}",
            explanation="Offer and answer ask for different packetisation times; receivers must cope with "
                        "both, and some jitter buffers do not.",
            fix="Align ptime (20 ms is the common choice for G.711).", call_id=call.call_id)
    dtmf = [s for s in call.streams if s.dtmf]
    has_te = any("telephone-event" in c for e in (offer, answer) if e for c in e.codecs)
    if dtmf and not has_te:
        yield Finding(
            code="codec.dtmf_without_te", severity=Severity.WARNING, title="DTMF events sent without telephone-event in SDP",
            explanation="RFC 4733 DTMF events were sent, but the SDP did not negotiate telephone-event; the far "
                        "end may ignore the digits.",
            fix="Offer telephone-event/8000 in the SDP, or use the DTMF mode the trunk expects.",
            call_id=call.call_id, frames=[dtmf[0].first_frame])


def ssrc_change(call: Call, ctx: Context) -> Iterable[Finding]:
    """One direction (same addresses and ports) carrying several SSRCs one after another."""
    by_path: dict[tuple[str, str], list[Stream]] = {}
    for s in call.streams:
        if s.packets and s.media == "audio":
            by_path.setdefault((s.src, s.dst), []).append(s)
    for (src, dst), streams in by_path.items():
        if len(streams) < 2:
            continue
        streams.sort(key=lambda s: s.start)
        later = streams[1]
        yield Finding(
            code="media.ssrc_change", severity=Severity.INFO,
            title=f"SSRC changed on {src} -> {dst} ({len(streams)} sources)",
            explanation=f"The media from {src} switched from SSRC {streams[0].ssrc:#010x} to {later.ssrc:#010x} "
                        f"at frame {later.first_frame} without new SDP. Usually a B2BUA or media server "
                        "re-anchoring or a transfer; some endpoints and SBCs mishandle it (brief silence, "
                        "jitter buffer reset, dropped latching).",
            fix="If audio breaks at that moment, have the sender keep one SSRC per session or send a re-INVITE.",
            call_id=call.call_id, frames=[s.first_frame for s in streams][:4],
            evidence={"ssrcs": [f"{s.ssrc:#010x}" for s in streams]})


def sip_header_nat(msg, hop, call: Call) -> Finding | None:
    """RFC 3581 / RFC 5626 territory: a private, CGNAT or link-local address in the Contact (or, for a
    request, the top Via) of a message that arrived from a public address: the sender is behind NAT and
    did not learn its public address, so in-dialog requests (ACK, BYE) sent to that Contact get lost."""
    if address_kind(hop.src) != "public":
        return None
    seen = []
    contact = uri_host(msg.get("contact") or "")
    if contact:
        seen.append(("Contact", contact))
    if msg.is_request:
        via = top_via(msg)
        if via is not None:
            seen.append(("Via", via.host))
    for header, addr in seen:
        kind = address_kind(addr)
        if kind in UNREACHABLE:
            return Finding(
                code="nat.private_contact", severity=Severity.WARNING,
                title=f"{header} has {kind} address {addr} in a message from public {hop.src}",
                explanation=f"The {msg.label} in frame {hop.frame} came from {hop.src}:{hop.sport} but its {header} "
                            f"says {addr}, a {kind} address. The sender is behind NAT and its SIP stack did not "
                            "use its public address; requests sent to that Contact (ACK, re-INVITE, BYE) cannot "
                            "reach it unless the far end uses the source address (rport, RFC 3581; NAT=yes).",
                fix="Enable rport/NAT handling (force_rport, fix_nated_contact, nat=force_rport,comedia) on the "
                    "proxy or PBX, set the external address on the device, or turn off a broken SIP ALG.",
                call_id=call.call_id, frames=[hop.frame],
                evidence={"header": header, "address": addr, "source": f"{hop.src}:{hop.sport}"})
    return None


