"""The calling side's asyncio driver: `place_call`, `place_calls` (N concurrent at a rate).

Each call is a UacSession (session.py) on a shared user agent (ua.py) with an RTP session
(rtpsession.py) on its own port pair (media.py). The driver starts them, hands the session's events
to the log and starts the media when the call is answered; the sessions decide the rest. Each call's
own packets feed an Analyzer as they pass (tap.py), and when the call ends its verdict is the one
`analyze` would give its capture, read with what only the agent knows (analysis/placed.py)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..analysis.placed import judge
from ..errors import SiptoolError
from ..analysis.content import ContentOptions
from ..report.model import AgentView, Call, FarEndReport, MediaFigures, Utterance
from ..rtp import codecs, g711
from ..rtp.audio import resample
from ..sip import build
from ..sip.transaction import Timers
from ..sip.locate import Resolution
from . import inputs, stun
from .dns import locate_hop
from .events import LOGGED, Answered, Ended, Note, PromptsDone, Received, Sent
from .failover import Backoff, Failover
from .listener import Listener
from .media import RtpDriver, load_wav, save_wav
from .nat import NatView, hostport, is_loopback, route_source
from .nat import resolve as _resolve
from .options import SECURE, AgentError, CallOptions, Thresholds, _hop, dtmf_start  # noqa: F401 - re-exported
from .register import options_ping, register  # noqa: F401 - re-exported
from .roundtrip import received_signal, session_rtt_ms
from .rtpsession import RtpSession
from .script import Script
from .sdes import Protection
from .speaker import Speaker
from .session import CALLER_ALLOW, UacSession, answer_out_of_dialog
from .clock import stamp
from .tap import AgentTap, Taps
from .transport import TlsOptions, TransportError  # noqa: F401 - TlsOptions re-exported
from .ua import TransactionTimeout, UserAgent

HANG_UP_LIMIT = 4.0  # s: how long a BYE may take on the way out of a failure or Ctrl-C


@dataclass
class CallResult:
    """One placed call. `call` is the Analyzer's Call of it (call.agent: the agent's facts and the
    verdict); the other fields are read from it and from the session, for `call --json`'s envelope."""

    ok: bool = False
    status: int | None = None
    reason: str = ""
    call_id: str = ""  # empty when no INVITE was sent
    error: str = ""
    events: list = field(default_factory=list)  # typed events (agent/events.py), in order
    pdd_ms: float | None = None
    answer_ms: float | None = None
    codec: str | None = None
    ended_by: str | None = None
    duration_s: float = 0.0
    tx: MediaFigures = field(default_factory=MediaFigures)
    rx: MediaFigures = field(default_factory=MediaFigures)
    rtt_ms: float | None = None
    rtcp_rtt_ms: float | None = None
    one_way: str | None = None
    media_gaps: list[list[float]] = field(default_factory=list)  # s since media start
    dtmf_sent: str = ""
    auth: str | None = None  # "401"/"407" when a challenge was answered
    hold_status: int | None = None
    resume_status: int | None = None
    cancel_status: int | None = None
    nat: dict = field(default_factory=dict)  # NatView.to_dict()
    targets: list = field(default_factory=list)  # report.model.TargetTry: each server the INVITE went to
    problems: list[str] = field(default_factory=list)
    findings: list = field(default_factory=list)  # the Analyzer's findings on this call (report.model.Finding)
    call: Call | None = None  # the Analyzer's Call of it, with the agent's facts (call.agent)
    report: object = field(default=None, repr=False)  # the Report of the call's own packets


