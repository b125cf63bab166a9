"""The built-in checks. Each places real traffic through `ctx.ua` (check/uac.py) and judges the Outcome:
final status, figures against the suite thresholds, and the analyser's findings on its own signalling.
"""

from __future__ import annotations

import dataclasses

from ..analysis.placed import FAILS_CALL
from ..report.model import Finding
from ..sip.uri import parse_uri, with_user
from .registry import check
from .result import SKIPPED, CheckResult
from .uac import Outcome

# findings of the analyser that fail a check whatever the figures say: those that fail a call, and
# a request that got no final response
FAILING_FINDINGS = (*FAILS_CALL, "sip.no_response")


def _absorb(result: CheckResult, out: Outcome) -> None:
    result.figures.update(out.figures)
    result.findings += out.findings
    if out.ladder:
        result.ladder = out.ladder if not result.ladder else result.ladder + "\n\n" + out.ladder


def _uri(ctx, spec, base: str | None = None) -> str:
    """A check's request URI: its `uri`, else the target's (or `base`) dialling its `number` if set."""
    if spec.get("uri"):
        return spec.get("uri")
    base = base or ctx.target.uri
    return with_user(base, spec.get("number")) if spec.get("number") else base


def _finding(code: str, severity: str, title: str, explanation: str, fix: str = "", **evidence) -> Finding:
    return Finding(code=code, severity=severity, title=title, explanation=explanation, fix=fix, evidence=evidence)


def _expected(result: CheckResult, code: str) -> None:
    """Drop an analyser finding that is the very outcome the check asked for (487 after CANCEL)."""
    result.findings = [f for f in result.findings if f.code != code]


def _expect_status(result: CheckResult, out: Outcome, wanted: range | tuple, what: str) -> bool:
    if out.error:
        result.fail(f"{what}: {out.error}")
        return False
    if out.status is None or out.status not in wanted:
        got = f"{out.status} {out.reason}".strip() if out.status else "no final response"
        result.fail(f"{what}: got {got}")
        return False
    return True


def _judge_media(ctx, result: CheckResult, out: Outcome, codec: str | None = None) -> None:
    """The negotiated codec, then the call's verdict as `siptool call` gives it (analysis/placed.py, with
    the suite's thresholds): post-dial delay, MOS, loss and jitter each way, media gaps, one-way audio
    and the failing findings of the Analyzer, DTMF not all sent."""
    f = out.figures
    if codec and f.get("codec") and f["codec"].upper() != codec.upper():
        result.fail(f"negotiated {f['codec']} instead of {codec}")
        result.findings.append(_finding("check.codec", "error", f"{codec} was not negotiated",
                                        f"offered only {codec}, the answer chose {f['codec']}"))
    for problem in out.problems:
        result.fail(problem)
    for fd in out.findings:
        if fd.code in FAILING_FINDINGS and fd.title not in out.problems:
            result.fail(fd.title)


@check("options", timeout=15, uri="", number="")
async def options(ctx, spec, result):
    """OPTIONS ping (RFC 3261 11): the target answers with a final response."""
    out = await ctx.ua.options(_uri(ctx, spec))
    _absorb(result, out)
    _expect_status(result, out, range(200, 700), "OPTIONS")
    if out.status in (408, 503) or (out.status or 0) >= 500 and out.status != 501:
        result.fail(f"OPTIONS answered {out.status} {out.reason}")


@check("register", timeout=30, expires=300)
async def register(ctx, spec, result):
    """REGISTER with digest authentication (RFC 3261 10 and 22): 2xx after the challenge."""
    out = await ctx.ua.register(ctx.target.password, expires=int(spec.get("expires")))
    _absorb(result, out)
    if not _expect_status(result, out, range(200, 300), "REGISTER") and out.status in (401, 403, 407):
        if out.figures.get("challenge"):
            result.fail(f"credentials for user {ctx.target.user!r} were refused (wrong user or password?)")
        else:
            result.fail("challenged but no credentials to answer with (set user and password_env in [target])")


