"""The calling side: `place_call`, `place_calls` (N concurrent at a rate), `options_ping`, `register`.

One call: INVITE (digest answer to 401/407, optional CANCEL), ACK, G.711 media with DTMF, optional
hold/resume re-INVITEs, BYE (or the far end's BYE), then figures: post-dial delay, answer time, codec,
per-direction loss/jitter/MOS, round-trip audio delay when the far end echoes, one-way audio."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from ..errors import SiptoolError
from ..rtp import g711
from ..status import ExitStatus
from ..sip import build
from . import inputs, sdp, stun
from ..sip.auth import Credentials, DigestAnswer, DigestRefused
from ..sip.dialog import Dialog
from .media import MediaFigures, RtpSession, load_wav
from .nat import NatView, hostport, is_loopback, route_source
from .nat import resolve as _resolve
from .options import AgentError, CallOptions, Thresholds, _hop, dtmf_start  # noqa: F401 - re-exported
from .register import options_ping, register  # noqa: F401 - re-exported
from ..sip.transaction import Timers
from .transport import TlsOptions, TransportError
from .ua import TransactionTimeout, UserAgent


@dataclass
class CallResult:
    ok: bool = False
    status: int | None = None
    reason: str = ""
    call_id: str = ""  # empty when no INVITE was sent
    error: str = ""
    events: list[tuple[float, str]] = field(default_factory=list)
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
    media_gaps: list[tuple[float, float]] = field(default_factory=list)  # s since media start
    dtmf_sent: str = ""
    auth: str | None = None  # "401"/"407" when a challenge was answered
    hold_status: int | None = None
    resume_status: int | None = None
    cancel_status: int | None = None
    nat: dict = field(default_factory=dict)  # NatView.to_dict()
    problems: list[str] = field(default_factory=list)
    findings: list = field(default_factory=list)  # the Analyzer's findings on this call (report.model.Finding)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["events"] = [{"t_ms": t, "event": e} for t, e in self.events]
        return d


class Caller:
    """A user agent shared by the calls it places (dispatches in-dialog requests by Call-ID). On
    entry it connects (TCP/TLS) and learns how the far end sees it (NAT), before any INVITE."""

    def __init__(self, o: CallOptions, kind: str, addr: tuple[str, int], tap=None,
                 on_event: Callable | None = None) -> None:
        self.o, self.kind, self.addr, self.tap = o, kind, addr, tap
        self.local_ip = o.local_ip or route_source(addr[0])
        self.ua = UserAgent(kind, self.local_ip, 0, Timers(o.t1, o.t2), o.tls() if kind == "tls" else None,
                            self._handle, tap)
        self.calls: dict[str, "OutgoingCall"] = {}
        self.on_event = on_event
        self.learned_by = ""  # how the public address was learned (NatView.learned_by)
        self.stun_server: tuple[str, int] | None = None
        self.signal = _signal(o, o.duration or 10.0)

    async def __aenter__(self) -> "Caller":
        await self.ua.start()
        try:
            if self.kind != "udp":  # connect first so Via and Contact carry the real local port
                await self.ua.transport.send(b"", self.addr)
            await self._learn()
        except BaseException:
            await self.ua.close()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ua.close()

    def _note(self, text: str) -> None:
        if self.on_event:
            self.on_event("", None, text)

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
            self._note(f"STUN {self.stun_server[0]}:{self.stun_server[1]} sees us at {mapped[0]}:{mapped[1]}")
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
                             to_value=f"<{o.uri}>",
                             call_id=build.new_call_id(host), cseq=1, contact=ua.contact(),
                             headers=[("accept", "application/sdp")])
        self._note("-> OPTIONS (NAT probe)")
        t = time.monotonic()
        try:
            resp = await ua.request(req, self.addr, timeout=4 * o.t1)
        except TransactionTimeout:
            self._note("no answer to the OPTIONS probe: NAT not learned")
            return
        except TransportError as exc:
            raise AgentError(str(exc)) from None
        self.learned_by = "OPTIONS"
        self._note(f"<- {resp.status} {resp.reason} (OPTIONS, {(time.monotonic() - t) * 1000:.1f} ms)")

    def _handle(self, ua: UserAgent, txn, msg, addr) -> None:
        if txn is None or msg.method == "ACK":
            return
        call = self.calls.get(msg.call_id or "")
        if msg.method == "OPTIONS":
            ua.respond(txn, build.response(msg, 200, headers=[("allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")]))
        elif call is None:
            ua.respond(txn, build.response(msg, 481))
        else:
            call.on_request(txn, msg)


def _signal(o: CallOptions, seconds: float) -> np.ndarray:
    if o.play:
        return load_wav(o.play)
    if o.signal == "tone":
        return g711.tone(1004.0, min(seconds, 10.0) or 1.0)
    return g711.speech_like(min(max(seconds, 1.0), 10.0))


HANG_UP_LIMIT = 4.0  # s: how long a BYE may take on the way out of a failure or Ctrl-C


class OutgoingCall:
    def __init__(self, caller: Caller, o: CallOptions, on_event: Callable | None) -> None:
        self.caller, self.o, self.addr, self.on_event = caller, o, caller.addr, on_event
        self.ua = caller.ua
        self.res = CallResult()
        self._cancel_sent = False
        self.t0 = 0.0
        self.remote_bye = asyncio.Event()
        self.bye_at: float | None = None  # wall-clock time of the far end's BYE
        self.dialog: Dialog | None = None
        self.media: RtpSession | None = None
        self.sdp_addr = (caller.ua.public or (caller.local_ip, 0))[0]
        self.sdp_port = 0
        self.stun_rtp: tuple[str, int] | None = None
        self.hung_up = False
        self.media_end = 0.0  # s from the start of our media to the end of the far end's

    def event(self, text: str) -> float:
        """Log one step; returns its time (ms since the INVITE), the one figure shown everywhere."""
        t = round((time.monotonic() - self.t0) * 1000, 1)
        self.res.events.append((t, text))
        if self.on_event:
            self.on_event(self.res.call_id, t, text)
        return t

    def on_request(self, txn, msg) -> None:
        self.event(f"<- {msg.method}")
        if msg.method == "BYE":
            self.ua.respond(txn, build.response(msg, 200))
            self.event("-> 200 OK")
            self.res.ended_by = self.res.ended_by or "remote"
            self.bye_at = self.bye_at or time.time()
            self.hung_up = True
            self.remote_bye.set()
        elif msg.method == "INVITE" and self.dialog is not None:  # re-INVITE from the far end
            body = sdp.build(self.sdp_addr, self.sdp_port, [sdp.STATIC[self.res.codec or "PCMU"]])
            self.ua.respond(txn, build.response(msg, 200, to_tag=self.dialog.local_tag, body=body,
                                                 headers=[("contact", self.ua.contact())]))
        else:
            self.ua.respond(txn, build.response(msg, 405, headers=[("allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")]))

    def _route_addr(self) -> tuple[str, int]:
        if self.o.proxy or self.dialog is None:
            return self.addr
        nh = inputs.sip_uri(self.dialog.next_hop())
        return nh.hostport()

    async def run(self) -> CallResult:
        """The call from INVITE to BYE. Once answered, every way out (a failure, an internal
        error, Ctrl-C) hangs up: an answered call left up is a billed call on a real trunk."""
        res = self.res
        try:
            self.media = await RtpSession(self.caller.local_ip, tap=self.caller.tap).open()
            await self._advertise()
            res.call_id = build.new_call_id(self.ua.local[0])  # from here on an INVITE goes out
            self.caller.calls[res.call_id] = self
            await self._invite()
            if self.dialog is not None:
                try:
                    await self._ack()
                    if not self._cancel_sent:  # answered although we cancelled: hang up at once
                        await self._talk()
                except BaseException:
                    await self._hang_up(HANG_UP_LIMIT)
                    raise
                await self._hang_up()
                await self._figures()
        except SiptoolError as exc:
            res.error = res.error or str(exc)
        finally:
            if self.media is not None:
                self.media.close()
            self.caller.calls.pop(res.call_id, None)
            res.nat = self._nat().to_dict()
        self._judge()
        return res

    async def _advertise(self) -> None:
        """The address and port our SDP offers: the public address when known; with --stun, the
        RTP socket's own mapping."""
        self.sdp_port = self.media.port
        if self.caller.stun_server is not None:
            self.stun_rtp = await self.media.stun_query(self.caller.stun_server, self.o.t1)
            self.sdp_addr, self.sdp_port = self.stun_rtp

    def _nat(self) -> NatView:
        ua = self.ua
        contact = ua.public or ua.local
        rtp = (self.caller.local_ip, self.media.port) if self.media is not None else None
        view = NatView(local=hostport(ua.local), local_rtp=hostport(rtp) or "",
                       seen=hostport(ua.seen), learned_by=self.caller.learned_by,
                       stun_rtp=hostport(self.stun_rtp), contact=hostport(contact),
                       sdp=hostport((self.sdp_addr, self.sdp_port)), transport=ua.kind)
        view.describe()
        return view

    async def _invite(self) -> None:
        o, ua, res = self.o, self.ua, self.res
        pts = [sdp.STATIC[c.upper()] for c in o.codecs]
        self.offer = sdp.build(self.sdp_addr, self.sdp_port, pts)
        host, _ = ua.local
        from_uri = o.from_uri or f"sip:{o.user or 'siptool'}@{build.host_ref(host)}"
        from_value = f"<{from_uri}>;tag={build.new_tag()}"
        routes = [f"<{inputs.sip_uri(o.proxy).scheme}:{o.proxy.split(':', 1)[1]};lr>"] if o.proxy else []
        creds = Credentials(o.user or inputs.sip_uri(from_uri).user, o.password) if o.password is not None else None
        cseq = 1
        self.t0 = time.monotonic()
        digest = DigestAnswer(creds, "INVITE", o.uri) if creds is not None else None
        auth_header: tuple[str, str] | None = None
        while True:
            invite = build.request("INVITE", o.uri, via_value=ua.via(), from_value=from_value, to_value=f"<{o.uri}>",
                                    call_id=res.call_id, cseq=cseq, contact=ua.contact(), routes=routes,
                                    headers=[auth_header] if auth_header else [], body=self.offer)
            self.invite = invite
            self.event("-> INVITE")
            after = o.cancel_after if o.cancel_after is not None else o.no_answer_timeout
            cancel_task = asyncio.ensure_future(self._cancel_later(invite, after))
            try:
                resp = await ua.request(invite, self.addr, self._provisional)
            except TransactionTimeout as exc:
                res.status, res.reason = None, ""
                self.event("timeout (timer B)")
                raise AgentError(str(exc)) from None
            except TransportError as exc:
                self.event(str(exc).split(" (")[0])
                raise AgentError(str(exc)) from None
            finally:
                if self._cancel_sent:  # the 487 may overtake the 200 to the CANCEL: let that one finish
                    await asyncio.wait([cancel_task], timeout=2.0)
                cancel_task.cancel()
            t = self.event(f"<- {resp.status} {resp.reason}")
            res.status, res.reason = resp.status, resp.reason
            if resp.status in (401, 407) and digest is not None:
                try:
                    auth_header = digest.answer(resp, self.offer)
                except DigestRefused as why:
                    if why.kind == "unsupported":
                        raise AgentError(f"{resp.status} {resp.reason}: no supported digest challenge "
                                         "(MD5/SHA-256)") from None
                    raise AgentError(f"authentication failed: {resp.status} {resp.reason} again after sending "
                                     f"credentials for user {creds.user!r} (wrong user or password?)") from None
                res.auth = digest.challenged
                cseq += 1
                continue
            if resp.status in (401, 407):
                raise AgentError(f"{resp.status} {resp.reason}: the far end wants credentials "
                                 "(give --user and --password-env VAR or --password-file FILE)")
            break
        if res.pdd_ms is None:
            res.pdd_ms = t
        if 200 <= resp.status < 300:
            res.answer_ms = t
            self.dialog = Dialog.uac(invite, resp)
            self.answer = resp

    async def _ack(self) -> None:
        ack = self.dialog.ack(self.invite.cseq[0], self.ua.via())
        await self.ua.request(ack, self._route_addr())
        self.event("-> ACK")

    def _provisional(self, resp) -> None:
        t = self.event(f"<- {resp.status} {resp.reason}")
        if resp.status > 100 and self.res.pdd_ms is None:  # post-dial delay: INVITE to first 18x (RFC 6076 4.3)
            self.res.pdd_ms = t

    async def _cancel_later(self, invite, after: float) -> None:
        await asyncio.sleep(after)
        cancel = build.request("CANCEL", invite.uri, via_value=invite.get_all("via")[0],
                                from_value=invite.get("from"), to_value=invite.get("to"), call_id=invite.call_id,
                                cseq=invite.cseq[0], routes=invite.get_all("route"))
        self.event("-> CANCEL")
        self._cancel_sent = True
        try:
            resp = await self.ua.request(cancel, self.addr)
            self.res.cancel_status = resp.status
            self.event(f"<- {resp.status} {resp.reason} (CANCEL)")
        except SiptoolError as exc:
            self.event(f"CANCEL failed: {exc}")

    async def _reinvite(self, direction: str, version: int) -> int | None:
        body = sdp.build(self.sdp_addr, self.sdp_port, [self.media.pt], direction=direction, version=version)
        req = self.dialog.request("INVITE", self.ua.via(), contact=self.ua.contact(), body=body)
        self.event(f"-> INVITE ({direction})")
        resp = await self.ua.request(req, self._route_addr())
        self.event(f"<- {resp.status} {resp.reason}")
        if 200 <= resp.status < 300:
            await self.ua.request(self.dialog.ack(req.cseq[0], self.ua.via()), self._route_addr())
        return resp.status

    async def _talk(self) -> None:
        o, res, media = self.o, self.res, self.media
        answer = sdp.parse(self.answer.body)
        if answer is None or answer.port == 0:
            res.problems.append("the 200 OK has no usable audio SDP answer")
            return
        offered = {sdp.STATIC[c.upper()] for c in o.codecs}
        pt = next((p for p in answer.payload_types if p in offered), None)
        if pt is None:
            res.problems.append(f"the answer chose no offered codec (m= payloads {answer.payload_types})")
            return
        res.codec = answer.codec_name(pt).upper()
        media.set_remote(answer.connection, answer.port, res.codec, pt, sdp.dtmf_pt(answer), answer.ptime)
        self.event(f"media {res.codec} to {answer.connection}:{answer.port}")
        duration = o.duration
        started = time.monotonic()
        media.start(self.caller.signal, duration, o.dtmf, dtmf_at=dtmf_start(duration))
        watch = asyncio.ensure_future(self._watch_media())
        try:
            if o.hold and duration:  # hold at 1/3, resume at 2/3 of the call
                await asyncio.sleep(duration / 3)
                res.hold_status = await self._reinvite("sendonly", 2)
                await asyncio.sleep(duration / 3)
                res.resume_status = await self._reinvite("sendrecv", 3)
            sending = asyncio.ensure_future(media.sending_done() if duration is not None else asyncio.sleep(1e9))
            bye = asyncio.ensure_future(self.remote_bye.wait())
            try:
                await asyncio.wait([sending, bye], return_when=asyncio.FIRST_COMPLETED)
                if not self.remote_bye.is_set():
                    await asyncio.sleep(0.25)  # let the last echoed packets come back
            finally:
                for t in (sending, bye):
                    t.cancel()
        finally:
            watch.cancel()
        res.duration_s = round(time.monotonic() - started, 2)
        res.dtmf_sent = media.dtmf_sent

    async def _watch_media(self) -> None:
        """While the call runs: say when the far end's RTP has stopped for the media gap threshold
        (one-way audio, a frozen stream) and when it comes back."""
        media, gap = self.media, self.o.thresholds.media_gap_s
        quiet = False
        while True:
            await asyncio.sleep(0.1)
            last = media.rx_last or media.media_start or time.time()
            silent = time.time() - last
            if not quiet and silent >= gap:
                quiet = True
                self.event(f"no RTP from the far end for {gap:g} s" +
                           (" after the answer: one-way audio" if media.rx_last is None else ""))
            elif quiet and silent < gap:
                quiet = False
                self.event("RTP from the far end again")

    def _end_of_media(self) -> float:
        """When we stopped expecting the far end's media: its BYE, else the end of our sending."""
        m = self.media
        return self.bye_at or m.tx_end or m.media_start or time.time()

    async def _figures(self) -> None:
        res, media = self.res, self.media
        if media.media_start is None:
            return
        end = self._end_of_media()
        # The correlation takes milliseconds: in a thread, so other calls' packets keep their timing.
        res.rtt_ms = await asyncio.get_running_loop().run_in_executor(None, media.audio_rtt_ms)
        res.rtcp_rtt_ms = round(media.rtcp_rtt_ms, 2) if media.rtcp_rtt_ms is not None else None
        delay = res.rtt_ms / 2 if res.rtt_ms else (res.rtcp_rtt_ms / 2 if res.rtcp_rtt_ms else None)
        res.rx = media.rx_figures(delay, end)
        res.tx = media.tx_figures(delay)
        res.media_gaps = media.gaps(end, self.o.thresholds.media_gap_s)
        self.media_end = round(end - media.media_start, 2)
        if self.o.record:
            media.record(self.o.record)

    async def _hang_up(self, limit: float | None = None) -> None:
        """BYE, once, unless the far end has already hung up."""
        if self.hung_up or self.dialog is None:
            return
        self.hung_up = True
        self.res.ended_by = self.res.ended_by or "local"
        req = self.dialog.request("BYE", self.ua.via())
        self.event("-> BYE")
        try:
            resp = await self.ua.request(req, self._route_addr(), timeout=limit)
            self.event(f"<- {resp.status} {resp.reason} (BYE)")
        except SiptoolError as exc:
            self.event("BYE got no answer")
            self.res.problems.append(f"BYE got no answer: {exc}")

    def _judge(self) -> None:
        res, th, o = self.res, self.o.thresholds, self.o
        if res.error or res.status is None or not 200 <= res.status < 300:
            res.ok = False
            return
        if res.codec is None:  # no media negotiated: the problem is already said
            res.ok = False
            return
        if res.tx.packets == 0:
            res.one_way = "no audio sent"
        elif res.rx.packets == 0:
            res.one_way = "no audio received (far end sent no RTP, or it did not reach us: check NAT/SDP address)"
        if res.one_way:
            res.problems.append(f"one-way audio: {res.one_way}")
        else:
            for a, b in res.media_gaps:
                where = " (until the end of the call)" if b >= self.media_end else ""
                res.problems.append(f"no media from the far end for {b - a:.1f} s at {a:.1f}-{b:.1f} s{where}")
        if res.pdd_ms is not None and res.pdd_ms > th.pdd_ms:
            res.problems.append(f"post-dial delay {res.pdd_ms:.0f} ms > {th.pdd_ms:.0f} ms")
        for name, f in (("received", res.rx), ("sent", res.tx)):  # the limits as analyze applies them
            if th.too_low(f.mos):
                res.problems.append(f"MOS {name} {f.mos:.2f} < {th.mos:g}")
            if f.packets and th.too_lossy(f.loss_pct):
                why = f" ({f.missing_at_end} due after the far end's media stopped)" if f.missing_at_end else ""
                res.problems.append(f"loss {name} {f.loss_pct:.2f}% >= {th.loss_pct:g}%{why}")
            if f.packets and th.too_jittery(f.judged_jitter_ms):
                what = "max jitter" if f.source == "measured" else "jitter (far end's RTCP)"
                res.problems.append(f"{what} {name} {f.judged_jitter_ms:.1f} ms >= {th.jitter_ms:g} ms")
        if o.dtmf and res.dtmf_sent != o.dtmf:
            if self.media.dtmf_pt is None:
                why = "the answer has no telephone-event (RFC 4733), so no digits were sent"
            else:
                why = f"the call ended after {res.duration_s:g} s, before all digits were sent"
            res.problems.append(f"DTMF: sent {res.dtmf_sent!r} of {o.dtmf!r}: {why}")
        res.ok = not res.problems


