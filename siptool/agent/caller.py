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
from ..status import ExitStatus
from ..rtp import g711
from . import sdp, sipmsg
from .auth import Credentials, pick_challenge
from .dialog import Dialog
from .media import MediaFigures, RtpSession, load_wav
from .transaction import Timers
from .transport import TlsOptions
from .ua import TransactionTimeout, UserAgent


class AgentError(SiptoolError):
    exit_code = ExitStatus.FAILED


@dataclass
class Thresholds:
    mos_min: float = 3.5
    loss_pct: float = 1.0
    jitter_ms: float = 30.0
    pdd_ms: float = 5000.0


@dataclass
class CallOptions:
    uri: str
    transport: str | None = None  # udp/tcp/tls; default from the URI (transport=, sips:) else udp
    from_uri: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    proxy: str | None = None
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    duration: float | None = 5.0
    dtmf: str = ""
    play: str | None = None
    record: str | None = None
    signal: str = "speech"
    local_ip: str = "127.0.0.1"
    t1: float = 0.5
    t2: float = 4.0
    insecure: bool = False
    ca_file: str | None = None
    sni: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cancel_after: float | None = None
    hold: bool = False
    pcap: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    no_answer_timeout: float = 60.0  # CANCEL when no final response after this long

    def tls(self) -> TlsOptions:
        return TlsOptions(self.insecure, self.ca_file, self.sni, self.cert_file, self.key_file)


@dataclass
class CallResult:
    ok: bool = False
    status: int | None = None
    reason: str = ""
    call_id: str = ""
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
    dtmf_sent: str = ""
    auth: str | None = None  # "401"/"407" when a challenge was answered
    hold_status: int | None = None
    resume_status: int | None = None
    cancel_status: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["events"] = [{"t_ms": t, "event": e} for t, e in self.events]
        return d


class Caller:
    """A user agent shared by the calls it places (dispatches in-dialog requests by Call-ID)."""

    def __init__(self, kind: str, local_ip: str, timers: Timers, tls: TlsOptions | None = None, tap=None) -> None:
        self.ua = UserAgent(kind, local_ip, 0, timers, tls, self._handle, tap)
        self.calls: dict[str, "OutgoingCall"] = {}
        self.tap = tap

    async def __aenter__(self) -> "Caller":
        await self.ua.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ua.close()

    def _handle(self, ua: UserAgent, txn, msg, addr) -> None:
        if txn is None or msg.method == "ACK":
            return
        call = self.calls.get(msg.call_id or "")
        if msg.method == "OPTIONS":
            ua.respond(txn, sipmsg.response(msg, 200, headers=[("allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")]))
        elif call is None:
            ua.respond(txn, sipmsg.response(msg, 481))
        else:
            call.on_request(txn, msg)


def _hop(o: CallOptions) -> tuple[sipmsg.Uri, str]:
    target = sipmsg.parse_uri(o.uri)
    hop = sipmsg.parse_uri(o.proxy) if o.proxy else target
    kind = (o.transport or hop.transport or ("tls" if hop.scheme == "sips" else "udp")).lower()
    if kind not in ("udp", "tcp", "tls"):
        raise SiptoolError(f"unknown transport {kind!r}: use udp, tcp or tls")
    return hop, kind


async def _resolve(host: str, port: int) -> tuple[str, int]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=2)
    except OSError as exc:
        raise AgentError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return infos[0][4][0], port


def _signal(o: CallOptions, seconds: float) -> np.ndarray:
    if o.play:
        return load_wav(o.play)
    if o.signal == "tone":
        return g711.tone(1004.0, min(seconds, 10.0) or 1.0)
    return g711.speech_like(min(max(seconds, 1.0), 10.0))


