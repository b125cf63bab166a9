"""A registration, sans-I/O (RFC 3261 10.2): the transaction user that keeps one binding alive on
an Endpoint. One Call-ID and an increasing CSeq for the binding (10.2.4), the digest answer to
401/407 (a second challenge with a fresh nonce that is not stale means the credentials were
refused), a refresh at half the granted expiry and at least `refresh_margin` s before it runs out,
and Expires: 0 to unregister (10.2.2). Once a response shows through received/rport that the
registrar sees us at another address (NAT, RFC 3581), later REGISTERs carry it in Contact: the
endpoint learns it, the Contact is the endpoint's.

With `servers` (a new Failover for each REGISTER outcome: the registrar located by RFC 3263), a
REGISTER that meets a transport error, no response (timer F, or `target_timeout`) or a 503 goes
to the next server (4.3), and the Exchange lists each server tried.

Each REGISTER's outcome, after its challenges, is an Exchange, queued as an event."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..sip import build
from ..sip.auth import Credentials, DigestAnswer, DigestRefused
from ..sip.message import SipMessage, param
from .endpoint import Addr, Endpoint, TransactionUser
from .failover import Failover, Outcome, retry_after

MAX_ATTEMPTS = 3  # REGISTERs for one outcome: the first and two answers to challenges


@dataclass
class Exchange:
    """The end of one non-INVITE request: final status, round trip, what authentication happened."""

    status: int | None = None
    reason: str = ""
    rtt_ms: float | None = None
    challenged: str | None = None  # "401"/"407" when a challenge was answered
    algorithm: str | None = None  # digest algorithm of the answered challenge
    expires: int | None = None  # REGISTER: expiry the registrar granted
    contact: str = ""  # REGISTER: the Contact we registered
    bindings: list[str] = field(default_factory=list)  # REGISTER 2xx: every Contact the registrar holds
    error: str = ""
    at: float = field(default_factory=time.time)
    targets: list = field(default_factory=list)  # report.model.TargetTry: each server it went to (RFC 3263)


def granted_expiry(resp: SipMessage, contact_uri: str = "") -> int | None:
    """Expiry of our binding in a 2xx: our Contact's ;expires, else any Contact's, else Expires."""
    best = None
    for c in resp.get_all("contact"):
        e = param(c, "expires")
        if e and e.isdigit():
            if contact_uri and contact_uri in c:
                return int(e)
            best = int(e) if best is None else best
    if best is None and (resp.get("expires") or "").strip().isdigit():
        best = int(resp.get("expires").strip())
    return best


class RegisterSession(TransactionUser):
    def __init__(self, ep: Endpoint, registrar: str, aor: str, user: str, password: str | None, target: Addr,
                 expires: int = 300, refresh_margin: float = 5.0, servers: Callable[[], Failover] | None = None,
                 target_timeout: float | None = None) -> None:
        self.ep, self.registrar, self.aor, self.user, self.target = ep, registrar, aor, user, target
        self.expires, self.refresh_margin = expires, refresh_margin
        self.servers, self.target_timeout = servers, target_timeout
        self.failover: Failover | None = None
        self.creds = Credentials(user, password) if password is not None else None
        self.call_id = build.new_call_id(ep.local[0])
        self.tag = build.new_tag()
        self.cseq = 0
        self.history: list[Exchange] = []  # every REGISTER outcome, in order
        self.pending: Exchange | None = None  # the outcome being worked out
        self._txn = None
        self._digest: DigestAnswer | None = None
        self._auth: list[tuple[str, str]] = []
        self._asked = 0  # the expiry asked for by the REGISTER in progress
        self._attempts = 0
        self._began = 0.0

    @property
    def refreshes(self) -> int:
        return max(0, len([e for e in self.history if e.expires]) - 1)

    @property
    def busy(self) -> bool:
        return self.pending is not None

    def next_refresh(self, granted: int) -> float:
        """Seconds until the refresh: half the granted time, and at least `refresh_margin` before expiry."""
        return max(0.5, min(granted / 2, granted - self.refresh_margin))

    def register(self, now: float, expires: int) -> None:
        """One REGISTER outcome (its challenges answered on the way); 0 unregisters."""
        self.ep.call_at(self, "refresh", None)
        self.pending = Exchange()
        self._asked, self._attempts, self._began = expires, 0, now
        self._digest = DigestAnswer(self.creds, "REGISTER", self.registrar) if self.creds is not None else None
        if self.servers is not None:
            self.failover = self.servers()
            server = self.failover.start(now)
            self.pending.targets = self.failover.tries
            if server is None:
                self.pending.error = f"no server to send to: {self.failover.summary()}"
                self._done(now)
                return
            self.target = server.addr()
        self._send(now)

    def stop(self, now: float, unregister: bool = True) -> bool:
        """No more refreshes; with `unregister` and a binding granted, REGISTER with Expires: 0.
        Whether a REGISTER went out."""
        self.ep.call_at(self, "refresh", None)
        if unregister and any(e.expires for e in self.history) and not self.busy:
            self.register(now, 0)
            return True
        return False

    def _send(self, now: float) -> None:
        self.cseq += 1
        self._attempts += 1
        ex = self.pending
        ex.contact = self.ep.contact(self.user)  # the public address once a response showed NAT
        req = build.request("REGISTER", self.registrar, via_value=self.ep.via(),
                            from_value=f"<{self.aor}>;tag={self.tag}", to_value=f"<{self.aor}>", call_id=self.call_id,
                            cseq=self.cseq, contact=ex.contact, headers=[("expires", str(self._asked))] + self._auth)
        self._txn = self.ep.request(req, self.target, now, self)
        f = self.failover
        if f is not None and not f.settled and f.left and self.target_timeout:
            self.ep.call_at(self, "target_timeout", now + self.target_timeout)

    def _fail_over(self, now: float, outcome: Outcome, detail: str, retry_s: int | None = None) -> bool:
        """The REGISTER failed at this server: the same request, a new transaction, to the next one."""
        f = self.failover
        if f is None or f.settled:
            return False
        self.ep.call_at(self, "target_timeout", None)
        server = f.failed(now, outcome, detail, retry_s)
        if server is None:
            if len(f.tries) > 1:
                self.pending.error = f"dead trunk: none of {len(f.tries)} servers took the REGISTER: {f.summary()}"
            return False
        self.target = server.addr()
        self._attempts -= 1  # not an answer to a challenge
        self._send(now)
        return True

    def on_response(self, txn, msg, now) -> None:
        f = self.failover
        if txn is self._txn and f is not None and not f.settled:
            self.ep.call_at(self, "target_timeout", None)
            if msg.status == 503 and self._fail_over(now, Outcome.REFUSED, f"503 {msg.reason}", retry_after(msg)):
                return
            if msg.status not in (100, 503):
                f.served(now, f"{msg.status} {msg.reason}")
        if txn is not self._txn or (msg.status or 0) < 200:
            return
        ex = self.pending
        if msg.status in (401, 407) and self._digest is not None and self._attempts < MAX_ATTEMPTS:
            try:
                self._auth = [self._digest.answer(msg)]
            except DigestRefused:
                pass  # the challenge is the final answer: the exchange says which
            else:
                ex.challenged, ex.algorithm = self._digest.challenged, self._digest.algorithm
                self._send(now)
                return
        ex.status, ex.reason = msg.status, msg.reason
        if 200 <= msg.status < 300:
            ex.bindings = msg.get_all("contact")
            if self._asked:
                ex.expires = granted_expiry(msg, ex.contact.strip("<>").split(";")[0])
        self._done(now)

    def on_failure(self, txn, why, now) -> None:
        if txn is self._txn:
            outcome = Outcome.TIMEOUT if "(timer " in why else Outcome.UNREACHABLE
            if self._fail_over(now, outcome, why.split(" (timer ")[0]):
                return
            self.pending.error = self.pending.error or why
            self._done(now)

    def on_timer(self, name, now) -> None:
        if name == "refresh" and not self.busy:
            self.register(now, self.expires)
        elif name == "target_timeout" and self._txn is not None and self._txn.live:
            self.ep.abandon(self._txn)
            if not self._fail_over(now, Outcome.TIMEOUT, f"no response within {self.target_timeout:g} s"):
                self.pending.error = self.pending.error or f"no response within {self.target_timeout:g} s"
                self._done(now)

    def _done(self, now: float) -> None:
        ex, self.pending = self.pending, None
        ex.rtt_ms = round((now - self._began) * 1000, 2)
        self.history.append(ex)
        self.ep.emit(self, ex)
        if ex.status and 200 <= ex.status < 300 and ex.expires and self._asked:
            self.ep.call_at(self, "refresh", now + self.next_refresh(ex.expires))
