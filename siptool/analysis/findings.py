"""Signalling findings: one small function per diagnosis, each returning Finding objects with evidence
and a fix. Rules take a finished Call and the judging Context; judge.py lists them."""

from __future__ import annotations

from typing import Iterable

from ..report.model import Call, CaptureSummary, Finding, Severity
from ..sip.dialogs import ACK_DUE_S
from .context import Context

# --- capture-level -------------------------------------------------------------------------------

def malformed(frame: int, reason: str, pkt, raw: bytes) -> Finding:
    return Finding(
        code="sip.malformed", severity=Severity.WARNING, title=f"Malformed SIP message in frame {frame}",
        explanation=f"Frame {frame} looks like SIP but cannot be parsed: {reason}. It was left out of "
                    "the call analysis; the rest of the capture was analysed.",
        fix="Check the sending device's SIP stack or any SIP ALG rewriting packets on the path.",
        frames=[frame],
        evidence={"src": f"{pkt.src}:{pkt.sport}", "dst": f"{pkt.dst}:{pkt.dport}",
                  "first_bytes": raw[:80].decode("utf-8", "replace")})


def message_problems(frame: int, msg, call_id: str) -> Finding:
    problems = "; ".join(msg.problems)
    return Finding(
        code="sip.nonconformant", severity=Severity.WARNING, title=f"{msg.label} in frame {frame} breaks RFC 3261",
        explanation=f"The message was analysed but is not well-formed: {problems}.",
        fix="Some carriers and SBCs reject such messages; fix the sender's SIP stack.",
        call_id=call_id, frames=[frame], evidence={"problems": list(msg.problems)})


def kernel_drops(packets: int, drops: int, interface: str) -> Finding | None:
    """Live capture: the kernel dropped packets because they were read too slowly (PACKET_STATISTICS,
    pcap_stats): calls and media figures are incomplete."""
    if not drops:
        return None
    pct = 100.0 * drops / max(packets, 1)
    return Finding(
        code="capture.kernel_drops", severity=Severity.ERROR,
        title=f"the kernel dropped {drops} of {packets} packets ({pct:.2f}%)",
        explanation="siptool read the capture ring more slowly than packets arrived, so calls and "
                    "media figures are incomplete.",
        fix="narrow the capture with -f (e.g. SIP and the RTP port range only), give it a larger "
            "--buffer, or capture with tcpdump -w and run siptool analyze on the file",
        evidence={"kernel_packets": packets, "kernel_drops": drops, "interface": interface})


def unanalysed(count: int, failed: list[tuple[int, str]]) -> Finding:
    """A live run: packets the analysis raised on (a bug in siptool), left out so that the run goes on;
    `failed` holds the first (frame, error)."""
    frame, error = failed[0]
    return Finding(
        code="capture.unanalysed", severity=Severity.ERROR,
        title=f"{count} packet(s) could not be analysed (first: #{frame}, {error})",
        explanation=f"siptool failed on {count} packet(s) and left them out so that the live run went on: "
                    "the calls they belong to may be incomplete. This is a bug in siptool, not in the traffic.",
        fix="Please report it with the error and, if you can, a capture of those packets (siptool capture -w).",
        frames=[f for f, _ in failed], evidence={"packets": count, "errors": sorted({e for _, e in failed})})


def interface_warning(text: str) -> Finding:
    """Live capture: something about the interface limits what is captured (it was down...)."""
    return Finding(code="capture.interface", severity=Severity.WARNING, title=text, explanation=text)


def files_overlap(point: str, overlaps: list[tuple[str, str, float]]) -> Finding:
    """Files read as one rotated capture (drivers/many.py) overlap in time: (first, second, seconds) each."""
    first, second, seconds = overlaps[0]
    return Finding(
        code="capture.files_overlap", severity=Severity.WARNING,
        title=f"Files read as one rotated capture overlap in time ({point})",
        explanation=f"{second} starts {seconds:.3f} s before {first} ends ({len(overlaps)} such pair(s)). "
                    "Files of one rotation follow each other; these look like captures taken side by side "
                    "(two probes, two interfaces), whose calls are then mixed into one timeline.",
        fix="Analyse them as independent captures: siptool analyze --independent FILE...",
        evidence={"pairs": [{"first": a, "second": b, "overlap_s": round(s, 6)} for a, b, s in overlaps[:10]]})


