"""The echo agent's asyncio driver: `async with EchoServer(...) as echo:`.

What it answers and when is decided sans-I/O (echo_core.py, session.UasSession); this driver opens
each call's media, starts its RTCP when the call is answered, and when a call ends, reads what
`analyze` says of it and prints one line. Two things for test suites (`siptool check`): a call to
the number `ring` (or `ring-...`) rings and is never answered (a CANCEL gets 487; 480 after
RING_LIMIT s), and REGISTER is answered as by a minimal registrar (RFC 3261 10.3).

What an echoed call reports costs no per-packet Python: its SIP messages (a few per call, kept
with the call and bounded) go through the Analyzer when it ends, SIP only, so the line and the
findings are what `analyze` says of its signalling; its media is the tally the echo already keeps
(packets echoed, counted per batch by the shared port's thread). The media itself is never fed to
an Analyzer: that is what keeps echo capacity at SIPp's (bench/echo_capacity.py).

On request (`pcap`, `siptool echo --pcap FILE`) every packet the echo sends and receives, SIP and
RTP, is written to that file, and each call's own packets feed an Analyzer as they pass (agent/tap.py,
as a placed call's do): its line then carries its media figures and findings too. That takes per-packet
Python: media goes through a port pair per call on the event loop, not the shared port's thread."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..report.model import AgentView, Call, Utterance
from ..rtp.audio import resample
from ..rtp import codecs as registry
from ..sip.auth import Authenticator
from ..sip.transaction import Timers
from .echo_core import MAX_CALLS, EchoCore, EchoPolicy
from .echo_port import EchoPort
from .events import Answered, Ended
from .listener import Listener
from .limits import SourceLimiter
from .media import RtpDriver
from .rtpsession import RtpSession
from .speaker import Speaker
from .voice_agent import AgentPlan, VoiceAgent
from .session import RING_LIMIT, UasSession, rings_unanswered  # noqa: F401 - re-exported
from .clock import stamp
from .tap import AgentTap, Taps
from .transport import TlsOptions
from .ua import UserAgent

MAX_KEPT = 64  # SIP messages kept per call for its analysis (a call has about eight)


@dataclass
class EchoCall:
    """One call the echo agent answered (or refused after accepting it): its session, its media and,
    once it ended, the Analyzer's Call of its signalling with the echo's facts (call.agent)."""

    session: UasSession
    media: RtpSession | None = field(default=None, repr=False)
    driver: RtpDriver | None = field(default=None, repr=False)
    started: float = field(default_factory=time.time)
    packets: list[tuple] = field(default_factory=list, repr=False)  # the tap's arguments, each message
    call: Call | None = None
    agent: VoiceAgent | None = field(default=None, repr=False)  # the voice agent speaking on it, if any
    tap: AgentTap | None = field(default=None, repr=False)  # with --pcap: its own Analyzer, fed as packets pass

    def keep(self, packet: tuple) -> None:
        """One SIP message (the tap's arguments): to its Analyzer, or kept for the analysis at the end."""
        if self.tap is not None:
            self.tap(*packet)
        elif len(self.packets) < MAX_KEPT:
            self.packets.append(packet)

    call_id = property(lambda self: self.session.call_id)
    remote = property(lambda self: self.session.source)
    codec = property(lambda self: self.session.codec[0])
    ended_by = property(lambda self: self.session.ended_by or "")
    answered = property(lambda self: self.session.answered_at)
    ended = property(lambda self: self.session.ended_at)

    @property
    def state(self) -> str:
        """ringing, answered, hanging-up, or how it ended: ended, cancelled, rejected, unanswered."""
        s = self.session.state
        return {"early": "ringing", "idle": "ringing", "confirmed": "answered", "ending": "hanging-up",
                "ended": self.session.outcome}.get(s, s)

    @property
    def packets_echoed(self) -> int:
        return self.media.echoed if self.media is not None else 0


class EchoServer:
    def __init__(self, listen: tuple[str, int] = ("127.0.0.1", 5060), transport: str = "udp",
                 user: str | None = None, password: str | None = None, realm: str = "siptool",
                 codecs: tuple[str, ...] = registry.AGENT, ring: float = 0.0, hangup_after: float | None = None,
                 timers: Timers | None = None, tls: TlsOptions | None = None,
                 reject: int | None = None, media_port: int | None = None, rate: float | None = None,
                 max_calls: int = MAX_CALLS, on_error: Callable | None = None, on_call: Callable | None = None,
                 retry_after: int | None = None, agent: AgentPlan | None = None, pcap: str | None = None) -> None:
        self.listen = listen
        self.agent = agent  # a voice agent instead of an echo (voice_agent.py): a port pair per call
        self._clips: dict[int, list] = {}  # the agent's greeting and replies at each codec rate
        self.pcap = AgentTap(pcap, analyse=False) if pcap else None  # every packet of the run, written
        policy = EchoPolicy(codecs=tuple(c.upper() for c in codecs), reject=reject, retry_after=retry_after, ring=ring,
                            hangup_after=hangup_after, max_calls=max_calls,
                            auth=Authenticator(realm, {user: password}) if user and password is not None else None)
        # rate: messages per second one source host may send (None: the limiter's default; 0: no limit)
        limiter = None if rate == 0 else SourceLimiter() if rate is None else SourceLimiter(rate)
        self.ua = UserAgent(transport, listen[0], listen[1], timers, tls, limiter=limiter, on_error=on_error,
                            on_event=self._event, tap=self.pcap)
        self.core = EchoCore(self.ua.ep, policy, self._open_media)
        self.ua.ep.on_traffic = self._traffic
        self.calls: dict[str, EchoCall] = {}
        self.finished: list[EchoCall] = []
        self.on_call = on_call  # a call ended: the EchoCall, with the Analyzer's Call of it in `.call`
        # media_port: every call's media on one port pair (0: any free one), echoed in batches by a
        # thread (agent/echo_port.py), for an echo agent with a process of its own (`siptool echo`).
        # None: a port pair per call, echoed on the event loop (an agent sharing a loop with callers).
        self.media_port = media_port if pcap is None else None  # (the shared port's thread taps nothing)
        self.shared: EchoPort | None = None
        self._unclaimed: tuple[str, list] = ("", [])  # a new call's INVITE and 100 Trying, before it exists
        self.answer_body = b""

    @property
    def port(self) -> int:
        return self.ua.local[1]

    @property
    def bindings(self):
        """The registrar's bindings (REGISTER is answered, never used for routing)."""
        return self.core.bindings

    async def start(self) -> "EchoServer":
        if self.agent is not None:  # resampled now, not while a call waits for its answer
            for rate in sorted({registry.by_name(c).rate or registry.by_name(c).clock_rate for c in registry.AGENT}):
                self._agent_clips(rate)
        await self.ua.start()
        if self.media_port is not None:
            try:
                self.shared = await EchoPort(self.listen[0], self.media_port).start()
            except BaseException:
                await self.ua.close()
                raise
        return self

    async def close(self) -> None:
        """Ctrl-C: answered calls are hung up (BYE, 2 s at most), ringing ones refused; then the lines."""
        now = stamp()
        for record in list(self.calls.values()):
            record.session.shutdown(now)
        self.ua.pump(now)
        deadline = time.monotonic() + 2.5
        while self.calls and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        now = stamp()
        for record in list(self.calls.values()):  # no answer to the BYE in time
            record.session.drop(now, "shutdown")
        self.ua.pump(now)
        await self.ua.close()
        if self.shared is not None:
            self.shared.close()
        if self.pcap is not None:
            self.pcap.close()

    async def __aenter__(self) -> "EchoServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # --- what the core and the sessions ask of the driver ---------------------------------------------

    def _open_media(self, session: UasSession) -> int:
        """A new call's media: the shared port, or a port pair of its own (OSError when none is left)."""
        record = EchoCall(session, tap=AgentTap(None) if self.pcap is not None else None)
        self.calls[session.call_id] = record
        call_id, early = self._unclaimed
        self._unclaimed = ("", [])
        for packet in early if call_id == session.call_id else ():
            record.keep(packet)
        fmtp = session.formats[session.codec[1]][3]
        coder = registry.coder(session.codec[0], fmtp)
        voice = self.agent is not None
        rtp = RtpSession(coder, echo=not voice, cname=f"siptool@{self.listen[0]}", keep_audio_s=0.0)
        if voice:
            rtp.listener = Listener(coder.decoder(), coder.clock_rate)
            record.agent = VoiceAgent(self.agent, self._agent_clips(coder.rate), Speaker(coder.rate), rtp.listener)
        driver = RtpDriver(self.listen[0], rtp, shared=None if voice else self.shared,
                           tap=Taps(record.tap, self.pcap) if self.pcap is not None else None)
        driver.bind()  # at once: the SDP answer needs the port
        offer = session.offer
        driver.set_remote(offer.connection, offer.port, rtp.coder, session.codec[1], offer.dtmf_pt)
        record.media, record.driver = rtp, driver
        return driver.port

    def _event(self, owner, event) -> None:
        record = self.calls.get(getattr(owner, "call_id", None))
        if record is None or record.session is not owner:
            return
        if isinstance(event, Answered):
            self.answer_body = owner.answer_body
            if record.agent is not None:  # the voice agent speaks (and RTCP starts with it)
                record.driver.start(np.zeros(0, np.int16), None, source=record.agent)
            else:
                record.driver.start_rtcp()
        elif isinstance(event, Ended):
            self._ended(record)

    def _agent_clips(self, rate: int) -> list:
        """The voice agent's greeting (None when it has none) and replies at a codec's rate."""
        if rate not in self._clips:
            said = [self.agent.greeting, *self.agent.replies]
            self._clips[rate] = [None if c is None else resample(c[0], c[1], rate) for c in said]
        return self._clips[rate]

    def _traffic(self, direction: str, data: bytes, addr, call_id: str, now: float) -> None:
        """A call's SIP messages, kept with it (as a tap takes them) for its analysis when it ends. A
        new call's INVITE, and the 100 Trying its transaction sends, pass before the call exists:
        they wait, as the last message's, until _open_media claims them."""
        ua = self.ua
        here = ua.transport.locals.get(addr, ua.local) if ua.transport.reliable else ua.local
        packet = (direction, here, addr, data, ua.kind, now)
        record = self.calls.get(call_id)
        if record is not None:
            record.keep(packet)
        elif direction == "in":
            self._unclaimed = (call_id, [packet])
        elif self._unclaimed[0] == call_id and len(self._unclaimed[1]) < 4:
            self._unclaimed[1].append(packet)

    def _ended(self, record: EchoCall) -> None:
        if record.driver is not None:
            record.driver.close()  # first: closing a shared port's session brings its count up to date
        self.calls.pop(record.call_id, None)
        record.call = analyse(record)
        self.finished.append(record)
        del self.finished[:-1000]
        if self.on_call:
            self.on_call(record)


def analyse(record: EchoCall) -> Call | None:
    """The Analyzer over a finished call's SIP messages, as a tap would have fed it, with the echo's
    facts of it: what `analyze` says of the call's signalling (its media is not captured: that is
    an info finding of the report, not of the call). With --pcap, its own Analyzer's, media too."""
    tap = record.tap
    if tap is None:
        tap = AgentTap(None)
        for packet in record.packets:
            tap(*packet)
    if not tap.info.packets:
        return None
    report = tap.report()
    call = next((c for c in report.calls if c.call_id == record.call_id and c.kind == "call"), None)
    if call is not None:
        s = record.session
        held = (s.ended_at or s.started_at or 0.0) - (s.answered_at or s.started_at or 0.0)
        call.agent = AgentView(role="callee", codec=s.codec[0], echoed=record.packets_echoed, outcome=s.outcome,
                               ended_by=s.ended_by or "", held_s=round(held, 1))
        if record.agent is not None:  # what the voice agent said, when
            sp = record.agent.speaker
            call.agent.said = [Utterance(c.label, sp.time(c.start), sp.time(c.end)) for c in record.agent.placed]
    return call