@check("wrong_password", timeout=30)
async def wrong_password(ctx, spec, result):
    """A wrong password is refused (401/403), never accepted."""
    right = ctx.target.password or ""
    out = await ctx.ua.register(right + "-not-the-password", expires=60)
    _absorb(result, out)
    if out.error:
        result.fail(f"REGISTER: {out.error}")
    elif out.status is not None and 200 <= out.status < 300:
        result.fail(f"a wrong password was accepted ({out.status} {out.reason})")
        result.findings.append(_finding(
            "check.auth_open", "critical", "the registrar accepts any password",
            "REGISTER with a wrong password got a 2xx: anyone can register as this user",
            "enable digest authentication for this user on the registrar"))
    elif out.status not in (401, 403, 407):
        result.fail(f"expected 401/403, got {out.status} {out.reason}".strip())
    else:  # refused, as it must be: the analyser's "failed: 401" is the expected outcome here
        _expected(result, f"sip.failed.{out.status}")


@check("call", timeout=60, codec="PCMU", duration=5.0, uri="", number="")
async def call(ctx, spec, result):
    """A call with one codec offered and media both ways, judged against the thresholds."""
    codec = spec.get("codec")
    out = await ctx.ua.call(_uri(ctx, spec), codecs=(codec,), duration=float(spec.get("duration")))
    _absorb(result, out)
    if _expect_status(result, out, range(200, 300), "INVITE"):
        _judge_media(ctx, result, out, codec)


@check("dtmf", timeout=60, digits="123#", codec="PCMU", duration=4.0, uri="", number="", echo=True)
async def dtmf(ctx, spec, result):
    """RFC 4733 telephone-events sent; with an echo target (echo = true) they must come back intact."""
    digits = str(spec.get("digits"))
    out = await ctx.ua.call(_uri(ctx, spec), codecs=(spec.get("codec"),),
                            duration=float(spec.get("duration")), dtmf=digits)
    _absorb(result, out)
    if not _expect_status(result, out, range(200, 300), "INVITE"):
        return
    _judge_media(ctx, result, out)  # the verdict says when digits were not all sent, and why
    if spec.get("echo") and out.figures.get("dtmf_sent", "") == digits and out.figures.get("dtmf_rx", "") != digits:
        result.fail(f"sent DTMF {digits!r}, got back {out.figures.get('dtmf_rx', '')!r}")


@check("hold", timeout=60, codec="PCMU", duration=6.0, uri="", number="")
async def hold(ctx, spec, result):
    """Hold and resume by re-INVITE (RFC 3264 8.4: a=sendonly then a=sendrecv), both answered 2xx."""
    out = await ctx.ua.call(_uri(ctx, spec), codecs=(spec.get("codec"),),
                            duration=float(spec.get("duration")), hold=True)
    _absorb(result, out)
    if not _expect_status(result, out, range(200, 300), "INVITE"):
        return
    for step in ("hold", "resume"):
        status = out.figures.get(f"{step}_status")
        if status is None or not 200 <= status < 300:
            result.fail(f"re-INVITE to {step} got {status or 'no answer'}")
    answered = out.figures.get("hold_answer_direction")
    if answered is not None and answered not in ("recvonly", "inactive"):
        result.fail(f"hold (a=sendonly) was answered a={answered}, not recvonly/inactive (RFC 3264 8.4)")
    _judge_media(ctx, result, out)


@check("cancel", timeout=40, after=0.5, uri="", number="")
async def cancel(ctx, spec, result):
    """CANCEL before answer (RFC 3261 9): 200 to the CANCEL and 487 to the INVITE."""
    out = await ctx.ua.call(_uri(ctx, spec), cancel_after=float(spec.get("after")),
                            duration=0.5)  # answered anyway: hang up soon
    _absorb(result, out)
    if out.error:
        result.fail(out.error)
    elif out.figures.get("answered_before_cancel"):
        result.skip("the target answered before the CANCEL: nothing tested; set number (or uri) to one "
                    "that rings (siptool echo: \"ring\")")
    elif out.status != 487:
        result.fail(f"INVITE ended with {out.status} {out.reason} instead of 487".strip())
    else:
        _expected(result, "sip.failed.487")
    if out.figures.get("cancel_status") not in (200, None) and not result.status == SKIPPED:
        result.fail(f"CANCEL answered {out.figures['cancel_status']}")