def capture_findings(summary: CaptureSummary, incomplete: list[list[int]], tcp_gaps: int) -> list[Finding]:
    out: list[Finding] = []
    if summary.truncated:
        out.append(Finding(
            code="capture.truncated", severity=Severity.WARNING, title="The capture file is cut short",
            explanation=f"Reading stopped early: {summary.truncated}. Everything before it was analysed.",
            fix="Stop captures cleanly (tcpdump -w flushes on SIGINT) or copy the file again.",
            evidence={"packets_read": summary.packets}))
    for frames in incomplete:
        out.append(Finding(
            code="ip.fragments_incomplete", severity=Severity.WARNING,
            title=f"IP fragments never completed (frames {_frames(frames)})",
            explanation="A datagram was fragmented and not every fragment was captured, so the SIP "
                        "message it carried is missing from the analysis. Fragmented SIP over UDP is "
                        "often dropped by firewalls and NAT devices.",
            fix="Use SIP over TCP for large messages (RFC 3261 18.1.1), or trim headers/SDP so "
                "messages fit the path MTU.",
            frames=list(frames)))
    if tcp_gaps:
        out.append(Finding(
            code="tcp.gap", severity=Severity.INFO, title="TCP data missing from the capture",
            explanation=f"{tcp_gaps} hole(s) in TCP streams never filled (packets not captured); SIP "
                        "messages in them may be missing.",
            fix="Capture with a larger buffer (tcpdump -B) or closer to the endpoint."))
    return out


def framing_damage(key: tuple, damage: list[tuple[int, str, int]], count: int, transport: str = "TCP") -> Finding:
    """What the SIP framer of one TCP (or decrypted TLS) direction could not frame (sip/framing.py)."""
    src, sport, dst, dport = key
    frames = sorted({f for f, _, _ in damage if f})
    what = "; ".join(dict.fromkeys(w for _, w, _ in damage[:5]))
    return Finding(
        code="sip.framing", severity=Severity.WARNING,
        title=f"SIP over {transport} from {src}:{sport} could not be framed ({count} time(s))",
        explanation=f"On the stream {src}:{sport} -> {dst}:{dport}: {what}. Framing (RFC 3261 18.3: messages are "
                    "cut at their Content-Length) resumed at the next SIP start line; messages cut short were "
                    "still analysed and are flagged as non-conformant.",
        fix="Fix the sender's Content-Length or stream handling; on a device that rewrites SIP (ALG, SBC), check "
            "it updates Content-Length when it changes a body.",
        frames=frames[:12], evidence={"stream": f"{src}:{sport} -> {dst}:{dport}", "events": count,
                                      "bytes": sum(n for _, _, n in damage)})


def _ms(ms: float) -> str:
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def _frames(frames: list[int]) -> str:
    return ", ".join(map(str, frames[:6])) + (" ..." if len(frames) > 6 else "")


# --- call-level rules ---------------------------------------------------------------------------

