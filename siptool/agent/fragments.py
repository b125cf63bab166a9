"""Does the path to a SIP peer pass IP fragments? The asyncio driver of `check`'s fragments check.

A SIP request over UDP larger than the path MTU leaves in IP fragments (RFC 3261 18.1.1 asks for a
congestion-controlled transport above MTU - 200 bytes, yet most trunks stay on UDP), and many
firewalls, NATs and SBCs drop fragments: calls whose INVITE is large (many codecs, ICE candidates,
long Via and Record-Route chains) then fail in silence, after timer B. The probe places two calls
on one user agent, each a UacSession (session.py) that ends at its first response (a ringing call
is CANCELled, an answered one hung up at once, a refused one ACKed by its transaction):

1. a control INVITE as it is, whole: does the peer answer an INVITE from here at all?
2. an INVITE padded to `size` bytes and sent as IP fragments of at most `fragment` bytes
   (capture/craft.py, a raw socket: root or CAP_NET_RAW) from the user agent's own address and
   port, so that its responses come back to the user agent's transaction; its retransmissions
   (timer A) leave the same way.

Any response to the fragmented INVITE means its fragments arrived and were joined; silence for
`wait` seconds while the control was answered means the path drops them (check/builtin.py judges).
The tap gets every packet, the fragments as they left (agent/tap.py).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from ..capture import craft
from ..errors import SiptoolError
from ..sip.transaction import Timers
from .clock import stamp
from .events import Ended, Received
from .media import _bind_pair
from .dns import locate_hop
from .nat import route_source
from .options import CallOptions
from .session import UacSession
from .ua import UserAgent

PAD_HEADER = "X-Siptool-Pad"  # an extension header: a user agent ignores what it does not know (RFC 3261 8.2.2)
PAD_LINE = 200  # bytes per pad header line at most
CLEAN_UP_S = 3.0  # how long a CANCEL or BYE may take before the call is given up


class NoRawSocket(SiptoolError):
    """Crafted packets need root or CAP_NET_RAW: the probe cannot be made here."""


@dataclass
class Reply:
    """What one INVITE of the probe got."""

    status: int | None = None  # its first response (None: nothing within the wait)
    reason: str = ""
    error: str = ""  # the transaction failed before any response (a transport error)


@dataclass
class Probe:
    control: Reply = field(default_factory=Reply)
    fragmented: Reply = field(default_factory=Reply)
    size: int = 0  # bytes of the fragmented INVITE (UDP payload)
    fragments: int = 0  # IP packets it left in each time
    sends: int = 0  # times it left (the first and timer A's retransmissions)
    events: list = field(default_factory=list)  # both calls' typed events (events.py), in order


def pad(request: bytes, size: int) -> bytes:
    """The request padded to `size` bytes with PAD_HEADER lines before the blank line that ends its
    headers (the body and its Content-Length stay as they are): exactly, unless fewer bytes are
    missing than one line takes (then one short line more); as it is when already that long."""
    head, sep, body = request.partition(b"\r\n\r\n")
    prefix = f"\r\n{PAD_HEADER}: ".encode()
    lines = []
    room = size - len(request)
    while room > 0:
        take = max(1, min(PAD_LINE, room - len(prefix)))
        rest = room - len(prefix) - take
        if 0 < rest <= len(prefix):  # too little left for a line of its own: leave the next one more
            take -= len(prefix) + 1 - rest
        lines.append(prefix + b"p" * take)
        room -= len(lines[-1])
    return head + b"".join(lines) + sep + body


class _FragmentingAgent(UserAgent):
    """A user agent whose INVITEs of one call (`fragmented`: its Call-ID) leave padded to `size`
    bytes in IP fragments of at most `fragment` bytes; everything else as usual."""

    def __init__(self, *args, size: int, fragment: int, probe: Probe, **kw) -> None:
        super().__init__(*args, **kw)
        self.size, self.fragment, self.probe = size, fragment, probe
        self.fragmented = ""

    def _send(self, data: bytes, addr, txn, now: float) -> None:
        if not (self.fragmented and txn is not None and data.startswith(b"INVITE ")
                and txn.request.call_id == self.fragmented):
            super()._send(data, addr, txn, now)
            return
        (host, port), data = self.local, pad(data, self.size)
        try:
            packets = craft.fragment_udp(host, port, addr[0], addr[1], data, self.fragment)
            craft.send_raw(packets, addr[0])
        except SiptoolError as exc:
            self.ep.send_failed(txn, str(exc), now)
            return
        self.probe.size, self.probe.fragments, self.probe.sends = len(data), len(packets), self.probe.sends + 1
        if self.tap is not None:
            self.tap.ip_packets(packets, now)


async def probe(uri: str, local_ip: str | None = None, size: int = 1400, fragment: int = 576, wait: float = 5.0,
                t1: float = 0.5, from_uri: str | None = None, proxy: str | None = None, dns_server: str | None = None,
                tap=None) -> Probe:
    """The control call, then the fragmented one, to `uri` over UDP: to the first server a request
    would try (RFC 3263, dns.py; `proxy`, the outbound proxy, when given: the path asked about is
    the one to the first hop). No credentials: a 401/407 is a response like any other. SiptoolError
    (before anything is sent) when the probe cannot be made: no raw socket (NoRawSocket), sizes that
    fragment nothing, no server located."""
    o = CallOptions(uri=uri, transport="udp", from_uri=from_uri, proxy=proxy, codecs=("PCMU",), duration=None,
                    t1=t1, local_ip=local_ip, no_answer_timeout=3600.0)
    o.check()
    located = await locate_hop(uri, proxy, "udp", dns_server)
    addr = located.order(random.Random())[0].addr()
    if size <= fragment:
        raise SiptoolError(f"an INVITE of {size} bytes fits in one packet of {fragment}: nothing is fragmented "
                           "(size must be larger than fragment)")
    if not craft.raw_allowed(addr[0]):
        raise NoRawSocket("sending an INVITE in crafted IP fragments needs root or the CAP_NET_RAW capability "
                           "(e.g. sudo setcap cap_net_raw+ep on the Python that runs siptool)")
    result = Probe()
    local_ip = local_ip or route_source(addr[0])
    waiting: dict[UacSession, tuple[asyncio.Future, asyncio.Future]] = {}

    def on_event(owner, event) -> None:
        futures = waiting.get(owner)
        if futures is None:
            return
        result.events.append(event)
        first, ended = futures
        if isinstance(event, Received) and event.method == "INVITE" and event.status and not first.done():
            first.set_result(Reply(event.status, event.reason))
        elif isinstance(event, Ended):
            if not first.done():
                first.set_result(Reply(error=owner.error))
            if not ended.done():
                ended.set_result(None)

    ua = _FragmentingAgent("udp", local_ip, 0, Timers(t1), tap=tap, on_event=on_event, size=size,
                           fragment=fragment, probe=result)
    rtp, rtcp = _bind_pair(local_ip)  # what the offers name, never read: the calls end at once
    try:
        async with ua:
            for fragmented in (False, True):
                loop = asyncio.get_running_loop()
                session = UacSession(ua.ep, o, addr, (local_ip, rtp.getsockname()[1]))
                waiting[session] = (loop.create_future(), loop.create_future())
                if fragmented:
                    ua.fragmented = session.call_id
                reply = await _call(ua, session, waiting[session], wait)
                if fragmented:
                    result.fragmented = reply
                else:
                    result.control = reply
                if reply.status is None and not fragmented:
                    break  # the peer answers no INVITE from here: nothing to compare with
    finally:
        rtp.close()
        rtcp.close()
    return result


async def _call(ua: UserAgent, session: UacSession, futures: tuple, wait: float) -> Reply:
    """One INVITE: its first response within `wait` s, then the call ended (CANCEL, BYE, or given up
    CLEAN_UP_S later) so that nothing is left up at the far end."""
    first, ended = futures
    now = stamp()
    session.start(now)
    ua.pump(now)
    try:
        reply = await asyncio.wait_for(asyncio.shield(first), wait)
    except asyncio.TimeoutError:
        reply = Reply()
    now = stamp()
    session.abort(now, CLEAN_UP_S)
    ua.pump(now)
    try:
        await asyncio.wait_for(asyncio.shield(ended), CLEAN_UP_S + 2)
    except asyncio.TimeoutError:
        pass
    return reply