@check("long_call", timeout=120, duration=35.0, codec="PCMU", uri="", number="")
async def long_call(ctx, spec, result):
    """A call longer than 32 s (64*T1): catches a missing ACK (the far end gives up at Timer H) and
    session-timer trouble (RFC 4028)."""
    duration = float(spec.get("duration"))
    out = await ctx.ua.call(_uri(ctx, spec), codecs=(spec.get("codec"),), duration=duration)
    _absorb(result, out)
    if not _expect_status(result, out, range(200, 300), "INVITE"):
        return
    if out.figures.get("ended_by") == "remote":
        lasted = out.figures.get("duration_s", 0.0)
        result.fail(f"the far end hung up after {lasted:.1f} s of {duration:.0f} s")
        result.findings.append(_finding(
            "check.dropped", "error", f"call dropped by the far end after {lasted:.1f} s",
            "a BYE arrived before the planned end; near 32 s this means the far end never got our ACK "
            "(RFC 3261 Timer H) or a session refresh failed (RFC 4028)",
            "check that the ACK reaches the far end (Record-Route, Contact, NAT)"))
    again = out.figures.get("ok_retransmissions", 0)
    if again > 0:
        result.fail(f"the 200 OK was sent {again} more times: our ACK is not arriving")
        if not any(f.code == "sip.ack_missing" for f in result.findings):
            result.findings.append(_finding(
                "check.ack_missing", "error", f"our ACK never reached the far end (200 OK re-sent {again} times)",
                "we sent an ACK for the 200 OK (and again for each retransmission) but the far end kept "
                "re-sending the 200 OK: the ACK is lost on the way. The far end gives up after 64*T1 = 32 s "
                "and clears the call (RFC 3261 13.3.1.4)",
                "check that proxies relay the ACK (Record-Route / loose routing) and that the ACK goes to the "
                "200 OK's Contact through NAT", ok_retransmissions=again))
    _judge_media(ctx, result, out)


@check("tls", timeout=60, codec="PCMU", duration=3.0, uri="", number="")
async def tls(ctx, spec, result):
    """The same call over TLS (RFC 3261 26.2; sips: URI, port 5061 by default)."""
    uri = _uri(ctx, spec, ctx.target.tls_uri or _tls_uri(ctx.target.uri))
    out = await ctx.ua.call(uri, codecs=(spec.get("codec"),), duration=float(spec.get("duration")), transport="tls")
    _absorb(result, out)
    if _expect_status(result, out, range(200, 300), "INVITE over TLS"):
        _judge_media(ctx, result, out)


@check("concurrent", timeout=120, calls=10, duration=5.0, codec="PCMU", uri="", number="", rate=10.0)
async def concurrent(ctx, spec, result):
    """N calls at once (capacity): every call answered, media within thresholds on each."""
    n = int(spec.get("calls"))
    duration = float(spec.get("duration"))
    outs = await ctx.ua.calls(_uri(ctx, spec), n, codecs=(spec.get("codec"),),
                              duration=duration, rate=float(spec.get("rate")))
    ok = 0
    worst_mos = None
    for i, out in enumerate(outs):
        sub = CheckResult(f"{spec.name}#{i + 1}", "call")
        _absorb(sub, out)
        if _expect_status(sub, out, range(200, 300), "INVITE"):
            _judge_media(ctx, sub, out)
        if sub.passed:
            ok += 1
        else:
            result.fail(f"call {i + 1}: {sub.message}")
            result.findings += sub.findings
            if not result.ladder:
                result.ladder = sub.ladder
        for d in ("tx", "rx"):
            m = out.figures.get(f"mos_{d}")
            if m is not None:
                worst_mos = m if worst_mos is None else min(worst_mos, m)
    result.figures.update({"calls": n, "answered_ok": ok, "worst_mos": worst_mos})
    peak = getattr(ctx.ua, "last_peak", None)
    if peak is not None:
        result.figures["peak_concurrent"] = peak
        if ok == n and peak < n and n / float(spec.get("rate")) < duration:
            result.fail(f"only {peak} of {n} calls were up at the same time")
    pdds = sorted(o.figures["pdd_ms"] for o in outs if o.figures.get("pdd_ms") is not None)
    if pdds:
        result.figures["pdd_ms_max"] = pdds[-1]


@check("voice_agent", timeout=120, say=[], script="", codec="PCMU", max_greeting_ms=2000.0, max_response_ms=800.0,
       uri="", number="")