# RFC 3261 21 and the usual trunk meaning: (severity, explanation, fix)
FAILURE_CODES: dict[int, tuple[Severity, str, str]] = {
    400: (Severity.ERROR, "the far end could not parse the request", "Capture the INVITE and compare it with the carrier's spec; look for bad headers or SDP."),
    401: (Severity.ERROR, "authentication was required and not satisfied", "Check the trunk username/password and realm; make sure the INVITE is re-sent with credentials."),
    403: (Severity.ERROR, "the far end refused the call (forbidden): wrong credentials, IP not allowed, or number not permitted", "Check the trunk's IP allow-list, credentials, caller ID format and that the number is enabled."),
    404: (Severity.ERROR, "the called number or user is not known to the far end", "Check the dialled number format (E.164, +, prefixes) and the trunk's routing."),
    405: (Severity.ERROR, "the method is not allowed by the far end", "Check which methods the far end lists in its Allow header."),
    407: (Severity.ERROR, "the proxy required authentication and it was not satisfied", "Check proxy credentials; the INVITE must be re-sent with Proxy-Authorization."),
    408: (Severity.ERROR, "no final answer in time (Request Timeout)", "Check the far end is reachable and that responses are not blocked on the way back (firewall/NAT)."),
    410: (Severity.ERROR, "the number is gone", "Remove or update the number."),
    413: (Severity.ERROR, "the request was too large", "Trim headers or SDP, or use TCP."),
    415: (Severity.ERROR, "the far end does not support the message body type", "Check Content-Type (application/sdp) and codecs offered."),
    420: (Severity.ERROR, "a required SIP extension is not supported", "Remove the option tag from Require, or enable the extension on the far end."),
    422: (Severity.ERROR, "session timer interval too small", "Raise Session-Expires / Min-SE to the far end's minimum."),
    480: (Severity.WARNING, "the callee is temporarily unavailable (not registered, DND, or no answer)", "Check the callee is registered and reachable; retry later."),
    481: (Severity.WARNING, "the far end has no matching dialog or transaction", "Often a BYE/re-INVITE after the far end already cleared the call; check timers and NAT keep-alives."),
    482: (Severity.ERROR, "a routing loop was detected", "Check proxy routing rules."),
    483: (Severity.ERROR, "too many hops", "Check for routing loops or raise Max-Forwards."),
    484: (Severity.ERROR, "the dialled number is incomplete", "Check number length and dial plan."),
    486: (Severity.INFO, "the callee was busy", "Nothing wrong with the trunk: the callee was busy."),
    487: (Severity.INFO, "the call was cancelled before answer", "Normal when the caller hangs up while ringing."),
    488: (Severity.ERROR, "no acceptable media: the far end accepted none of the offered codecs or SDP", "Offer a codec the far end supports (usually PCMU/PCMA) and check SDP for unsupported attributes (SRTP, video)."),
    491: (Severity.WARNING, "request pending: both sides sent re-INVITEs at once", "Normal if retried; persistent glare suggests a timing problem."),
    500: (Severity.ERROR, "the far end hit an internal error", "Raise a ticket with the carrier with this Call-ID and time."),
    501: (Severity.ERROR, "the method is not implemented by the far end", "Avoid that method or ask the carrier."),
    502: (Severity.ERROR, "a gateway received a bad response from the next hop", "Raise a ticket with the carrier with this Call-ID and time."),
    503: (Severity.ERROR, "the far end is overloaded or unavailable", "Retry later (honour Retry-After), check trunk capacity and failover routes."),
    504: (Severity.ERROR, "a gateway timed out waiting for the next hop", "Raise a ticket with the carrier; check its upstream routing."),
    513: (Severity.ERROR, "the message was too large", "Use TCP or trim the message."),
    600: (Severity.INFO, "the callee is busy everywhere", "Nothing wrong with the trunk."),
    603: (Severity.WARNING, "the callee (or a screening service) declined the call", "Check caller ID reputation/format if it happens on many calls."),
    604: (Severity.ERROR, "the number does not exist anywhere", "Check the dialled number."),
    606: (Severity.ERROR, "the callee cannot accept the session (media or other)", "Check codecs and SDP."),
}