class OutgoingCall:
    def __init__(self, caller: Caller, o: CallOptions, addr: tuple[str, int], on_event: Callable | None) -> None:
        self.caller, self.o, self.addr, self.on_event = caller, o, addr, on_event
        self.ua = caller.ua
        self.res = CallResult()
        self._cancel_sent = False
        self.t0 = 0.0
        self.remote_bye = asyncio.Event()
        self.dialog: Dialog | None = None
        self.media: RtpSession | None = None
        self.final = asyncio.Event()

    def event(self, text: str) -> None:
        t = round((time.monotonic() - self.t0) * 1000, 1)
        self.res.events.append((t, text))
        if self.on_event:
            self.on_event(self.res.call_id, t, text)

    def on_request(self, txn, msg) -> None:
        self.event(f"<- {msg.method}")
        if msg.method == "BYE":
            self.ua.respond(txn, sipmsg.response(msg, 200))
            self.event("-> 200 OK")
            self.res.ended_by = self.res.ended_by or "remote"
            self.remote_bye.set()
        elif msg.method == "INVITE" and self.dialog is not None:  # re-INVITE from the far end
            body = sdp.build(self.o.local_ip, self.media.port, [sdp.STATIC[self.res.codec or "PCMU"]])
            self.ua.respond(txn, sipmsg.response(msg, 200, to_tag=self.dialog.local_tag, body=body,
                                                 headers=[("contact", self.ua.contact())]))
        else:
            self.ua.respond(txn, sipmsg.response(msg, 405, headers=[("allow", "INVITE, ACK, CANCEL, BYE, OPTIONS")]))

    def _route_addr(self) -> tuple[str, int]:
        if self.o.proxy or self.dialog is None:
            return self.addr
        nh = sipmsg.parse_uri(self.dialog.next_hop())
        return nh.hostport()

    async def run(self) -> CallResult:
        o, ua, res = self.o, self.ua, self.res
        host, _ = ua.local
        res.call_id = sipmsg.new_call_id(host)
        self.caller.calls[res.call_id] = self
        self.media = media = await RtpSession(o.local_ip, tap=self.caller.tap).open()
        try:
            await self._invite()
            if res.status is not None and 200 <= res.status < 300:
                await self._talk()
        except SiptoolError as exc:
            res.error = str(exc)
        finally:
            media.close()
            self.caller.calls.pop(res.call_id, None)
        self._judge()
        return res

    async def _invite(self) -> None:
        o, ua, res, media = self.o, self.ua, self.res, self.media
        pts = []
        for c in o.codecs:
            if c.upper() not in sdp.STATIC:
                raise SiptoolError(f"codec {c!r} is not supported: use PCMU and/or PCMA")
            pts.append(sdp.STATIC[c.upper()])
        self.offer = sdp.build(o.local_ip, media.port, pts)
        host, _ = ua.local
        from_uri = o.from_uri or f"sip:{o.user or 'siptool'}@{host}"
        from_value = f"<{from_uri}>;tag={sipmsg.new_tag()}"
        routes = [f"<{sipmsg.parse_uri(o.proxy).scheme}:{o.proxy.split(':', 1)[1]};lr>"] if o.proxy else []
        creds = Credentials(o.user or sipmsg.parse_uri(from_uri).user, o.password) if o.password is not None else None
        cseq = 1
        self.t0 = time.monotonic()
        tried: set[str] = set()
        auth_header: tuple[str, str] | None = None
        while True:
            invite = sipmsg.request("INVITE", o.uri, via_value=ua.via(), from_value=from_value, to_value=f"<{o.uri}>",
                                    call_id=res.call_id, cseq=cseq, contact=ua.contact(), routes=routes,
                                    headers=[auth_header] if auth_header else [], body=self.offer)
            self.invite = invite
            self.event("-> INVITE")
            cancel_task = None
            if o.cancel_after is not None:
                cancel_task = asyncio.ensure_future(self._cancel_later(invite, o.cancel_after))
            else:
                cancel_task = asyncio.ensure_future(self._cancel_later(invite, o.no_answer_timeout))
            try:
                resp = await ua.request(invite, self.addr, self._provisional)
            except TransactionTimeout as exc:
                res.status, res.reason = None, ""
                self.event("timeout (timer B)")
                raise AgentError(str(exc)) from None
            finally:
                if self._cancel_sent:  # the 487 may overtake the 200 to the CANCEL: let that one finish
                    await asyncio.wait([cancel_task], timeout=2.0)
                cancel_task.cancel()
            self.event(f"<- {resp.status} {resp.reason}")
            res.status, res.reason = resp.status, resp.reason
            if resp.status in (401, 407) and creds is not None:
                proxy = resp.status == 407
                ch = pick_challenge(resp.get_all("proxy-authenticate" if proxy else "www-authenticate"), proxy)
                if ch is None:
                    raise AgentError(f"{resp.status} {resp.reason}: no supported digest challenge (MD5/SHA-256)")
                if ch.nonce in tried or (len(tried) >= 1 and not ch.stale):
                    raise AgentError(f"authentication failed: {resp.status} {resp.reason} again after sending "
                                     f"credentials for user {creds.user!r} (wrong user or password?)")
                tried.add(ch.nonce)
                res.auth = str(resp.status)
                cseq += 1
                auth_header = ("proxy-authorization" if proxy else "authorization",
                               creds.authorization(ch, "INVITE", o.uri, self.offer))
                continue
            if resp.status in (401, 407):
                raise AgentError(f"{resp.status} {resp.reason}: the far end wants credentials "
                                 "(give --user and --password-env VAR or --password-file FILE)")
            break
        if res.pdd_ms is None:
            res.pdd_ms = round((time.monotonic() - self.t0) * 1000, 1)
        if 200 <= resp.status < 300:
            res.answer_ms = round((time.monotonic() - self.t0) * 1000, 1)
            self.dialog = Dialog.uac(invite, resp)
            ack = self.dialog.ack(invite.cseq[0], ua.via())
            await ua.request(ack, self._route_addr())
            self.event("-> ACK")
            self.answer = resp

    def _provisional(self, resp) -> None:
        self.event(f"<- {resp.status} {resp.reason}")
        if resp.status > 100 and self.res.pdd_ms is None:  # post-dial delay: INVITE to first 18x (RFC 6076 4.3)
            self.res.pdd_ms = round((time.monotonic() - self.t0) * 1000, 1)

    async def _cancel_later(self, invite, after: float) -> None:
        await asyncio.sleep(after)
        cancel = sipmsg.request("CANCEL", invite.uri, via_value=invite.get_all("via")[0],
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
        body = sdp.build(self.o.local_ip, self.media.port, [self.media.pt], direction=direction, version=version)
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
            await self._bye()
            return
        offered = {sdp.STATIC[c.upper()] for c in o.codecs}
        pt = next((p for p in answer.payloads if p in offered), None)
        if pt is None:
            res.problems.append(f"the answer chose no offered codec (m= payloads {answer.payloads})")
            await self._bye()
            return
        res.codec = answer.codec_name(pt).upper()
        media.set_remote(answer.address, answer.port, res.codec, pt, sdp.dtmf_pt(answer))
        self.event(f"media {res.codec} to {answer.address}:{answer.port}")
        duration = o.duration
        started = time.monotonic()
        media.start(_signal(o, duration or 10.0), duration, o.dtmf, dtmf_at=min(1.0, (duration or 4.0) / 4))
        watch = asyncio.ensure_future(self._watch_one_way())
        if o.hold and duration:  # hold at 1/3, resume at 2/3 of the call
            await asyncio.sleep(duration / 3)
            res.hold_status = await self._reinvite("sendonly", 2)
            await asyncio.sleep(duration / 3)
            res.resume_status = await self._reinvite("sendrecv", 3)
        sending = asyncio.ensure_future(media.sending_done() if duration is not None else asyncio.sleep(1e9))
        bye = asyncio.ensure_future(self.remote_bye.wait())
        await asyncio.wait([sending, bye], return_when=asyncio.FIRST_COMPLETED)
        watch.cancel()
        if not self.remote_bye.is_set():
            await asyncio.sleep(0.25)  # let the last echoed packets come back
        for t in (sending, bye):
            t.cancel()
        res.duration_s = round(time.monotonic() - started, 2)
        res.dtmf_sent = media.dtmf_sent
        if not self.remote_bye.is_set():
            await self._bye()
        res.rtt_ms = media.audio_rtt_ms()
        res.rtcp_rtt_ms = round(media.rtcp_rtt_ms, 2) if media.rtcp_rtt_ms is not None else None
        delay = res.rtt_ms / 2 if res.rtt_ms else (res.rtcp_rtt_ms / 2 if res.rtcp_rtt_ms else None)
        res.rx = media.rx_figures(delay)
        res.tx = media.tx_figures(delay)
        if o.record:
            media.record(o.record)

    async def _watch_one_way(self) -> None:
        await asyncio.sleep(2.0)
        if self.media.rx_packets == 0:
            self.event("no RTP received 2 s after answer: one-way audio")

    async def _bye(self) -> None:
        self.res.ended_by = "local"
        req = self.dialog.request("BYE", self.ua.via())
        self.event("-> BYE")
        try:
            resp = await self.ua.request(req, self._route_addr())
            self.event(f"<- {resp.status} {resp.reason} (BYE)")
        except SiptoolError as exc:
            self.res.problems.append(f"BYE got no answer: {exc}")

    def _judge(self) -> None:
        res, th = self.res, self.o.thresholds
        if res.error or res.status is None or not 200 <= res.status < 300:
            res.ok = False
            return
        if res.tx.packets == 0:
            res.one_way = "no audio sent"
        elif res.rx.packets == 0:
            res.one_way = "no audio received (far end sent no RTP, or it did not reach us: check NAT/SDP address)"
        if res.one_way:
            res.problems.append(f"one-way audio: {res.one_way}")
        if res.pdd_ms is not None and res.pdd_ms > th.pdd_ms:
            res.problems.append(f"post-dial delay {res.pdd_ms:.0f} ms > {th.pdd_ms:.0f} ms")
        for name, f in (("received", res.rx), ("sent", res.tx)):
            if f.mos is not None and f.mos < th.mos_min:
                res.problems.append(f"MOS {name} {f.mos:.2f} < {th.mos_min}")
            if f.packets and f.loss_pct > th.loss_pct:
                res.problems.append(f"loss {name} {f.loss_pct:.2f}% > {th.loss_pct}%")
            if f.packets and f.jitter_ms > th.jitter_ms:
                res.problems.append(f"jitter {name} {f.jitter_ms:.1f} ms > {th.jitter_ms} ms")
        if self.o.dtmf and res.dtmf_sent != self.o.dtmf:
            res.problems.append(f"DTMF: sent {res.dtmf_sent!r} of {self.o.dtmf!r} (no telephone-event in the answer?)")
        res.ok = not res.problems


async def place_call(o: CallOptions, on_event: Callable | None = None, caller: Caller | None = None) -> CallResult:
    """Place one call and return its result (never raises for call failures: see result.error)."""
    hop, kind = _hop(o)
    addr = await _resolve(*hop.hostport())
    tap = None
    if o.pcap and caller is None:
        from .pcap import PcapTap
        tap = PcapTap(o.pcap)
    if caller is None:
        try:
            async with Caller(kind, o.local_ip, Timers(o.t1, o.t2), o.tls() if kind == "tls" else None, tap) as c:
                if kind != "udp":  # connect first so Via and Contact carry the real local port
                    try:
                        await c.ua.transport.send(b"", addr)
                    except SiptoolError as exc:
                        return CallResult(error=str(exc))
                return await OutgoingCall(c, o, addr, on_event).run()
        finally:
            if tap is not None:
                tap.close()
    return await OutgoingCall(caller, o, addr, on_event).run()


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
    """n calls, `rate` new calls per second, all sharing one SIP transport (capacity / CCC test)."""
    hop, kind = _hop(o)
    addr = await _resolve(*hop.hostport())
    tap = None
    if o.pcap:
        from .pcap import PcapTap
        tap = PcapTap(o.pcap)
    try:
        async with Caller(kind, o.local_ip, Timers(o.t1, o.t2), o.tls() if kind == "tls" else None, tap) as c:
            loop = asyncio.get_running_loop()
            start = loop.time()
            tasks = []
            for i in range(n):
                await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
                t = asyncio.ensure_future(OutgoingCall(c, o, addr, on_event).run())
                if on_result:
                    t.add_done_callback(lambda f: on_result(f.result()))
                tasks.append(t)
            results = list(await asyncio.gather(*tasks))
    finally:
        if tap is not None:
            tap.close()
    return summarise(results)


async def options_ping(uri: str, transport: str | None = None, local_ip: str = "127.0.0.1", t1: float = 0.5,
                       tls: TlsOptions | None = None) -> tuple[int, str, float]:
    """OPTIONS (RFC 3261 11): (status, reason, round trip ms). Raises AgentError on timeout."""
    from .register import options

    ex = await options(uri, transport, local_ip, t1, tls)
    if ex.status is None:
        raise AgentError(ex.error or "no response to OPTIONS")
    return ex.status, ex.reason, ex.rtt_ms


async def register(registrar: str, aor: str, user: str | None, password: str | None, expires: int = 300,
                   transport: str | None = None, local_ip: str = "127.0.0.1", t1: float = 0.5,
                   tls: TlsOptions | None = None) -> tuple[int, str, int | None]:
    """REGISTER (RFC 3261 10) with digest: (final status, reason, granted expiry seconds); the binding
    is left in place (see siptool.agent.register.Registration for refresh and unregister)."""
    from .register import Registration

    reg = Registration(registrar, aor, user, password, expires, transport, local_ip, t1, tls)
    try:
        ex = await reg.start()
    finally:
        await reg.stop(unregister=False)
    if ex.status is None:
        raise AgentError(ex.error or "no response to REGISTER")
    return ex.status, ex.reason, ex.expires