# The Analyzer's findings that fail a test call (as they fail a check), besides the call's own figures.
FAILS_CALL = ("sip.ack_missing", "media.one_way", "media.none", "codec.no_common")


async def _open(o: CallOptions, on_event: Callable | None, analyse: bool = False):
    """Check the options, resolve the first hop, and make the Caller (not yet entered). `analyse`: feed
    the call's packets to the Analyzer (agent/tap.py) even when no pcap is asked for."""
    o.check()
    hop, kind = _hop(o)
    addr = await _resolve(*hop.hostport())
    tap = o.tap
    if tap is None and (o.pcap or analyse):
        from .tap import AgentTap
        tap = AgentTap(o.pcap, o.thresholds)
    return Caller(o, kind, addr, tap, on_event), tap


def judge_by_analyzer(res: CallResult, report) -> None:
    """Add the Analyzer's findings on the call to its result: what `analyze` would say of this call's
    capture. Those in FAILS_CALL fail it (one-way audio already said by the call's own counters
    is not said twice)."""
    call = next((c for c in report.calls if c.call_id == res.call_id), None) if res.call_id else None
    if call is None:
        return
    res.findings = list(call.findings)
    for f in res.findings:
        if f.code in FAILS_CALL and f.severity in ("error", "critical"):
            if f.code in ("media.one_way", "media.none") and res.one_way:
                continue
            if not res.error and res.status is not None and 200 <= res.status < 300:
                res.problems.append(f.title)
                res.ok = False