class Caller:
    """A user agent shared by the calls it places (the endpoint gives each call its own messages).
    On entry it connects (TCP/TLS) and learns how the far end sees it (NAT), before any INVITE.
    `servers`: the first hop located (RFC 3263); each call tries them in an order drawn for it
    (RFC 2782), and a 503's Retry-After holds a server for every call of the run (`backoff`).
    `pcap`: a tap writing every packet of the run to a file."""

    def __init__(self, o: CallOptions, servers: Resolution, pcap: AgentTap | None = None,
                 on_event: Callable | None = None) -> None:
        self.o, self.servers, self.pcap = o, servers, pcap
        self.kind = kind = servers.transport
        self.addr = servers.servers[0].addr()  # the first server: the route source, the NAT probe
        self.backoff = Backoff()
        self.rng = random.Random()
        self.local_ip = o.local_ip or route_source(self.addr[0])
        self.ua = UserAgent(kind, self.local_ip, 0, Timers(o.t1, o.t2), self._tls() if kind in SECURE else None,
                            tap=pcap, on_event=self._event)
        self.ua.unreachable = {tuple(a) for a in o.unreachable}
        self.ua.ep.on_request = answer_out_of_dialog(self.ua.ep, CALLER_ALLOW)
        self.calls: dict[UacSession, OutgoingCall] = {}
        self.on_event = on_event
        self.learned_by = ""  # how the public address was learned (NatView.learned_by)
        self.stun_server: tuple[str, int] | None = None
        self.signal = _signal(o, o.duration or 10.0)  # at 8 kHz
        self._signals: dict[int, np.ndarray] = {8000: self.signal}

    def _tls(self) -> TlsOptions:
        """TLS options; the server name verified is the URI's domain when it has one (RFC 5922 4.1)."""
        tls = self.o.tls()
        if tls.sni is None and self.servers.servers[0].found != "numeric":
            tls.sni = self.servers.host
        return tls

    def failover(self) -> Failover:
        """The servers one call tries, in an order drawn for it (`only`: that one alone)."""
        order = self.servers.order(self.rng)
        return Failover([s for s in order if s.addr() == tuple(self.o.only)] if self.o.only else order, self.backoff)

    async def _connect(self) -> None:
        """TCP/TLS: connect first so Via and Contact carry the real local port: to the first server
        that takes the connection (each call still tries every server and says what happened)."""
        servers = [s for s in self.servers.servers if s.addr() not in self.ua.unreachable]
        for i, server in enumerate(servers):
            try:
                await self.ua.connect(server.addr())
                return
            except TransportError:
                if i == len(servers) - 1 and len(servers) == 1:
                    raise

    async def __aenter__(self) -> "Caller":
        await self.ua.start()
        try:
            if self.kind != "udp":
                await self._connect()
            await self._learn()
        except BaseException:
            await self.ua.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ua.close()

    def _event(self, owner, event) -> None:
        call = self.calls.get(owner)
        if call is not None:
            call.handle(event)

    def signal_at(self, rate: int) -> np.ndarray:
        """The signal every call sends, at a codec's audio rate (resampled once per rate)."""
        if rate not in self._signals:
            self._signals[rate] = resample(self.signal, 8000, rate)
        return self._signals[rate]

    def _say(self, event) -> None:
        if self.on_event:
            self.on_event(event)

    async def _learn(self) -> None:
        """Our public address, before the INVITE: --public-ip, STUN (RFC 5389), or received/rport
        of an OPTIONS (RFC 3581); nothing to learn on loopback or over TCP/TLS."""
        o, ua = self.o, self.ua
        if o.public_ip:
            ua.public = (o.public_ip, ua.local[1])
            self.learned_by = "--public-ip"
        elif o.stun:
            host, port = inputs.host_port("--stun", o.stun, stun.DEFAULT_PORT)
            self.stun_server = await _resolve(host, port)
            mapped = await ua.transport.stun_query(self.stun_server, o.t1)
            self.learned_by = f"STUN {self.stun_server[0]}:{self.stun_server[1]}"
            self._say(Note("", None, text=f"STUN {self.stun_server[0]}:{self.stun_server[1]} sees us at "
                                          f"{mapped[0]}:{mapped[1]}"))
            if mapped != ua.local:
                ua.public = mapped
        elif self.kind == "udp" and not is_loopback(self.addr[0]):
            await self._probe()

    async def _probe(self) -> None:
        """OPTIONS (RFC 3261 11) to the first hop: any response shows in received/rport where our
        requests come from. An unanswered probe is no failure: some trunks ignore OPTIONS."""
        ua, o = self.ua, self.o
        host = ua.local[0]
        req = build.request("OPTIONS", o.uri, via_value=ua.via(),
                            from_value=f"<sip:siptool@{build.host_ref(host)}>;tag={build.new_tag()}",
                            to_value=f"<{o.uri}>", call_id=build.new_call_id(host), cseq=1, contact=ua.contact(),
                            headers=[("accept", "application/sdp")])
        self._say(Sent("", None, method="OPTIONS", note="NAT probe"))
        t = time.monotonic()
        try:
            resp = await ua.request(req, self.addr, timeout=4 * o.t1)
        except TransactionTimeout:
            self._say(Note("", None, text="no answer to the OPTIONS probe: NAT not learned"))
            return
        except TransportError as exc:
            raise AgentError(str(exc)) from None
        self.learned_by = "OPTIONS"
        self._say(Received("", None, method="OPTIONS", status=resp.status, reason=resp.reason,
                           note=f"OPTIONS, {(time.monotonic() - t) * 1000:.1f} ms"))