async def voice_agent(ctx, spec, result):
    """A voice agent's latency: its greeting, then each prompt said and its answer timed."""
    says, script = spec.get("say"), spec.get("script")
    if not isinstance(says, list) or not all(isinstance(x, str) and x for x in says) or bool(says) == bool(script):
        result.fail("give say = [\"prompt.wav\", \"words\", ...] or script = \"file\", not both")
        return
    limits = dataclasses.replace(ctx.thresholds, greeting_ms=float(spec.get("max_greeting_ms")),
                                 response_ms=float(spec.get("max_response_ms")))
    out = await ctx.ua.call(_uri(ctx, spec), codecs=(spec.get("codec"),), duration=None,
                            voice={"says": tuple(says), "script": script or None}, thresholds=limits)
    _absorb(result, out)
    if _expect_status(result, out, range(200, 300), "INVITE"):
        _judge_media(ctx, result, out, spec.get("codec"))
@check("failover", timeout=240, calls=3, within=5.0, probe="options", duration=2.0, codec="PCMU", uri="",
       number="")
async def failover(ctx, spec, result):
    """Server location and failover (RFC 3263): every server located for the target answers (probe =
    "options" or "call"), and with the primary servers unreachable (the lowest SRV priority: this
    agent sends them nothing) each call is answered by a backup within `within` s of its INVITE."""
    uri = _uri(ctx, spec)
    located = await ctx.ua.locate(uri)
    servers = located.servers
    result.figures["located"] = located.steps
    answered = {}
    for s in servers:  # each server on its own
        where = f"{s.name} {_hostport(s.address, s.port)}"
        if spec.get("probe") == "call":
            out = await ctx.ua.call(uri, codecs=(spec.get("codec"),), duration=float(spec.get("duration")),
                                    only=s.addr())
        else:
            out = await ctx.ua.options(uri, to=s.addr())
        answered[where] = out.error or f"{out.status} {out.reason}"
        if out.error or out.status is None or out.status >= 500 or (spec.get("probe") == "call" and out.problems):
            result.fail(f"{where} does not serve: {out.error or f'{out.status} {out.reason}'}"
                        + (f" ({out.problems[0]})" if out.problems and not out.error else ""))
    result.figures["servers"] = answered
    primary = min(s.priority for s in servers)
    down = [s for s in servers if s.priority == primary]
    if len(down) == len(servers):
        result.fail(f"no backup: every server located has SRV priority {primary} (or the target has no SRV "
                    "records); a failover needs a server of a higher priority number")
        return
    within = float(spec.get("within"))
    served, times = [], []
    for i in range(int(spec.get("calls"))):
        out = await ctx.ua.call(uri, codecs=(spec.get("codec"),), duration=float(spec.get("duration")),
                                unreachable=tuple(s.addr() for s in down))
        by = out.figures.get("served_by", "no server")
        served.append(by)
        took = out.figures.get("answer_ms")
        times.append(took)
        if not _expect_status(result, out, range(200, 300), f"call {i + 1}"):
            continue
        if took is not None and took > within * 1000:
            result.fail(f"call {i + 1} was answered by {by} after {took / 1000:.1f} s, more than {within:g} s")
        _expected(out, "sip.no_response")  # the primaries' INVITEs went unanswered: that was the test
        for fd in out.findings:
            if fd.code in FAILING_FINDINGS:
                result.fail(f"call {i + 1}: {fd.title}")
        result.findings += out.findings
        result.ladder = result.ladder or out.ladder
    result.figures.update({"unreachable": [f"{s.name} {_hostport(s.address, s.port)}" for s in down],
                           "served_by": served, "answer_ms": times})
    if result.passed:
        slowest = max(t for t in times if t is not None) / 1000
        result.message = (f"{len(servers)} servers answer; with {len(down)} primary server(s) unreachable, "
                          f"{len(served)} calls went to {', '.join(sorted(set(served)))} within {slowest:.1f} s")


@check("capacity", timeout=900, start=5, step=5, max=20, hold=5.0, cps=10.0, expect=0, codec="PCMU", uri="",
       number="")
