"""Sans-I/O endpoints connected in memory with a fake clock (aioquic's roundtrip habit): a caller
session and the echo agent's sessions exchange real SIP messages, and the clock jumps from one
event to the next, so a call flow with timer B (32 s) runs in milliseconds, without sockets.

    net = Network()
    caller = net.endpoint("10.0.0.1")
    echo = net.endpoint("10.0.0.2"); EchoCore(echo, EchoPolicy(...), open_media=lambda s: 4000)
    call = UacSession(caller, CallOptions(uri="sip:echo@10.0.0.2"), ("10.0.0.2", 5060), ("10.0.0.1", 4000))
    call.start(net.now); net.run(until=lambda: call.ended)

The link delivers each datagram after `delay` seconds. `fault(packet)` may say what happens to one:
"drop" it, "dup" it (deliver it twice), or None; `Packet` tells what it is, so a test drops "the first
INVITE" or "every ACK". Everything that crossed the link is in `net.wire`, with its time."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from typing import Callable

from siptool.agent.endpoint import Endpoint
from siptool.sip.message import parse
from siptool.sip.transaction import Timers


@dataclass
class Packet:
    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes
    fate: str = ""  # "", "drop" or "dup"

    @property
    def msg(self):
        return parse(self.data)

    @property
    def label(self) -> str:
        """'INVITE', '200 OK (INVITE)', ...: what a ladder shows."""
        m = self.msg
        return m.method if m.is_request else f"{m.status} {m.reason} ({m.cseq[1]})"


class Network:
    def __init__(self, start: float = 1_700_000_000.0, delay: float = 0.010,
                 fault: Callable[[Packet], str | None] | None = None) -> None:
        self.now = start
        self.delay = delay
        self.fault = fault
        self.nodes: dict[tuple[str, int], Endpoint] = {}
        self.wire: list[Packet] = []
        self.events: list[tuple[Endpoint, object, object]] = []  # (endpoint, owner, event)
        self._inflight: list[tuple[float, int, Packet]] = []
        self._seq = itertools.count()

    def endpoint(self, host: str, port: int = 5060, t1: float = 0.5, kind: str = "udp") -> Endpoint:
        ep = Endpoint(kind, (host, port), Timers(t1=t1))
        self.nodes[(host, port)] = ep
        return ep

    def unplug(self, ep: Endpoint) -> None:
        """The far end vanishes: what is sent to it is lost from now on."""
        self.nodes = {a: e for a, e in self.nodes.items() if e is not ep}

    def _flush(self) -> None:
        for addr, ep in list(self.nodes.items()):
            for data, dst, _txn in ep.datagrams_to_send():
                pkt = Packet(self.now, addr, dst, data)
                pkt.fate = (self.fault(pkt) or "") if self.fault else ""
                self.wire.append(pkt)
                for _ in range({"drop": 0, "dup": 2}.get(pkt.fate, 1)):
                    heapq.heappush(self._inflight, (self.now + self.delay, next(self._seq), pkt))
            while (item := ep.next_event()) is not None:
                self.events.append((ep, *item))

    def step(self) -> bool:
        """Move the clock to the next arrival or timer and handle it; False when nothing is left."""
        self._flush()
        due = [t for t in (ep.next_timer() for ep in self.nodes.values()) if t is not None]
        arrival = self._inflight[0][0] if self._inflight else None
        when = min(due + ([arrival] if arrival is not None else []), default=None)
        if when is None:
            return False
        self.now = max(self.now, when)
        while self._inflight and self._inflight[0][0] <= self.now:
            _, _, pkt = heapq.heappop(self._inflight)
            ep = self.nodes.get(pkt.dst)
            if ep is not None:
                ep.receive(pkt.data, pkt.src, self.now)
        for ep in list(self.nodes.values()):
            t = ep.next_timer()
            if t is not None and t <= self.now:
                ep.handle_timer(self.now)
        self._flush()
        return True

    def run(self, until: Callable[[], bool] | None = None, limit: float = 600.0) -> None:
        """Step until `until()` holds (or nothing is left to do, or `limit` seconds have passed)."""
        end = self.now + limit
        while not (until and until()) and self.now <= end and self.step():
            pass

    def labels(self, src: tuple[str, int] | None = None, dropped: bool = True) -> list[tuple[float, str]]:
        """(time, label) of what was sent (by `src`), dropped packets included unless `dropped=False`."""
        return [(round(p.time - self.wire[0].time, 3), p.label + (" [lost]" if p.fate == "drop" else ""))
                for p in self.wire if (src is None or p.src == src) and (dropped or p.fate != "drop")]