def _signal(o: CallOptions, seconds: float) -> np.ndarray:
    if o.play:
        return load_wav(o.play)
    if o.signal == "tone":
        return g711.tone(1004.0, min(seconds, 10.0) or 1.0)
    return g711.speech_like(min(max(seconds, 1.0), 10.0))


class OutgoingCall:
    """One call: its session, its media, its own Analyzer (tap), and its result."""

    def __init__(self, caller: Caller, o: CallOptions, on_event: Callable | None) -> None:
        self.caller, self.o, self.on_event = caller, o, on_event
        self.ua = caller.ua
        self.tap = AgentTap(None, o.thresholds, content=ContentOptions() if o.content else None)
        self.script: Script | None = None  # a voice test's prompts and listening (agent/script.py)
        self.done = asyncio.Event()
        self.failure: BaseException | None = None  # raised while starting the media: hang up, then report
        self.session: UacSession | None = None
        self.rtp = RtpSession(cname=f"siptool@{caller.local_ip}", gap_s=o.thresholds.media_gap_s,
                              keep_audio_s=None if o.record else 10.0)
        self.media = RtpDriver(caller.local_ip, self.rtp, tap=Taps(self.tap, caller.pcap), on_events=self._media)
        self.sdp_addr = (self.ua.public or (caller.local_ip, 0))[0]
        self.sdp_port = 0
        self.stun_rtp: tuple[str, int] | None = None
        self.protection: Protection | None = None  # SRTP, once the answer agreed keys

    async def run(self) -> CallResult:
        """The call from INVITE to BYE. Once answered, every way out (a failure, an internal error,
        Ctrl-C) hangs up: an answered call left up is a billed call on a real trunk."""
        res = CallResult()
        try:
            await self.media.open()
            await self._advertise()
            self.session = s = UacSession(self.ua.ep, self.o, self.caller.addr, (self.sdp_addr, self.sdp_port),
                                          self.caller.failover())
            res.call_id = s.call_id  # from here on an INVITE goes out
            self.caller.calls[s] = self
            self.ua.call_taps[s.call_id] = self.tap
            now = stamp()
            s.start(now)
            self.ua.pump(now)
            try:
                await self.done.wait()
            except BaseException:
                await self._leave()
                raise
            if self.failure is not None:  # ours: as the call's error; any other: raised (after the BYE)
                raise self.failure
        except SiptoolError as exc:
            res.error = str(exc)
        finally:
            self.media.close()
            if self.session is not None:
                self.caller.calls.pop(self.session, None)
                self.ua.call_taps.pop(self.session.call_id, None)
        await self._result(res)
        return res

    async def _leave(self) -> None:
        """Ctrl-C or a cancelled task: hang up (or cancel) and wait for that, a few seconds at most."""
        if self.session is None or self.session.ended:
            return
        now = stamp()
        self.session.abort(now, HANG_UP_LIMIT)
        self.ua.pump(now)
        try:
            await asyncio.wait_for(asyncio.shield(self.done.wait()), HANG_UP_LIMIT + 1)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass

    async def _advertise(self) -> None:
        """The address and port our SDP offers: the public address when known; with --stun, the
        RTP socket's own mapping."""
        self.sdp_port = self.media.port
        if self.caller.stun_server is not None:
            self.stun_rtp = await self.media.stun_query(self.caller.stun_server, self.o.t1)
            self.sdp_addr, self.sdp_port = self.stun_rtp

    # --- what the session says --------------------------------------------------------------------------

    def handle(self, event) -> None:
        if isinstance(event, LOGGED):
            if self.on_event:
                self.on_event(event)
        elif isinstance(event, Answered):
            self._start_media(event)
        elif isinstance(event, Ended):
            self.done.set()

    def _start_media(self, ev: Answered) -> None:
        """The call is up: our media to where the answer says. A failure here hangs the call up first."""
        if ev.address is None:
            return
        o = self.o
        try:
            if ev.srtp is not None:  # SRTP (RFC 3711): our key protects what we send, theirs opens what comes
                self.protection = Protection(ev.srtp)
                self.rtp.protect, self.rtp.unprotect = self.protection.protect, self.protection.unprotect
            coder = codecs.coder(ev.codec, ev.fmtp)
            self.media.set_remote(ev.address, ev.port, coder, ev.pt, ev.dtmf_pt, ev.ptime_ms)
            if o.steps:  # a voice test: the script speaks and listens
                self.rtp.listener = Listener(coder.decoder(), coder.clock_rate)
                clips = {text: p.at_rate(coder.rate) for text, p in o.prompts.items()}
                self.script = Script(o.steps, clips, Speaker(coder.rate), self.rtp.listener,
                                     {text: p.label for text, p in o.prompts.items()})
            self.media.start(self.caller.signal_at(coder.rate), o.duration, o.dtmf, dtmf_at=dtmf_start(o.duration),
                             source=self.script)
        except BaseException as exc:  # noqa: BLE001 - said after the BYE (run re-raises what is not ours)
            self.failure = exc
            now = stamp()
            self.session.abort(now, HANG_UP_LIMIT)

    def _media(self, events: list) -> None:
        """The RTP session's live events (the far end's media stopped, back) into the call's log."""
        s = self.session
        if s is None or s.ended:
            return
        for when, ev in events:
            if isinstance(ev, PromptsDone):
                s.hang_up(stamp())
            else:
                s.add(when, type(ev), **{k: getattr(ev, k) for k in ev.__slots__})
        self.ua.pump()

    # --- the result ----------------------------------------------------------------------------------

    def _nat(self) -> NatView:
        ua = self.ua
        contact = ua.public or ua.local
        view = NatView(local=hostport(ua.local), local_rtp=hostport((self.caller.local_ip, self.media.port)) or "",
                       seen=hostport(ua.seen), learned_by=self.caller.learned_by,
                       stun_rtp=hostport(self.stun_rtp), contact=hostport(contact),
                       sdp=hostport((self.sdp_addr, self.sdp_port)), transport=ua.kind)
        view.describe()
        return view

    def _facts(self, s: UacSession | None) -> AgentView:
        """What only the agent knows about the call, for the model (report.model.AgentView)."""
        rtp, o = self.rtp, self.o
        facts = AgentView(role="caller", media=hostport((self.caller.local_ip, self.media.port)) or "",
                          codec=s.codec if s else None, dtmf_asked=o.dtmf, dtmf_sent=rtp.dtmf_sent,
                          ended_by=s.ended_by or "" if s else "", nat=self._nat().to_dict(),
                          notes=list(s.problems) if s else [],
                          targets=list(s.failover.tries) if s is not None and s.failover is not None else [])
        if self.o.steps:  # a voice test: what we said, when (None: no media, nothing said)
            facts.said = [Utterance(x.label, x.start, x.end) for x in self.script.said] if self.script else []
        if self.protection is not None:
            facts.srtp = self.protection.facts()
        if rtp.far_report is not None:
            b = rtp.far_report
            jitter_ms = b.jitter * 1000.0 / rtp.stats.clock_rate  # timestamp units to ms
            facts.far_end = FarEndReport(b.fraction_lost_pct, b.cumulative_lost, jitter_ms,
                                         round(rtp.rtcp_rtt_ms, 2) if rtp.rtcp_rtt_ms is not None else None,
                                         rtp.far_reports)
        if rtp.media_start is not None:
            end = (s.ended_at if s.ended_by == "remote" else None) or rtp.tx_end or rtp.media_start
            facts.media_gaps = [[a, b] for a, b in rtp.gaps(end, o.thresholds.media_gap_s)]
            facts.missing_at_end = rtp.missing_at_end(end)
            facts.media_s = round(end - rtp.media_start, 2)
        return facts

    async def _result(self, res: CallResult) -> None:
        s = self.session
        facts = self._facts(s)
        if self.rtp.media_start is not None:
            if not self.o.steps:  # (a voice agent answers, it does not echo)
                # the correlation takes milliseconds: in a thread, so other calls' packets keep their timing
                loop = asyncio.get_running_loop()
                facts.audio_rtt_ms = await loop.run_in_executor(None, session_rtt_ms, self.rtp)
            if self.o.record:
                save_wav(self.o.record, received_signal(self.rtp.rx_audio, self.rtp.pt, self.rtp.coder)[0],
                         self.rtp.coder.rate if self.rtp.coder else 8000)
        if s is not None:
            res.events = list(s.log)
            res.status, res.reason = s.status, s.reason
            res.error = res.error or s.error
            res.auth, res.codec = s.auth, s.codec
            res.hold_status, res.resume_status, res.cancel_status = s.hold_status, s.resume_status, s.cancel_status
        res.dtmf_sent, res.nat, res.rtt_ms = facts.dtmf_sent, facts.nat, facts.audio_rtt_ms
        res.targets = facts.targets
        res.media_gaps, res.problems = facts.media_gaps, list(facts.notes)
        res.report = self.tap.report() if self.tap.info.packets else None
        call = next((c for c in res.report.calls if c.call_id == res.call_id and c.kind == "call"), None) \
            if res.report is not None and res.call_id else None
        if call is None:
            return
        call.agent = facts
        ok = judge(call, self.o.thresholds)
        res.call, res.findings, res.problems = call, list(call.findings), list(facts.problems)
        res.status, res.reason = call.final_status, call.final_reason
        res.pdd_ms, res.answer_ms = call.pdd_ms, call.answer_ms
        res.duration_s = call.duration_s or 0.0
        res.ended_by = {"caller": "local", "callee": "remote"}.get(call.ended_by or "")
        res.tx, res.rx, res.one_way = facts.tx, facts.rx, facts.one_way
        res.rtcp_rtt_ms = facts.far_end.rtt_ms if facts.far_end is not None else None
        res.ok = ok and not res.error