async def capacity(ctx, spec, result):
    """A capacity ramp: levels of concurrent calls with media (start, step, max), each held `hold` s;
    passes when the highest level that passed (the CCC) reaches `expect` (default: max)."""
    from ..agent.ramp import RampPlan

    plan = RampPlan(int(spec.get("start")), int(spec.get("step")), int(spec.get("max")),
                    float(spec.get("hold")), float(spec.get("cps")))
    expect = int(spec.get("expect")) or plan.levels()[-1]
    ramp = await ctx.ua.ramp(_uri(ctx, spec), plan, codecs=(spec.get("codec"),))
    result.figures.update({"ccc": ramp.ccc, "expect": expect, "levels": [
        {"calls": lv.calls, "verdict": lv.verdict, "setup_ratio": lv.setup_ratio, "pdd_p50_ms": lv.pdd_p50_ms,
         "pdd_p95_ms": lv.pdd_p95_ms, "mos_p5": lv.mos_p5, "loss_pct": lv.loss_pct, "one_way": lv.one_way,
         "rejected": lv.rejected, "late_ms": max(lv.lateness.start_max_ms, lv.lateness.loop_lag_max_ms)}
        for lv in ramp.levels]})
    stop = next((lv for lv in ramp.levels if lv.verdict != "pass"), None)
    if stop is not None:
        result.ladder = f"at {stop.calls} calls:\n" + "\n".join(f"  - {w}" for w in stop.why)
    if ramp.ccc is None or ramp.ccc < expect:
        result.fail(f"{ramp.answer}; expected {expect}")
    else:
        result.message = ramp.answer


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@check("fragments", timeout=40, size=1400, fragment=576, wait=5.0, uri="", number="")
async def fragments(ctx, spec, result):
    """An INVITE in IP fragments is answered: the path passes fragments (SIP over UDP above the MTU)."""
    if ctx.target.transport in ("tcp", "tls"):
        result.skip(f"the target is reached over {ctx.target.transport.upper()}: IP fragments of SIP over UDP "
                    "do not apply")
        return
    size, fragment, wait = int(spec.get("size")), int(spec.get("fragment")), float(spec.get("wait"))
    out = await ctx.ua.fragments(_uri(ctx, spec), size, fragment, wait)
    _absorb(result, out)
    f = out.figures
    if out.skipped:
        result.skip(out.skipped)
    elif f.get("control_status") is None:
        why = f": {out.error}" if out.error else ""
        result.skip(f"the control INVITE (whole) got no response within {wait:g} s{why}: the target answers "
                    "no INVITE from here, so fragments cannot be judged")
    elif f.get("fragmented_status") is None:
        what = (f"a {f['invite_bytes']}-byte INVITE in {f['fragments']} IP fragments of at most {fragment} bytes "
                f"got no response in {wait:g} s ({f['sends']} sends), the same call whole got "
                f"{f['control_status']}")
        result.fail(f"the path drops IP fragments: {what}")
        result.findings = [fd for fd in result.findings if fd.code != "sip.no_response"]
        result.findings.append(_finding(
            "check.fragments_dropped", "error", "the path to the target drops IP fragments",
            f"{what}. A SIP message over UDP larger than the path MTU travels in fragments; a firewall, NAT or "
            "SBC on the way that drops them makes every call with a large INVITE (many codecs, ICE candidates, "
            "long Via and Record-Route chains) fail in silence after timer B (RFC 3261 17.1.1.2)",
            "let the firewall or NAT reassemble or pass fragments, or use TCP or TLS to this target: RFC 3261 "
            "18.1.1 asks for a congestion-controlled transport above MTU - 200 bytes",
            control_status=f["control_status"], invite_bytes=f["invite_bytes"], fragments=f["fragments"]))
    else:
        result.message = (f"a {f['invite_bytes']}-byte INVITE in {f['fragments']} fragments of at most {fragment} "
                          f"bytes got {f['fragmented_status']}")
        # the probe's own doing: the large INVITE over UDP, the calls cut short after their first response
        result.findings = [fd for fd in result.findings
                           if fd.code != "sip.udp_too_large" and not fd.code.startswith("sip.failed.")]


def _tls_uri(uri: str) -> str:
    """The target with sips: and port 5061 (RFC 3261 19.1.2), its user and parameters kept."""
    u = parse_uri(uri)
    params = {k: v for k, v in u.params.items() if k != "transport"}
    return str(dataclasses.replace(u, scheme="sips", port=5061, params=params))


# Every built-in check, in the order `check --init` writes them.
CHECKS = {c.name: c for c in (options, register, wrong_password, call, dtmf, hold, cancel, long_call, tls,
                              concurrent, failover, capacity, voice_agent, fragments)}
