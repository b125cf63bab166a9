"""Media diagnoses over a finished Call: one-way audio, NAT, codecs, quality. One function per rule.

Rules read `call.sdp` (what each side said) and `call.streams` (what was sent), never packets.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Iterable

from ..report.model import Call, Finding, SdpEntry, Stream
from .findings import call_rule

# Thresholds a stream is judged by (configurable through set_thresholds)
THRESHOLDS = {"loss_pct": 1.0, "loss_pct_error": 5.0, "jitter_ms": 30.0, "mos": 3.6, "mos_error": 3.1}


def set_thresholds(**values: float) -> None:
    unknown = set(values) - set(THRESHOLDS)
    if unknown:
        raise ValueError(f"unknown thresholds: {', '.join(sorted(unknown))}")
    THRESHOLDS.update(values)


CGNAT = ipaddress.ip_network("100.64.0.0/10")


@functools.lru_cache(maxsize=65536)
def address_kind(ip: str) -> str:
    """'private' (RFC 1918 / ULA), 'cgnat' (RFC 6598), 'link-local', 'loopback' or 'public'."""
    try:
        addr = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return "unknown"
    if addr.version == 4 and addr in CGNAT:
        return "cgnat"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_private:
        return "private"
    return "public"


def split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port or 0)


def _host(endpoint: str) -> str:
    return split(endpoint)[0]


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


def _announced(call: Call) -> dict[str, list[tuple[str, int]]]:
    """Every audio endpoint each side announced, in order: {'caller': [(ip, port), ...], 'callee': ...}."""
    caller_ip = _host(call.caller)
    out: dict[str, list[tuple[str, int]]] = {}
    for e in call.sdp:
        if e.media != "audio" or not e.port:
            continue
        side = "caller" if _host(e.sender) == caller_ip else "callee"
        out.setdefault(side, []).append((e.address, e.port))
    return out


def _sides(call: Call) -> dict[str, tuple[str, int]]:
    """Which media endpoint each side announced last: {'caller': (ip, port), 'callee': (ip, port)}."""
    return {side: endpoints[-1] for side, endpoints in _announced(call).items()}


def _towards(call: Call, stream: Stream) -> str | None:
    """'caller' or 'callee': which side a stream was sent to, from SDP endpoints or addresses."""
    sides = _sides(call)
    dst = split(stream.dst)
    src = split(stream.src)
    for side, ep in sides.items():
        if ep == dst:
            return side
    for side, ep in sides.items():
        if ep == src:
            return "callee" if side == "caller" else "caller"
    return None


def _expected_one_way(call: Call) -> str | None:
    """If the negotiated directions make media one-way or none on purpose, say which."""
    offer, answer = _negotiated(call)
    dirs = {e.direction for e in (offer, answer) if e is not None}
    if "inactive" in dirs:
        return "inactive"
    if dirs & {"sendonly", "recvonly"}:
        return "one-way"
    return None


@call_rule
def one_way_audio(call: Call) -> Iterable[Finding]:
    if call.kind != "call" or call.answer is None or not call.sdp:
        return
    designed = _expected_one_way(call)
    audio = [s for s in call.streams if s.packets > 0]
    if designed:
        if designed == "one-way" and not any(e.direction in ("sendonly", "recvonly") for e in call.sdp[:1]) \
                and call.reinvites:
            yield Finding(code="media.hold", severity="info", title="Call put on hold (re-INVITE)",
                          explanation="A re-INVITE made the media one-way (sendonly/recvonly): this is hold, "
                                      "not a one-way audio fault.",
                          call_id=call.call_id, frames=[e.frame for e in call.sdp if e.direction != "sendrecv"][:4])
        return
    if not audio:
        yield Finding(
            code="media.none", severity="error", title="No audio at all on an answered call",
            explanation="The call was answered and SDP was exchanged, but no RTP was seen in either direction. "
                        "Either the capture does not include the media path (capture filter, or media "
                        "flows through another interface), or both sides send to addresses that do not "
                        "reach the other (NAT without an SBC, firewall blocking the RTP port range).",
            fix="Check the capture covers the RTP ports; check firewall rules for the RTP range and the "
                "c=/m= addresses in both SDPs.",
            call_id=call.call_id, frames=[e.frame for e in call.sdp][:4],
            evidence={"sdp": [f"{e.sender}: {e.address}:{e.port}" for e in call.sdp][:4]})
        return
    directions = {_towards(call, s) for s in audio}
    directions.discard(None)
    if len(directions) == 1:
        only = directions.pop()
        silent = only  # media reaches this side only: it is the one that sends nothing back
        sides = _sides(call)
        heard = sides.get(silent)
        stream = audio[0]
        evidence = {"flowing": f"{stream.src} -> {stream.dst}", "missing_from": silent}
        cause = (f"RTP flows only towards the {only}; the {silent} sent nothing that reached the capture point. ")
        if heard and address_kind(heard[0]) in ("private", "cgnat", "link-local"):
            cause += (f"The {silent}'s SDP advertises {heard[0]}:{heard[1]}, a {address_kind(heard[0])} address: "
                      "the far end sends media to an address it cannot reach (NAT without SDP rewriting), or ")
        cause += (("the " if cause.endswith("or ") else "The ") + silent
                  + "'s media is blocked by a firewall/NAT on its way, or the "
                  + silent + " never started sending (muted, wrong codec, waiting for media to latch).")
        yield Finding(
            code="media.one_way", severity="error",
            title=f"One-way audio: nothing from the {silent} (media only towards the {only})",
            explanation=cause,
            fix="Enable symmetric RTP / latching (comedia) on the far end or SBC, fix NAT traversal "
                "(external media address on the PBX, disable broken SIP ALGs), and open the RTP port range.",
            call_id=call.call_id, frames=[stream.first_frame] + [e.frame for e in call.sdp][:3], evidence=evidence)


@call_rule
def nat_addresses(call: Call) -> Iterable[Finding]:
    """Private or CGNAT addresses in SDP while the signalling came from a public address."""
    for e in call.sdp:
        kind = address_kind(e.address)
        sender_kind = address_kind(_host(e.sender))
        if kind in ("private", "cgnat", "link-local") and sender_kind == "public":
            yield Finding(
                code="nat.private_sdp", severity="warning",
                title=f"SDP advertises {kind} address {e.address} from public {_host(e.sender)}",
                explanation=f"The {e.message} (frame {e.frame}) came from {_host(e.sender)} but its SDP asks for "
                            f"media at {e.address}:{e.port}, a {kind} address that is unreachable from the "
                            "Internet. The device is behind NAT and nothing rewrote the SDP.",
                fix="Set the external/public media address on the device or PBX, use an SBC that rewrites "
                    "SDP, or rely on symmetric RTP (latching) at the far end.",
                call_id=call.call_id, frames=[e.frame], evidence={"sdp_address": e.address, "sender": e.sender})
            return


@call_rule
def rtp_source_mismatch(call: Call) -> Iterable[Finding]:
    """RTP sent from an address/port that side never announced in its SDP (needs latching)."""
    sides = _announced(call)
    for s in call.streams:
        if not s.from_sdp or not s.packets:
            continue
        to = _towards(call, s)
        if to is None:
            continue
        sender = "callee" if to == "caller" else "caller"
        said = sides.get(sender)
        if not said or split(s.src) in said:  # any of its offers/answers (re-INVITE, UPDATE move media)
            continue
        announced = said[-1]
        if announced[1]:
            kind = address_kind(announced[0])
            behind = (f" The SDP address {announced[0]} is a {kind} address: the {sender} is behind NAT and "
                      "nothing rewrote its SDP, so media sent to what it announced will not reach it."
                      if kind in ("private", "cgnat", "link-local") else "")
            yield Finding(
                code="nat.rtp_source", severity="warning",
                title=f"RTP from {s.src}, but the {sender}'s SDP said {announced[0]}:{announced[1]}",
                explanation="Media arrives from a different address or port than the sender announced in its "
                            "SDP. This is what NAT does; it only works if the receiver sends its own RTP back "
                            "to where packets come from (symmetric RTP / latching)." + behind,
                fix="Enable symmetric RTP / comedia / NAT=yes on the receiving side, or fix the sender's "
                    "advertised media address.",
                call_id=call.call_id, frames=[s.first_frame],
                evidence={"rtp_source": s.src, "sdp_said": f"{announced[0]}:{announced[1]}"})


@call_rule
def codec_problems(call: Call) -> Iterable[Finding]:
    offer, answer = _negotiated(call)
    if call.final_status in (488, 415, 606) and offer is not None:
        yield Finding(
            code="codec.no_common", severity="error", title="No common codec: the offer was refused",
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
                code="codec.unexpected_pt", severity="warning",
                title=f"RTP payload type {s.payload_type} ({s.codec}) is not in the answer",
                explanation=f"The stream {s.src} -> {s.dst} uses payload type {s.payload_type}, but the SDP "
                            f"answer allowed only {', '.join(answer.codecs)}. The receiver may drop it.",
                fix="Make the sender use a negotiated payload type (check codec settings and re-INVITE handling).",
                call_id=call.call_id, frames=[s.first_frame])
    codecs = {s.codec for s in call.streams if s.packets and s.codec != "telephone-event"}
    if len(codecs) > 1 and len([s for s in call.streams if s.packets]) >= 2:
        yield Finding(
            code="codec.asymmetric", severity="info", title=f"Different codecs per direction: {', '.join(sorted(codecs))}",
            explanation="The two directions use different codecs. RFC 3264 allows it, but some gateways "
                        "mis-handle it and transcoding may reduce quality.",
            fix="Put the same preferred codec first on both sides.", call_id=call.call_id)
    ptimes = {e.ptime for e in (offer, answer) if e is not None and e.ptime}
    if len(ptimes) > 1:
        yield Finding(
            code="codec.ptime_mismatch", severity="info", title=f"ptime differs between offer and answer: {sorted(ptimes)}",
            explanation="Offer and answer ask for different packetisation times; receivers must cope with "
                        "both, and some jitter buffers do not.",
            fix="Align ptime (20 ms is the common choice for G.711).", call_id=call.call_id)
    dtmf = [s for s in call.streams if s.dtmf]
    has_te = any("telephone-event" in c for e in (offer, answer) if e for c in e.codecs)
    if dtmf and not has_te:
        yield Finding(
            code="codec.dtmf_without_te", severity="warning", title="DTMF events sent without telephone-event in SDP",
            explanation="RFC 4733 DTMF events were sent, but the SDP did not negotiate telephone-event; the far "
                        "end may ignore the digits.",
            fix="Offer telephone-event/8000 in the SDP, or use the DTMF mode the trunk expects.",
            call_id=call.call_id, frames=[dtmf[0].first_frame])


@call_rule
def stream_quality(call: Call) -> Iterable[Finding]:
    for s in call.streams:
        yield from quality_findings(s, call.call_id)


def quality_findings(s: Stream, call_id: str | None) -> Iterable[Finding]:
    if s.packets < 10 or s.codec == "telephone-event" or s.clock_rate >= 90000:
        return  # video (90 kHz clock) spreads frames over packets: audio thresholds do not apply
    t = THRESHOLDS
    where = f"{s.src} -> {s.dst}"
    if s.loss_pct >= t["loss_pct"]:
        yield Finding(
            code="media.loss", severity="error" if s.loss_pct >= t["loss_pct_error"] else "warning",
            title=f"{s.loss_pct:.1f}% packet loss on {where}",
            explanation=f"{s.lost} of {s.expected} RTP packets never arrived (RFC 3550 A.3). Above ~1% "
                        "G.711 audio becomes choppy.",
            fix="Find the lossy hop: compare captures on both sides of the path; check link congestion, "
                "QoS marking (DSCP EF) and Wi-Fi.",
            call_id=call_id, frames=[s.first_frame], evidence={"lost": s.lost, "expected": s.expected})
    if s.max_jitter_ms >= t["jitter_ms"]:
        yield Finding(
            code="media.jitter", severity="warning", title=f"Jitter up to {s.max_jitter_ms:.1f} ms on {where}",
            explanation=f"Interarrival jitter (RFC 3550 6.4.1) reached {s.max_jitter_ms:.1f} ms "
                        f"(mean {s.mean_jitter_ms:.1f} ms); the largest gap between packets was {s.max_delta_ms:.0f} ms. "
                        "Jitter buffers discard late packets, which sounds like loss.",
            fix="Prioritise voice (DSCP EF), avoid congested or wireless links.",
            call_id=call_id, frames=[s.first_frame], evidence={"max_jitter_ms": s.max_jitter_ms})
    if s.timestamp_jumps:
        yield Finding(
            code="media.timestamp_jump", severity="warning",
            title=f"RTP timestamp jumped {s.timestamp_jumps} time(s) on {where}",
            explanation="Between packets with consecutive sequence numbers the RTP timestamp moved more than "
                        "0.5 s away from the time that passed. Receivers' jitter buffers resynchronise or drop "
                        "audio there (clicks, gaps). Usually a media server or SBC splicing two sources "
                        "(announcement then call, transfer) without a new SSRC or marker bit.",
            fix="Have the sender set the marker bit / change SSRC on source changes, or enable RTP "
                "re-timestamping on the SBC.",
            call_id=call_id, frames=[s.first_frame], evidence={"timestamp_jumps": s.timestamp_jumps})
    yield from receiver_reports(s, call_id)
    if s.mos is not None and s.mos < t["mos"]:
        yield Finding(
            code="media.mos", severity="error" if s.mos < t["mos_error"] else "warning",
            title=f"Estimated MOS {s.mos:.2f} on {where}",
            explanation=f"The E-model (ITU-T G.107) rates this stream R={s.r_factor:.0f}, MOS {s.mos:.2f}: "
                        "users will notice poor audio.",
            fix="See the loss and jitter findings for the cause.", call_id=call_id, frames=[s.first_frame])


def receiver_reports(s: Stream, call_id: str | None) -> Iterable[Finding]:
    """What the receiver said in RTCP (RR cumulative lost, XR VoIP Metrics loss and discard) against
    what the capture saw: loss the capture did not see happened after the capture point."""
    t = THRESHOLDS
    where = f"{s.src} -> {s.dst}"
    # Whole-stream figures on both sides: RR cumulative lost over what the capture expected (not the
    # highest per-interval fraction, which a burst the capture also saw can push over the threshold),
    # and XR's loss rate, which counts since the start of reception (RFC 3611 4.7.1).
    rr = s.rtcp_lost * 100.0 / s.expected if s.rtcp_lost is not None and s.expected else None
    reported = max([v for v in (rr, s.rtcp_xr.loss_pct if s.rtcp_xr else None) if v is not None], default=None)
    if reported is not None and reported >= t["loss_pct"] and s.loss_pct < t["loss_pct"]:
        yield Finding(
            code="media.loss_downstream", severity="warning",
            title=f"Receiver reports {reported:.1f}% loss on {where}; the capture saw {s.loss_pct:.1f}%",
            explanation="The receiver's RTCP reports (RFC 3550 6.4 cumulative lost, RFC 3611 VoIP Metrics) count "
                        "packets missing that passed this capture point, so they were lost between here and "
                        "the receiver.",
            fix="Capture again nearer the receiver (its SBC or host) to find the lossy hop past this point; "
                "check that link's congestion, QoS marking (DSCP EF) and firewall rate limits.",
            call_id=call_id, frames=[s.first_frame],
            evidence={"reported_loss_pct": round(reported, 2), "captured_loss_pct": s.loss_pct})
    if s.rtcp_xr is not None and s.rtcp_xr.discard_pct >= t["loss_pct"]:
        x = s.rtcp_xr
        yield Finding(
            code="media.jitter_buffer_discards", severity="warning",
            title=f"Receiver's jitter buffer discarded {x.discard_pct:.1f}% of {where}",
            explanation=f"The receiver's RTCP XR VoIP Metrics (RFC 3611 4.7) report {x.discard_pct:.1f}% of "
                        f"packets discarded as too late or early (jitter buffer {x.jitter_buffer_nominal_ms} ms "
                        f"nominal, {x.jitter_buffer_max_ms} ms max): heard as loss although the network "
                        "delivered them.",
            fix="Reduce jitter on the path (DSCP EF, avoid congested or wireless links) or let the receiver's "
                "adaptive jitter buffer grow larger.",
            call_id=call_id, frames=[s.first_frame],
            evidence={"discard_pct": x.discard_pct, "jitter_buffer_max_ms": x.jitter_buffer_max_ms})


@call_rule
def ssrc_change(call: Call) -> Iterable[Finding]:
    """One direction (same addresses and ports) carrying several SSRCs one after another."""
    by_path: dict[tuple[str, str], list[Stream]] = {}
    for s in call.streams:
        if s.packets and s.codec != "telephone-event":
            by_path.setdefault((s.src, s.dst), []).append(s)
    for (src, dst), streams in by_path.items():
        if len(streams) < 2:
            continue
        streams.sort(key=lambda s: s.start)
        later = streams[1]
        yield Finding(
            code="media.ssrc_change", severity="info",
            title=f"SSRC changed on {src} -> {dst} ({len(streams)} sources)",
            explanation=f"The media from {src} switched from SSRC {streams[0].ssrc:#010x} to {later.ssrc:#010x} "
                        f"at frame {later.first_frame} without new SDP. Usually a B2BUA or media server "
                        "re-anchoring or a transfer; some endpoints and SBCs mishandle it (brief silence, "
                        "jitter buffer reset, dropped latching).",
            fix="If audio breaks at that moment, have the sender keep one SSRC per session or send a re-INVITE.",
            call_id=call.call_id, frames=[s.first_frame for s in streams][:4],
            evidence={"ssrcs": [f"{s.ssrc:#010x}" for s in streams]})


_URI_HOST = re.compile(r"sips?:(?:[^@>;\s]*@)?(\[[^\]]+\]|[^:;>\s]+)", re.IGNORECASE)


def sip_header_nat(msg, hop, call: Call) -> Finding | None:
    """RFC 3581 / RFC 5626 territory: a private, CGNAT or link-local address in the Contact (or, for a
    request, the top Via) of a message that arrived from a public address: the sender is behind NAT and
    did not learn its public address, so in-dialog requests (ACK, BYE) sent to that Contact get lost."""
    if address_kind(hop.src) != "public":
        return None
    seen = []
    contact = msg.get("contact") or ""
    m = _URI_HOST.search(contact)
    if m:
        seen.append(("Contact", m.group(1).strip("[]")))
    if msg.is_request:
        via = (msg.get_all("via") or [""])[0]
        parts = via.split(",")[0].split()
        if len(parts) >= 2:
            seen.append(("Via", parts[1].split(";")[0].rsplit(":", 1)[0].strip("[]")))
    for header, host in seen:
        kind = address_kind(host)
        if kind in ("private", "cgnat", "link-local"):
            return Finding(
                code="nat.private_contact", severity="warning",
                title=f"{header} has {kind} address {host} in a message from public {hop.src}",
                explanation=f"The {msg.label} in frame {hop.frame} came from {hop.src}:{hop.sport} but its {header} "
                            f"says {host}, a {kind} address. The sender is behind NAT and its SIP stack did not "
                            "use its public address; requests sent to that Contact (ACK, re-INVITE, BYE) cannot "
                            "reach it unless the far end uses the source address (rport, RFC 3581; NAT=yes).",
                fix="Enable rport/NAT handling (force_rport, fix_nated_contact, nat=force_rport,comedia) on the "
                    "proxy or PBX, set the external address on the device, or turn off a broken SIP ALG.",
                call_id=call.call_id, frames=[hop.frame],
                evidence={"header": header, "address": host, "source": f"{hop.src}:{hop.sport}"})
    return None


@call_rule
def dropped_after_30s(call: Call) -> Iterable[Finding]:
    """An answered call ended by BYE 28-40 s after answer even though the ACK was seen: the classic
    signature of an ACK or session refresh that never reached the far end, or a NAT binding timing out."""
    if call.kind != "call" or call.answer is None or call.ack_missing or call.duration_s is None:
        return
    if not (28 <= call.duration_s <= 40) or not call.end_reason.startswith("BYE") or call.ended_by is None:
        return
    bye = [s.frame for s in call.ladder if s.method == "BYE" and s.status is None]
    yield Finding(
        code="sip.dropped_30s", severity="warning",
        title=f"Call dropped {call.duration_s:.0f} s after answer (BYE from the {call.ended_by})",
        explanation="Calls that end 30-32 s after answer are usually cut by the far end, not by a person: "
                    "the ACK (or a session-timer refresh) left this side but never reached the far end, so "
                    "after 64*T1 = 32 s it gives up (RFC 3261 13.3.1.4); or a NAT/firewall UDP binding "
                    "expired. Capture on the far side of the NAT to see whether the ACK arrives.",
        fix="Check that the ACK is sent to the 200 OK's Contact/Record-Route and passes NAT; check "
            "Session-Expires handling; raise UDP timeouts on NAT devices or send keep-alives.",
        call_id=call.call_id, frames=bye[:2], evidence={"duration_s": call.duration_s, "ended_by": call.ended_by})


@call_rule
def rtp_to_private(call: Call) -> Iterable[Finding]:
    """RTP sent to a private/CGNAT address (taken from an SDP) that never sends anything back, in a call
    whose signalling crossed public addresses: the media goes to an address the Internet cannot reach."""
    if call.kind != "call" or call.answer is None:
        return
    if not any(address_kind(split(e)[0]) == "public" for e in (call.caller, call.callee) if e):
        return
    sources = {s.src for s in call.streams if s.packets}
    for s in call.streams:
        host = split(s.dst)[0]
        kind = address_kind(host)
        if s.packets and kind in ("private", "cgnat", "link-local") and s.dst not in sources:
            yield Finding(
                code="nat.rtp_to_private", severity="error",
                title=f"RTP sent to {kind} address {s.dst}, which never answers",
                explanation=f"{s.packets} RTP packets went from {s.src} to {s.dst}, the address an SDP gave, but "
                            f"nothing ever came back from it. A {kind} address cannot be reached across the "
                            "Internet: the far end is behind NAT and its SDP was not rewritten, and this side "
                            "does not latch onto where the far end's media really comes from.",
                fix="Turn on symmetric RTP / comedia (latching) on this side or the SBC, or make the far end "
                    "advertise its public media address.",
                call_id=call.call_id, frames=[s.first_frame], evidence={"sent_to": s.dst, "packets": s.packets})
            return
