"""The echo agent: answers INVITEs (optionally after a digest challenge), picks a codec from the offer,
echoes every RTP packet back to its source (latching), answers OPTIONS, handles CANCEL and BYE from
either side, many calls at once. Use as `async with EchoServer(...) as echo:`.

Two things for test suites (`siptool check`): a call to the number `ring` (or `ring-...`) rings and is
never answered (a CANCEL gets 487; 480 after RING_LIMIT s), and REGISTER is accepted as by a minimal
registrar (RFC 3261 10.3), behind a digest challenge when a user is configured."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

from ..sip.uri import uri_user
from ..sip import build
from . import sdp
from ..sip.auth import Authenticator
from .limits import SourceLimiter
from .registrar import Bindings
from ..sip.dialog import Dialog
from .echo_port import EchoPort
from .media import RtpSession
from ..sip.transaction import Timers
from .transport import TlsOptions
from .ua import UserAgent

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER"
RING_LIMIT = 60.0  # seconds a call to `ring` rings before 480 (the caller's CANCEL comes well before)
MAX_CALLS = 5000  # calls in progress at once; beyond: 503 with Retry-After (memory follows the calls)


def rings_unanswered(request_uri: str | None) -> bool:
    """The documented test number that rings and never answers: user part `ring` or `ring-...`."""
    user = uri_user(request_uri or "").lower()
    return user == "ring" or user.startswith("ring-")


@dataclass
class EchoCall:
    call_id: str
    remote: tuple[str, int]
    codec: str = ""
    state: str = "ringing"  # ringing, answered, ended, cancelled, rejected, unanswered
    started: float = field(default_factory=time.time)
    answered: float | None = None
    acked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    ended: float | None = None
    ended_by: str = ""
    packets_echoed: int = 0
    media: RtpSession | None = field(default=None, repr=False)
    dialog: Dialog | None = field(default=None, repr=False)
    invite_txn: object = field(default=None, repr=False)
    task: asyncio.Task | None = field(default=None, repr=False)

    def line(self) -> str:
        dur = (self.ended or time.time()) - (self.answered or self.started)
        return (f"{time.strftime('%H:%M:%S')} {self.state:<9} from {self.remote[0]}:{self.remote[1]} "
                f"{self.codec or '-':<5} {dur:6.1f} s  echoed {self.packets_echoed} pkts"
                + (f"  ended by {self.ended_by}" if self.ended_by else "")
                + f"  call-id {self.call_id}")  # whole: it is what to grep a capture for


class EchoServer:
    def __init__(self, listen: tuple[str, int] = ("127.0.0.1", 5060), transport: str = "udp",
                 user: str | None = None, password: str | None = None, realm: str = "siptool",
                 codecs: tuple[str, ...] = ("PCMU", "PCMA"), ring: float = 0.0, hangup_after: float | None = None,
                 timers: Timers | None = None, tls: TlsOptions | None = None, on_line: Callable | None = None,
                 reject: int | None = None, media_port: int | None = None, rate: float | None = None,
                 max_calls: int = MAX_CALLS, on_error: Callable | None = None) -> None:
        self.listen = listen
        self.codecs = [c.upper() for c in codecs]
        self.ring = ring
        self.hangup_after = hangup_after
        self.reject = reject  # answer every INVITE with this status (failure-path tests)
        self.auth = Authenticator(realm, {user: password}) if user and password is not None else None
        # rate: messages per second one source host may send (None: the limiter's default; 0: no limit)
        limiter = None if rate == 0 else SourceLimiter() if rate is None else SourceLimiter(rate)
        self.ua = UserAgent(transport, listen[0], listen[1], timers, tls, self._handle, limiter=limiter,
                            on_error=on_error)
        self.max_calls = max_calls
        self.bindings = Bindings()  # REGISTER (bounded; answered, never used for routing)
        self.calls: dict[str, EchoCall] = {}
        self.finished: list[EchoCall] = []
        self.on_line = on_line
        # media_port: every call's media on one port pair (0: any free one), echoed in batches by a
        # thread (agent/echo_port.py), for an echo agent with a process of its own (`siptool echo`).
        # None: a port pair per call, echoed on the event loop (an agent sharing a loop with callers).
        self.media_port = media_port
        self.shared: EchoPort | None = None

    @property
    def port(self) -> int:
        return self.ua.local[1]

    async def start(self) -> "EchoServer":
        await self.ua.start()
        if self.media_port is not None:
            try:
                self.shared = await EchoPort(self.listen[0], self.media_port).start()
            except BaseException:
                await self.ua.close()
                raise
        return self

    async def close(self) -> None:
        calls = list(self.calls.values())
        for call in calls:
            if call.task is not None and not call.task.done():
                call.task.cancel()
        answered = [c for c in calls if c.state == "answered"]
        await asyncio.gather(*(self._bye(c, 2.0) for c in answered))  # Ctrl-C: hang up, do not linger
        for call in calls:
            self._end(call, "ended" if call in answered else call.state, "shutdown")
        await self.ua.close()
        if self.shared is not None:
            self.shared.close()

    async def __aenter__(self) -> "EchoServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _print(self, call: EchoCall) -> None:
        if self.on_line:
            self.on_line(call.line())

    def _end(self, call: EchoCall, state: str, by: str) -> None:
        if call.ended is not None:
            return
        call.state, call.ended, call.ended_by = state, time.time(), by
        if call.media is not None:
            call.media.close()  # first: closing a shared port's session brings its count up to date
            call.packets_echoed = call.media.echoed
        if call.task is not None and call.task is not asyncio.current_task():
            call.task.cancel()
        self.calls.pop(call.call_id, None)
        self.finished.append(call)
        del self.finished[:-1000]
        self._print(call)

    # --- requests ------------------------------------------------------------------------------

    def _handle(self, ua: UserAgent, txn, msg, addr) -> None:
        m = msg.method
        call = self.calls.get(msg.call_id or "")
        if m == "ACK":
            if call is not None and call.state == "answered" and call.dialog.accepts(msg):
                call.dialog.remote_seq = msg.cseq[0]
                call.acked.set()
            return
        if m == "OPTIONS":
            ua.respond(txn, build.response(msg, 200, headers=[("allow", ALLOW), ("accept", "application/sdp")]))
        elif m == "INVITE" and msg.to_tag is None:
            self._invite(txn, msg, addr)
        elif m == "INVITE" and call is not None and call.dialog and call.dialog.accepts(msg):
            self._reinvite(call, txn, msg)
        elif m == "CANCEL":
            self._cancel(txn, msg, call)
        elif m == "REGISTER":
            self._register(txn, msg)
        elif m == "BYE":
            if call is None or call.dialog is None or not call.dialog.accepts(msg):
                ua.respond(txn, build.response(msg, 481))
                return
            ua.respond(txn, build.response(msg, 200))
            self._end(call, "ended", "remote")
        elif m in ("INVITE",):
            ua.respond(txn, build.response(msg, 481))
        else:
            ua.respond(txn, build.response(msg, 405, headers=[("allow", ALLOW)]))

    def _invite(self, txn, msg, addr) -> None:
        ua = self.ua
        if msg.call_id in self.calls:
            return  # a second INVITE with a new branch for the same call: ignore (merged request)
        if self.auth is not None:
            verdict = self.auth.check("INVITE", msg.get("authorization"))
            if verdict != "ok":
                hdrs = [("www-authenticate", c) for c in self.auth.challenges(stale=verdict == "stale")]
                ua.respond(txn, build.response(msg, 401, headers=hdrs))
                return
        if self.reject:
            ua.respond(txn, build.response(msg, self.reject))
            return
        if len(self.calls) >= self.max_calls:
            ua.respond(txn, build.response(msg, 503, headers=[("retry-after", "10")]))
            return
        offer = sdp.parse(msg.body)
        chosen = sdp.choose(offer, self.codecs) if offer else None
        if chosen is None:
            ua.respond(txn, build.response(msg, 488, headers=[("warning", '304 siptool "no common codec"')]))
            return
        call = EchoCall(call_id=msg.call_id or "", remote=addr, codec=chosen[0], invite_txn=txn)
        call.dialog = Dialog.uas(msg, build.new_tag())
        self.calls[call.call_id] = call
        call.task = asyncio.ensure_future(self._answer(call, txn, msg, offer, chosen))

    async def _answer(self, call: EchoCall, txn, msg, offer, chosen) -> None:
        try:
            await self._answer_call(call, txn, msg, offer, chosen)
        except asyncio.CancelledError:
            raise
        except OSError as exc:  # no media port left
            self.ua.respond(txn, build.response(msg, 503, headers=[("retry-after", "10")]))
            self._end(call, "rejected", f"local ({exc.strerror or exc})")
        except Exception as exc:  # noqa: BLE001 - one call's fault, never the agent's
            self.ua.on_error(f"siptool echo: internal error in call {call.call_id}: {type(exc).__name__}: {exc}")
            self.ua.respond(txn, build.response(msg, 500))
            if call.state == "answered":
                await self._bye(call)
            self._end(call, "ended", "local (internal error)")

    async def _answer_call(self, call: EchoCall, txn, msg, offer, chosen) -> None:
        ua = self.ua
        tag = call.dialog.local_tag
        call.media = media = await RtpSession(self.listen[0], echo=True, shared=self.shared).open()
        media.set_remote(offer.connection, offer.port, chosen[0], chosen[1], sdp.dtmf_pt(offer))
        peer = call.remote[0]  # when listening on all interfaces: our address as the caller sees it
        ua.respond(txn, build.response(msg, 180, to_tag=tag, headers=[("contact", ua.contact("echo", peer))]))
        if rings_unanswered(msg.uri):
            await asyncio.sleep(RING_LIMIT)  # a CANCEL ends the call (and this task) first
            if call.state == "ringing":
                ua.respond(txn, build.response(msg, 480, "Temporarily Unavailable", to_tag=tag))
                self._end(call, "unanswered", "local")
            return
        if self.ring:
            await asyncio.sleep(self.ring)
        if call.state != "ringing":
            return
        dtmf = sdp.dtmf_pt(offer)
        self.answer_body = body = sdp.build(ua.toward(peer), media.port, [chosen[1]],
                                            direction=sdp.answer_direction(offer.direction), dtmf_pt=dtmf)
        ua.respond(txn, build.response(msg, 200, to_tag=tag, body=body,
                                        headers=[("contact", ua.contact("echo", peer)), ("allow", ALLOW)]))
        call.state, call.answered = "answered", time.time()
        media.start_rtcp()
        try:  # RFC 3261 13.3.1.4: no ACK within 64*T1, the call ends (a BYE, as for any answered call)
            await asyncio.wait_for(call.acked.wait(), 64 * ua.timers.t1)
        except asyncio.TimeoutError:
            if call.state == "answered":
                await self._bye(call)
                self._end(call, "ended", "local (no ACK)")
            return
        if self.hangup_after:
            await asyncio.sleep(max(self.hangup_after - (time.time() - call.answered), 0))
            if call.state == "answered":
                await self._bye(call)
                self._end(call, "ended", "local")

    def _register(self, txn, msg) -> None:
        """A minimal registrar (RFC 3261 10.3). With a user configured: 401 with a digest challenge, 401
        stale=true for an old nonce, 403 when the answer to our nonce is wrong (wrong password), else
        the binding. Without one, every REGISTER is accepted. The 200 lists the AOR's bindings with
        their expires, and Expires the time granted (10.3 step 8)."""
        if self.auth is not None:
            header = msg.get("authorization")
            verdict = self.auth.check("REGISTER", header)
            if verdict == "fail" and self.auth.issued(header):
                self.ua.respond(txn, build.response(msg, 403, to_tag=build.new_tag()))
                return
            if verdict != "ok":
                hdrs = [("www-authenticate", c) for c in self.auth.challenges(stale=verdict == "stale")]
                self.ua.respond(txn, build.response(msg, 401, to_tag=build.new_tag(), headers=hdrs))
                return
        v = self.bindings.update(msg.get("to") or "", msg.get_all("contact"), msg.get("expires"), time.monotonic())
        hdrs = [("contact", f"<{uri}>;expires={left}") for uri, left in v.bindings]
        if v.granted is not None:
            hdrs.append(("expires", str(v.granted)))
        self.ua.respond(txn, build.response(msg, v.status, v.reason, to_tag=build.new_tag(), headers=hdrs))

    def _reinvite(self, call: EchoCall, txn, msg) -> None:
        offer = sdp.parse(msg.body) if msg.body else None
        direction = sdp.answer_direction(offer.direction) if offer else "sendrecv"
        pt = sdp.STATIC.get(call.codec, 0)
        body = sdp.build(self.ua.toward(call.remote[0]), call.media.port, [pt], direction=direction, version=2)
        self.ua.respond(txn, build.response(msg, 200, to_tag=call.dialog.local_tag, body=body,
                                             headers=[("contact", self.ua.contact("echo", call.remote[0]))]))

    def _cancel(self, txn, msg, call: EchoCall | None) -> None:
        inv = self.ua.find_server(msg.branch or "", "INVITE")
        if inv is None or call is None:
            self.ua.respond(txn, build.response(msg, 481))
            return
        self.ua.respond(txn, build.response(msg, 200))
        if call.state == "ringing":  # RFC 3261 9.2: 487 to the INVITE
            self.ua.respond(inv, build.response(inv.request, 487, to_tag=call.dialog.local_tag))
            self._end(call, "cancelled", "remote")

    async def _bye(self, call: EchoCall, limit: float | None = None) -> None:
        if call.state != "answered":
            return
        call.state = "hanging-up"
        d = call.dialog
        req = d.request("BYE", self.ua.via())
        # To where the INVITE came from, never to a Contact or Record-Route: a caller's headers must not
        # make the agent send to a third party.
        addr = call.remote
        try:
            await asyncio.wait_for(self.ua.request(req, addr), limit or 64 * self.ua.timers.t1)
        except Exception:  # noqa: BLE001 - the far end may be gone; the call ends anyway
            pass