async def place_call(o: CallOptions, on_event: Callable | None = None) -> CallResult:
    """Place one call and return its result (never raises for call failures: see result.error;
    raises SiptoolError for bad options, before anything is sent). The call's own packets go to the
    Analyzer as they pass, and its findings are the result's."""
    caller, tap = await _open(o, on_event, analyse=True)
    try:
        try:
            await caller.__aenter__()
        except SiptoolError as exc:  # before the INVITE: connection refused, probe unreachable, STUN
            return CallResult(error=str(exc))
        try:
            res = await OutgoingCall(caller, o, on_event).run()
        finally:
            await caller.__aexit__(None, None, None)
        if tap.info.packets:
            judge_by_analyzer(res, tap.report())
        return res
    finally:
        if tap is not None:
            tap.close()


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["results"] = [r.to_dict() for r in self.results]
        return d


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
    return s


async def place_calls(o: CallOptions, n: int, rate: float, on_result: Callable | None = None,
                      on_event: Callable | None = None) -> Summary:
    """n calls, `rate` new calls per second, all sharing one SIP transport (capacity / CCC test).
    Raises AgentError when the far end cannot be reached before the first INVITE."""
    inputs.number("--calls", n, 1, 100_000)
    inputs.number("--rate", rate, 0, 10_000, above=True, unit="calls/s")
    caller, tap = await _open(o, on_event)
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
            except BaseException:  # Ctrl-C: the calls hang up (their own finally) before the UA closes
                for t in tasks:
                    t.cancel()
                if tasks:
                    await asyncio.wait(tasks, timeout=HANG_UP_LIMIT + 1)
                raise
    finally:
        if tap is not None:
            tap.close()
    return summarise(results)