def failed_call(call: Call, ctx: Context) -> Iterable[Finding]:
    code = call.final_status
    if code is None or code < 300:
        return
    severity, why, fix = FAILURE_CODES.get(code, (
        Severity.ERROR if code < 600 else Severity.WARNING,
        f"the request failed with {code} ({'client error' if code < 500 else 'server error' if code < 600 else 'global failure'})",
        "Look up the code in RFC 3261 section 21 and the carrier's documentation."))
    what = "call" if call.kind == "call" else call.method or call.kind
    steps = [s for s in call.ladder if s.status == code]
    evidence = {"status": code, "reason": call.final_reason, "from": call.from_uri, "to": call.to_uri}
    explanation = f"The {what} from {call.from_user or call.from_uri} to {call.to_user or call.to_uri} " \
                  f"ended with {code} {call.final_reason}: {why}."
    retry = next((s.summary for s in steps if s.summary.startswith("Retry-After")), "")
    if retry:
        explanation += f" The far end asked to wait ({retry})."
        evidence["retry_after"] = retry.partition(": ")[2]
    if call.auth_challenges and code in (401, 403, 407):
        explanation += f" The request was challenged {call.auth_challenges} time(s)."
    yield Finding(code=f"sip.failed.{code}", severity=severity, title=f"{what.capitalize()} failed: {code} {call.final_reason}",
                  explanation=explanation, fix=fix, call_id=call.call_id,
                  frames=[s.frame for s in steps][:5], evidence=evidence)


def missing_ack(call: Call, ctx: Context) -> Iterable[Finding]:
    """A 2xx never acknowledged, judged by what the capture covers (RFC 3261 13.3.1.4, 17.2.1): an
    error when the UAS re-sent the 2xx or cleared the call; a warning when the capture ran past the
    time the ACK was due but shows neither the ACK nor a re-sent 2xx (the ACK may take another path);
    an info note when the capture ended before the ACK was due."""
    if call.kind != "call" or call.answer is None:
        return
    ok = [s for s in call.ladder if s.status and 200 <= s.status < 300 and s.method == "INVITE"]
    if not ok:
        return
    if not call.ack_missing:
        answered = {s.cseq for s in ok}
        acked = any(s.method == "ACK" and s.status is None and s.cseq in answered for s in call.ladder)
        if not acked and ctx.capture_end is not None:
            after = (ctx.capture_end - call.answer) * 1000.0
            yield Finding(
                code="capture.ended_before_ack", severity=Severity.INFO,
                title=f"Capture ended {_ms(after)} after the 200 OK, before its ACK was due",
                explanation="The call was answered just before the capture stopped. Whether the ACK arrived "
                            "cannot be told from this capture, so no missing-ACK verdict is given.",
                fix="Capture a few seconds longer to see the ACK (or the 200 OK being re-sent).",
                call_id=call.call_id, frames=[ok[0].frame], evidence={"ms_after_answer": round(after, 1)})
        return
    dropped = call.end is not None and call.duration_s is not None and 28 <= call.duration_s <= 40
    frames = [s.frame for s in ok][:10]
    if call.ok_retransmissions or dropped:
        yield Finding(
            code="sip.ack_missing", severity=Severity.ERROR,
            title="200 OK never acknowledged (no ACK)" + (" - call torn down after ~32 s" if dropped else ""),
            explanation=f"The callee answered (200 OK sent {len(ok)} time(s)) but no ACK for it was seen. The "
                        "callee keeps re-sending 200 OK and clears the call after 64*T1 = 32 s (RFC 3261 "
                        "13.3.1.4). Usually the ACK is routed to an address the callee never sees: a private "
                        "Contact or Record-Route behind NAT, or a firewall dropping it.",
            fix="Make the Contact in the 200 OK reachable (fix NAT / SIP ALG, set the external address on "
                "the PBX) and check Record-Route handling on proxies.",
            call_id=call.call_id, frames=frames,
            evidence={"ok_sent": len(ok), "ok_retransmissions": call.ok_retransmissions})
        return
    yield Finding(
        code="sip.ack_missing", severity=Severity.WARNING, title="No ACK for the 200 OK in this capture",
        explanation=f"The 200 OK (frame {ok[0].frame}) was not followed by an ACK, although the capture ran on "
                    f"past the {ACK_DUE_S * 1000:.0f} ms in which one was due. It was not re-sent either, so "
                    "the callee probably got its ACK by a path this capture point does not see (another "
                    "interface, a proxy elsewhere); if calls drop after ~32 s, the ACK is lost.",
        fix="Capture where both directions of the signalling pass, or on the callee's side, to see the ACK.",
        call_id=call.call_id, frames=frames, evidence={"ok_sent": len(ok), "ok_retransmissions": 0})