async def _open(o: CallOptions, on_event: Callable | None) -> Caller:
    """Check the options, locate the first hop (RFC 3263), and make the Caller (not yet entered)."""
    o.check()
    servers = await locate_hop(o.uri, o.proxy, o.transport, o.dns_server)
    return Caller(o, servers, AgentTap(o.pcap, analyse=False) if o.pcap else None, on_event)


async def place_call(o: CallOptions, on_event: Callable | None = None) -> CallResult:
    """Place one call and return its result (never raises for call failures: see result.error;
    raises SiptoolError for bad options, before anything is sent). The call's own packets go to the
    Analyzer as they pass, and its verdict is the Analyzer's."""
    caller = await _open(o, on_event)
    try:
        try:
            await caller.__aenter__()
        except SiptoolError as exc:  # before the INVITE: connection refused, probe unreachable, STUN
            return CallResult(error=str(exc))
        try:
            return await OutgoingCall(caller, o, on_event).run()
        finally:
            await caller.__aexit__(None, None, None)
    finally:
        if caller.pcap is not None:
            caller.pcap.close()


@dataclass
class Summary:
    results: list[CallResult] = field(default_factory=list)
    attempted: int = 0
    answered: int = 0
    succeeded: int = 0
    setup_ratio: float = 0.0
    pdd_ms: dict = field(default_factory=dict)  # p50/p90/p99/max
    mos: dict = field(default_factory=dict)  # min/p10/p50/mean of received MOS
    failures: dict = field(default_factory=dict)  # reason -> count
    served_by: dict = field(default_factory=dict)  # "name address:port" -> calls that server took (RFC 3263)
    failed_over: int = 0  # calls that went to more than one server


