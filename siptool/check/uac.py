"""The checks' view of the SIP user agent (siptool/agent): a few coroutines returning Outcomes.

Every operation's own packets are fed through the same Analyzer as `analyze`, so a check's ladder and
findings (missing ACK, one-way audio, ...) come from the one set of rules.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..agent.inputs import host_port, local_address
from ..agent.nat import hostport
from ..analysis.capacity import peak_concurrent
from ..report.model import Finding, Report
from .result import ladder_text


@dataclass
class Outcome:
    """One agent operation: the final status of its main request, figures, and the analysed signalling."""

    status: int | None = None
    reason: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    ladder: str = ""
    error: str = ""  # could not run: transport error, timeout before any response
    skipped: str = ""  # could not judge, why: nothing was tested (the fragments probe without a raw socket)
    problems: list[str] = field(default_factory=list)  # a call's verdict (analysis/placed.py), one line each


def tapped_report(tap) -> Report | None:
    """The Analyzer's Report of the agent's own packets (None when nothing was sent or received)."""
    return tap.report() if tap is not None and tap.info.packets else None


def absorb_report(out: Outcome, report: Report | None, call_id: str | None = None) -> None:
    """Ladder and findings of the call(s) in the report (one call when call_id is given)."""
    if report is None:
        return
    calls = [c for c in report.calls if call_id is None or c.call_id == call_id]
    out.ladder = "\n\n".join(ladder_text(c.ladder) for c in calls if c.ladder)
    seen = set()
    for c in calls:
        for f in c.findings:
            key = (f.code, f.title)
            if key not in seen:
                seen.add(key)
                out.findings.append(f)
        if c.ok_retransmissions:
            out.figures.setdefault("ok_retransmissions", c.ok_retransmissions)


def _received_stream(call, offer_addr: str | None):
    """The stream that came to us: its destination is the address of our first SDP offer."""
    if offer_addr is None:
        return None
    return next((s for s in call.streams if s.dst == offer_addr), None)


def _media_analysis(out: Outcome, report: Report | None, call_id: str) -> None:
    """Figures only the analyser knows: echoed DTMF (RFC 4733 events decoded from what we received),
    whether the answer accepted telephone-event, and the direction the far end answered a hold with."""
    if report is None:
        return
    call = next((c for c in report.calls if c.call_id == call_id), None)
    if call is None:
        return
    offers = [e for e in call.sdp if e.media == "audio" and e.role == "offer" and e.sender == call.caller]
    answers = [e for e in call.sdp if e.media == "audio" and e.role == "answer" and e.sender != call.caller]
    rx = _received_stream(call, f"{offers[0].address}:{offers[0].port}" if offers else None)
    if out.figures.get("dtmf_sent") or (rx is not None and rx.dtmf):
        out.figures["dtmf_rx"] = rx.dtmf if rx is not None else ""
    if answers:
        out.figures["telephone_event"] = any("telephone-event" in c.lower() for c in answers[0].codecs)
    hold = [i for i, e in enumerate(offers) if e.direction in ("sendonly", "inactive")]
    if hold:
        t = offers[hold[0]].time
        later = [a for a in answers if a.time >= t]
        if later:
            out.figures["hold_answer_direction"] = later[0].direction


class Driver:
    """Runs check operations through siptool.agent for one suite target.

      await options(uri) -> Outcome                  figures: rtt_ms
      await register(password, expires) -> Outcome   status = final REGISTER response after the challenge
      await call(uri, codecs=("PCMU",), duration=5.0, dtmf="", hold=False, cancel_after=None,
                 transport=None, voice=None, thresholds=None) -> Outcome
                                                     status = final INVITE response; figures: pdd_ms, codec,
                 packets_tx/rx, mos_tx/rx, loss_pct_tx/rx, jitter_ms_tx/rx, duration_s, ended_by
                 ("local"/"remote"), dtmf_rx, telephone_event, hold_status, resume_status, cancel_status,
                 answered_before_cancel, ok_retransmissions; a voice test (voice: CallOptions' says/script)
                 greeting_ms, response_ms (one per prompt), overlap_ms
      await calls(uri, n, codecs, duration) -> list[Outcome]   n concurrent calls
      await fragments(uri, size, fragment, wait) -> Outcome   figures: control_status, fragmented_status,
                 invite_bytes, fragments, fragment_bytes, sends (agent/fragments.py)

    Each operation feeds its own packets to the Analyzer in memory (agent/tap.py) and fills ladder
    and findings with absorb_report(outcome, its Report): a check's call is judged by the code that
    judges a captured one, and its verdict (`problems`: limits, one-way audio, media gaps, failing
    findings) is the one `siptool call` gives (analysis/placed.py) with the suite's thresholds. With `keep` (--pcap-dir) they are also written there: the runner calls
    `begin(name)` before each check, and its files are NNN-NAME.pcap (NNN the check's place in the run;
    NNN-NAME-2.pcap for its second operation), else NNN-OPERATION.pcap.
    """

    def __init__(self, target, keep: str | None = None, t1: float = 0.5, thresholds=None) -> None:
        from ..analysis.thresholds import DEFAULT
        self.target = target
        self.thresholds = thresholds or DEFAULT  # the suite's: media_gap_s reaches the calls
        self.t1 = t1
        self.keep = keep  # --pcap-dir: each operation's packets are also written there
        if keep:
            os.makedirs(keep, exist_ok=True)
        self.n = 0
        self.check = ""  # the check running now (begin)
        self.ops = 0  # operations of that check so far
        # default: the source address the kernel routes to the target from (a real trunk is not on loopback)
        self.local_ip = local_address("[target] local", host_port("[target] local", target.local, 0, True)[0]) \
            if target.local else None  # None: the source address of the route to the server located

    def _locate(self) -> dict:
        """Where RFC 3263's lookups go, and how long a server has to answer before the next."""
        t = self.target
        return {"dns_server": t.dns_server or None, "target_timeout": t.target_timeout or None}

    async def locate(self, uri: str):
        """The servers located for `uri` (sip/locate.Resolution), as the calls would find them."""
        from ..agent.dns import locate_hop
        t = self.target
        return await locate_hop(uri, t.proxy or None, t.transport or None, t.dns_server or None)

    def close(self) -> None:
        pass  # nothing to clean up: pcaps are written only to --pcap-dir, which is the user's

    # --- helpers ---------------------------------------------------------------------------------

    def begin(self, check: str) -> None:
        """A new check starts: name its pcap files after it."""
        self.n += 1
        self.check = re.sub(r"[^A-Za-z0-9._-]+", "_", check).strip("._") or "check"
        self.ops = 0

    def _tap(self, what: str):
        """The tap of one operation: the Analyzer in memory, and a pcap file with --pcap-dir."""
        from ..agent.tap import AgentTap
        return AgentTap(self._pcap(what) if self.keep else None)

    def _pcap(self, what: str) -> str:
        if not self.check:
            self.n += 1
            return os.path.join(self.keep, f"{self.n:03d}-{what}.pcap")
        self.ops += 1
        suffix = f"-{self.ops}" if self.ops > 1 else ""
        return os.path.join(self.keep, f"{self.n:03d}-{self.check}{suffix}.pcap")

    def _tls(self):
        from ..agent.transport import TlsOptions
        t = self.target
        return TlsOptions(insecure=bool(t.insecure), ca_file=t.ca_file or None)

    def _domain(self) -> str:
        return self.target.domain or self.target.host

    def _from(self) -> str | None:
        t = self.target
        if t.from_uri:
            return t.from_uri
        return f"sip:{t.user}@{self._domain()}" if t.user else None

    def _registrar(self) -> str:
        t = self.target
        if t.registrar:
            return t.registrar
        port = f":{t.port}" if t.port else ""
        scheme = "sips" if t.uri.startswith("sips:") else "sip"
        return f"{scheme}:{t.host}{port}"

    # --- operations ------------------------------------------------------------------------------

    async def options(self, uri: str, to: tuple[str, int] | None = None) -> Outcome:
        from . import ops
        tap = self._tap("options")
        ex = await ops.options(uri, self.target.transport or None, self.local_ip, self.t1, self._tls(), tap,
                               to=to, **self._locate())
        out = Outcome(ex.status, ex.reason, error=ex.error)
        _served(out, ex.targets)
        if ex.rtt_ms is not None:
            out.figures["rtt_ms"] = ex.rtt_ms
        absorb_report(out, tapped_report(tap))
        return out

    async def register(self, password: str | None, expires: int = 300) -> Outcome:
        from . import ops
        t = self.target
        tap = self._tap("register")
        aor = self._from() or f"sip:siptool@{self._domain()}"
        ex = await ops.register(self._registrar(), aor, t.user or None, password, expires, t.transport or None,
                                self.local_ip, self.t1, self._tls(), tap, **self._locate())
        out = Outcome(ex.status, ex.reason, error=ex.error)
        out.figures.update({k: v for k, v in (("rtt_ms", ex.rtt_ms), ("challenge", ex.challenged),
                                               ("algorithm", ex.algorithm), ("expires", ex.expires))
                            if v is not None})
        absorb_report(out, tapped_report(tap))
        return out

    def _options(self, uri: str, codecs=("PCMU",), duration: float | None = 5.0, dtmf: str = "",
                 hold: bool = False, cancel_after: float | None = None, transport: str | None = None,
                 what: str = "call", voice: dict | None = None, thresholds=None, **route):
        """A call's options; `voice`: a voice test's says and script; `route`: only (one server),
        unreachable (servers sent nothing)."""
        from ..agent.caller import CallOptions
        t = self.target
        kind = transport or t.transport or None
        return CallOptions(**(voice or {}), voice=voice is not None,
            uri=uri, transport=kind, from_uri=self._from(), user=t.user or None, password=t.password,
            proxy=t.proxy or None, codecs=tuple(c.upper() for c in codecs if c), duration=duration, dtmf=dtmf,
            local_ip=self.local_ip, t1=self.t1, insecure=bool(t.insecure),
            ca_file=t.ca_file or None, cancel_after=cancel_after, hold=hold, thresholds=thresholds or self.thresholds,
            pcap=self._pcap(what) if self.keep else None,
            no_answer_timeout=max(30.0, (cancel_after or 0) + 5),  # the checks judge the figures themselves
            **self._locate(), **route)

    @staticmethod
    def _outcome(res, cancel_after: float | None = None) -> Outcome:
        out = Outcome(res.status, res.reason, error=res.error, problems=list(res.problems))
        f = out.figures
        for k in ("pdd_ms", "answer_ms", "codec", "duration_s", "ended_by", "rtt_ms"):
            v = getattr(res, k)
            if v is not None:
                f[k] = v
        if res.status is not None and 200 <= res.status < 300:
            for d, m in (("tx", res.tx), ("rx", res.rx)):
                f[f"packets_{d}"] = m.packets
                if m.mos is not None or d == "rx":
                    f[f"mos_{d}"] = m.mos
                    f[f"loss_pct_{d}"] = m.loss_pct
                    f[f"jitter_ms_{d}"] = m.jitter_ms
                    if m.source == "measured":
                        f[f"max_jitter_ms_{d}"] = m.max_jitter_ms
        if res.dtmf_sent:
            f["dtmf_sent"] = res.dtmf_sent
        if res.media_gaps:  # stretches with no RTP from the far end of at least [thresholds] media_gap_s
            f["media_gaps_s"] = [[round(a, 1), round(b, 1)] for a, b in res.media_gaps]
        for k in ("hold_status", "resume_status", "cancel_status"):
            v = getattr(res, k)
            if v is not None:
                f[k] = v
        if cancel_after is not None:
            f["answered_before_cancel"] = res.status is not None and 200 <= res.status < 300
        if res.auth:
            f["challenge"] = res.auth
        voice = res.call.agent.voice if res.call is not None and res.call.agent is not None else None
        if voice is not None:  # a voice test's latencies
            f["greeting_ms"] = voice.greeting_ms
            f["response_ms"] = [p.response_ms for p in voice.prompts]
            f["overlap_ms"] = voice.overlap_ms
        _served(out, res.targets)
        return out

    async def call(self, uri: str, codecs=("PCMU",), duration: float | None = 5.0, dtmf: str = "", hold: bool = False,
                   cancel_after: float | None = None, transport: str | None = None, voice: dict | None = None,
                   thresholds=None, **route) -> Outcome:
        from ..agent.caller import place_call
        from ..report.agent_view import event_text
        res = await place_call(self._options(uri, codecs, duration, dtmf, hold, cancel_after, transport,
                                             voice=voice, thresholds=thresholds, **route))
        out = self._outcome(res, cancel_after)
        absorb_report(out, res.report, res.call_id or None)
        _media_analysis(out, res.report, res.call_id)
        if not out.ladder and res.events:  # nothing written (transport failure): the agent's own steps
            out.ladder = "\n".join(f"+{e.t_ms / 1000:8.3f}s  {event_text(e)}" for e in res.events)
        return out

    async def ramp(self, uri: str, plan, codecs=("PCMU",)):
        """A capacity ramp (agent/ramp.py): report.capacity_model.CapacityRamp."""
        from ..agent.ramp import run_ramp
        return await run_ramp(self._options(uri, codecs, plan.hold, what="ramp"), plan)

    async def calls(self, uri: str, n: int, codecs=("PCMU",), duration: float = 5.0,
                    rate: float = 10.0) -> list[Outcome]:
        from ..agent.caller import place_calls
        summary = await place_calls(self._options(uri, codecs, duration, what=f"calls-{n}"), n, rate)
        outs = []
        for res in summary.results:
            out = self._outcome(res)
            if res.call_id:
                absorb_report(out, res.report, res.call_id)
            outs.append(out)
        self.last_peak = peak_concurrent([r.call for r in summary.results if r.call is not None])
        return outs


    async def fragments(self, uri: str, size: int = 1400, fragment: int = 576, wait: float = 5.0) -> Outcome:
        """A control INVITE, then one of `size` bytes in IP fragments of `fragment` (agent/fragments.py).
        No raw socket: `skipped` says so; bad sizes raise SiptoolError (the check's error)."""
        from ..agent import fragments as frag

        tap = self._tap("fragments")
        try:
            p = await frag.probe(uri, self.local_ip, size, fragment, wait, self.t1, self._from(),
                                 self.target.proxy or None, self.target.dns_server or None, tap)
        except frag.NoRawSocket as exc:
            return Outcome(skipped=str(exc))
        finally:
            tap.close()
        reply = p.fragmented if p.control.status is not None else p.control
        out = Outcome(reply.status, reply.reason, error=reply.error)
        out.figures.update({"control_status": p.control.status, "fragmented_status": p.fragmented.status,
                            "invite_bytes": p.size, "fragments": p.fragments, "fragment_bytes": fragment,
                            "sends": p.sends})
        absorb_report(out, tapped_report(tap))
        return out


def _served(out: Outcome, targets: list) -> None:
    """Which server took the request (RFC 3263), and every server it went to."""
    if not targets:
        return
    out.figures["targets"] = [dataclasses.asdict(t) for t in targets]
    served = next((t for t in targets if t.outcome == "served"), None)
    if served is not None:
        out.figures["served_by"] = f"{served.name} {hostport((served.address, served.port))}"