RESPONSE_DUE_S = 0.5  # T1: an INVITE with no response is re-sent after this long (RFC 3261 17.1.1.2)


def no_final_response(call: Call, ctx: Context) -> Iterable[Finding]:
    if call.kind != "call" or call.final_status is not None or call.state == "cancelled":
        return
    provisional = [s for s in call.ladder if s.status and s.status < 200]
    invites = [s for s in call.ladder if s.method == "INVITE" and s.status is None]
    if not provisional:
        if not invites:
            return
        waited = None if ctx.capture_end is None else ctx.capture_end - invites[0].time
        if len(invites) < 2 and waited is not None and waited < RESPONSE_DUE_S:
            yield Finding(
                code="capture.ended_before_response", severity=Severity.INFO,
                title=f"Capture ended {_ms(waited * 1000)} after the INVITE, before a response was due",
                explanation="The INVITE was the last thing this call did in the capture; too little time "
                            "followed it to say whether the far end answers.",
                fix="Capture longer.", call_id=call.call_id, frames=[invites[0].frame])
            return
        yield Finding(
            code="sip.no_response", severity=Severity.ERROR, title="INVITE got no response at all",
            explanation=f"The INVITE was sent {len(invites)} time(s) and nothing came back in the capture. "
                        "The far end is unreachable, not listening on that port/transport, or its responses "
                        "are blocked on the way back.",
            fix="Check the trunk address, port and transport; check firewalls both ways and that "
                "responses go to the Via address (rport, RFC 3581).",
            call_id=call.call_id, frames=[s.frame for s in invites][:10],
            evidence={"invites_sent": len(invites), "dst": call.callee})
    else:
        yield Finding(
            code="sip.no_final_response", severity=Severity.INFO, title="Call still ringing when the capture ended",
            explanation=f"The last response was {provisional[-1].label}; no final response or CANCEL was captured.",
            fix="Capture longer to see how the call ended.", call_id=call.call_id,
            frames=[provisional[-1].frame])


def dropped_after_30s(call: Call, ctx: Context) -> Iterable[Finding]:
    """An answered call ended by BYE 28-40 s after answer even though the ACK was seen: the classic
    signature of an ACK or session refresh that never reached the far end, or a NAT binding timing out."""
    if call.kind != "call" or call.answer is None or call.ack_missing or call.duration_s is None:
        return
    if not (28 <= call.duration_s <= 40) or not call.end_reason.startswith("BYE") or call.ended_by is None:
        return
    bye = [s.frame for s in call.ladder if s.method == "BYE" and s.status is None]
    yield Finding(
        code="sip.dropped_30s", severity=Severity.WARNING,
        title=f"Call dropped {call.duration_s:.0f} s after answer (BYE from the {call.ended_by})",
        explanation="Calls that end 30-32 s after answer are usually cut by the far end, not by a person: "
                    "the ACK (or a session-timer refresh) left this side but never reached the far end, so "
                    "after 64*T1 = 32 s it gives up (RFC 3261 13.3.1.4); or a NAT/firewall UDP binding "
                    "expired. Capture on the far side of the NAT to see whether the ACK arrives.",
        fix="Check that the ACK is sent to the 200 OK's Contact/Record-Route and passes NAT; check "
            "Session-Expires handling; raise UDP timeouts on NAT devices or send keep-alives.",
        call_id=call.call_id, frames=bye[:2], evidence={"duration_s": call.duration_s, "ended_by": call.ended_by})