def summarise(results: list[CallResult]) -> Summary:
    s = Summary(results=results, attempted=len(results))
    s.answered = sum(1 for r in results if r.status and 200 <= r.status < 300)
    s.succeeded = sum(1 for r in results if r.ok)
    s.setup_ratio = round(s.answered / s.attempted, 4) if s.attempted else 0.0
    pdd = np.array([r.pdd_ms for r in results if r.pdd_ms is not None])
    if pdd.size:
        s.pdd_ms = {k: round(float(np.percentile(pdd, q)), 1) for k, q in (("p50", 50), ("p90", 90), ("p99", 99))}
        s.pdd_ms["max"] = round(float(pdd.max()), 1)
    mos = np.array([r.rx.mos for r in results if r.rx.mos is not None])
    if mos.size:
        s.mos = {"min": round(float(mos.min()), 2), "p10": round(float(np.percentile(mos, 10)), 2),
                 "p50": round(float(np.percentile(mos, 50)), 2), "mean": round(float(mos.mean()), 2)}
    for r in results:
        if not r.ok:
            why = r.error or (f"{r.status} {r.reason}" if r.status and r.status >= 300 else
                              (r.problems[0] if r.problems else "failed"))
            s.failures[why[:80]] = s.failures.get(why[:80], 0) + 1
    for r in results:
        served = [t for t in r.targets if t.outcome == "served"]
        if served:
            key = f"{served[0].name} {hostport((served[0].address, served[0].port))}"
            s.served_by[key] = s.served_by.get(key, 0) + 1
        s.failed_over += len([t for t in r.targets if t.ms is not None]) > 1
    s.served_by = dict(sorted(s.served_by.items()))
    return s


async def hang_up(tasks: list[asyncio.Future]) -> None:
    """Ctrl-C or a failure while calls run: each call is cancelled and hangs up (its own finally)
    before the user agent closes, waiting for them at most as long as a BYE may take."""
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=HANG_UP_LIMIT + 1)


async def place_calls(o: CallOptions, n: int, rate: float, on_result: Callable | None = None,
                      on_event: Callable | None = None) -> Summary:
    """n calls, `rate` new calls per second, all sharing one SIP transport (capacity / CCC test).
    Raises AgentError when the far end cannot be reached before the first INVITE."""
    inputs.number("--calls", n, 1, 100_000)
    inputs.number("--rate", rate, 0, 10_000, above=True, unit="calls/s")
    caller = await _open(o, on_event)
    try:
        async with caller as c:
            loop = asyncio.get_running_loop()
            start = loop.time()
            tasks = []
            try:
                for i in range(n):
                    await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                    t = asyncio.ensure_future(OutgoingCall(c, o, on_event).run())
                    if on_result:
                        t.add_done_callback(lambda f: f.cancelled() or f.exception() or on_result(f.result()))
                    tasks.append(t)
                results = list(await asyncio.gather(*tasks))
            except BaseException:
                await hang_up(tasks)
                raise
    finally:
        if caller.pcap is not None:
            caller.pcap.close()
    return summarise(results)