def media_not_captured(report) -> None:
    """No RTP/RTCP anywhere in the capture: the capture filter kept signalling only. One info finding
    says so instead of a "no audio" error on every answered call (media cannot be judged)."""
    if report.streams or any(c.streams for c in report.calls):
        return
    silent = [c for c in report.calls if any(f.code == "media.none" for f in c.findings)]
    if not silent:
        return
    for call in silent:
        call.findings = [f for f in call.findings if f.code != "media.none"]
    report.findings.append(Finding(
        code="capture.no_media", severity=Severity.INFO, title="No RTP in the capture: media not judged",
        explanation=f"{len(silent)} answered call(s) negotiated media, but the capture holds no RTP or RTCP at "
                    "all, so it was most likely taken with a signalling-only filter (e.g. port 5060) or on an "
                    "interface the media does not cross. Audio problems cannot be confirmed or ruled out.",
        fix="Capture without a port filter (or add the RTP range, e.g. 'udp portrange 10000-20000') on the "
            "interface that carries the media.",
        evidence={"calls": [c.call_id for c in silent][:10]}))


UDP_LIMIT = 1300  # RFC 3261 18.1.1: larger requests (path MTU unknown) MUST use a congestion-controlled transport


def udp_too_large(call: Call, sent: list[tuple[int, int, list[int] | None]]) -> Finding:
    """Requests of more than 1300 bytes sent over UDP (frame, size, fragment frames or None)."""
    frame, size, pieces = max(sent, key=lambda x: x[1])
    step = next((s for s in call.ladder if s.frame == frame), None)
    what = step.label if step is not None else "request"
    fragmented = [x for x in sent if x[2]]
    unanswered = call.kind == "call" and call.final_status is None and not any(
        s.status for s in call.ladder)
    frames = sorted({f for x in sent for f in (x[2] or [x[0]])})
    title = f"{what} of {size:,} bytes sent over UDP" + (" (IP-fragmented)" if fragmented else "")
    explanation = (f"RFC 3261 18.1.1: a request larger than {UDP_LIMIT} bytes (or within 200 bytes of the path "
                   f"MTU) must go over a congestion-controlled transport such as TCP. {len(sent)} request(s) of "
                   f"this call were larger and went over UDP.")
    if fragmented:
        explanation += (" They were split into IP fragments, which many firewalls, NATs and carrier SBCs drop: "
                        "the far end then never sees the request.")
    if unanswered:
        explanation += " This call got no response at all, as happens when the fragments are dropped."
    return Finding(
        code="sip.udp_too_large", severity=Severity.ERROR if unanswered else Severity.WARNING, title=title,
        explanation=explanation,
        fix="Send SIP to this trunk over TCP (or TLS), or make the messages smaller: offer fewer codecs, drop "
            "SDP attributes the trunk does not need, trim long header lists (Allow, Supported, Via/Record-Route).",
        call_id=call.call_id, frames=frames[:12],
        evidence={"bytes": size, "requests": len(sent), "fragmented": len(fragmented)})


CLOCK_BACK_S = 1.0  # the capture's clock going back more than this between SIP messages is a fault
CLOCK_LEAP_S = 7 * 86400.0  # ... and so is a forward jump of more than a week between two messages


def clock_jumps(jumps: list[tuple[int, int, float]], withheld: list[int]) -> Finding:
    """jumps: (frame, previous SIP frame, seconds moved); withheld: numbers of calls whose times span one."""
    frame, before, moved = jumps[0]
    way = "back" if moved < 0 else "forward"
    explanation = (f"Between SIP messages the capture's clock moves {way} by {_span(abs(moved))} (frame {before} to "
                   f"frame {frame}){f', and {len(jumps) - 1} more time(s)' if len(jumps) > 1 else ''}. Times across "
                   "such a jump are not real")
    if withheld:
        explanation += (f", so the post-dial delay, answer time and duration of call(s) "
                        f"{', '.join(map(str, withheld[:10]))}{' ...' if len(withheld) > 10 else ''} are not shown")
    return Finding(
        code="capture.clock_jump", severity=Severity.WARNING, title=f"The capture's clock jumps {way} by {_span(abs(moved))}",
        explanation=explanation + ".",
        fix="Check the clock of the capture host or HEP agent (NTP), and merge capture files by time (mergecap) "
            "rather than appending them.",
        frames=[j[0] for j in jumps[:12]],
        evidence={"jumps": len(jumps), "first_jump_s": round(moved, 3), "calls_withheld": withheld[:100]})


def _span(seconds: float) -> str:
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("hours", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"
