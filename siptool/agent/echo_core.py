"""What the echo agent answers, sans-I/O: the transaction user of every request that opens nothing
known on its endpoint (endpoint.py `on_request`). OPTIONS get 200; REGISTER a minimal registrar's
answer (RFC 3261 10.3, registrar.py), behind a digest challenge when a user is configured; an INVITE
is challenged (401), refused (a configured status, 503 over the call limit, 488 with no common
codec, RFC 3264 6.1) or becomes a call (session.UasSession) on a media port the driver opens.
Anything else: 481 for BYE and CANCEL of no call, 405 otherwise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..sip import build
from ..sip.auth import Authenticator
from . import sdp
from .endpoint import Endpoint
from .registrar import Bindings
from .session import ECHO_ALLOW, UasSession

MAX_CALLS = 5000  # calls in progress at once; beyond: 503 with Retry-After (memory follows the calls)


@dataclass
class EchoPolicy:
    """How the echo agent answers (siptool echo's options)."""

    codecs: tuple[str, ...] = tuple(c.upper() for c in sdp.SUPPORTED)  # what it accepts, by preference
    auth: Authenticator | None = None
    reject: int | None = None  # answer every INVITE with this status (failure-path tests)
    retry_after: int | None = None  # with it a rejecting 503 carries Retry-After (RFC 3261 21.5.4)
    ring: float = 0.0  # seconds of 180 Ringing before the 200
    hangup_after: float | None = None  # BYE this long after the answer
    max_calls: int = MAX_CALLS


class EchoCore:
    """`open_media(session)` is the driver's: it gives the new call a media port (raising OSError
    when none is left) and returns it."""

    def __init__(self, ep: Endpoint, policy: EchoPolicy, open_media: Callable[[UasSession], int]) -> None:
        self.ep, self.policy, self.open_media = ep, policy, open_media
        self.bindings = Bindings()  # REGISTER (bounded; answered, never used for routing)
        self.over_limit = 0  # INVITEs refused (503) for max_calls
        ep.on_request = self.on_request

    def _respond(self, txn, msg, status: int, now: float, **kw) -> None:
        self.ep.respond(txn, build.response(msg, status, **kw), now)

    def on_request(self, txn, msg, addr, now) -> None:
        m = msg.method
        if m == "OPTIONS":
            self._respond(txn, msg, 200, now, headers=[("allow", ECHO_ALLOW), ("accept", "application/sdp")])
        elif m == "INVITE" and msg.to_tag is None:
            self._invite(txn, msg, addr, now)
        elif m == "REGISTER":
            self._register(txn, msg, now)
        elif m in ("INVITE", "BYE", "CANCEL"):
            self._respond(txn, msg, 481, now)
        else:
            self._respond(txn, msg, 405, now, headers=[("allow", ECHO_ALLOW)])

    def _invite(self, txn, msg, addr, now) -> None:
        p = self.policy
        if p.auth is not None:
            verdict = p.auth.check("INVITE", msg.get("authorization"))
            if verdict != "ok":
                hdrs = [("www-authenticate", c) for c in p.auth.challenges(stale=verdict == "stale")]
                self._respond(txn, msg, 401, now, headers=hdrs)
                return
        if p.reject:
            retry = [("retry-after", str(p.retry_after))] if p.reject == 503 and p.retry_after else []
            self._respond(txn, msg, p.reject, now, headers=retry)
            return
        if len(self.ep.dialogs) >= p.max_calls:
            self.over_limit += 1
            self._respond(txn, msg, 503, now, headers=[("retry-after", "10")])
            return
        offer = sdp.parse(msg.body)
        chosen = sdp.negotiate(offer, p.codecs) if offer else None
        if chosen is None:
            self._respond(txn, msg, 488, now, headers=[("warning", '304 siptool "no common codec"')])
            return
        call = UasSession(self.ep, txn, addr, offer, chosen, p.ring, p.hangup_after)
        try:
            port = self.open_media(call)
        except OSError as exc:  # no media port left
            call.reject(now, 503, f"local ({exc.strerror or exc})")
            return
        call.start(now, port)

    def _register(self, txn, msg, now) -> None:
        """A minimal registrar (RFC 3261 10.3). With a user configured: 401 with a digest challenge, 401
        stale=true for an old nonce, 403 when the answer to our nonce is wrong (wrong password), else
        the binding. Without one, every REGISTER is accepted. The 200 lists the AOR's bindings with
        their expires, and Expires the time granted (10.3 step 8)."""
        auth = self.policy.auth
        if auth is not None:
            header = msg.get("authorization")
            verdict = auth.check("REGISTER", header)
            if verdict == "fail" and auth.issued(header):
                self._respond(txn, msg, 403, now, to_tag=build.new_tag())
                return
            if verdict != "ok":
                hdrs = [("www-authenticate", c) for c in auth.challenges(stale=verdict == "stale")]
                self._respond(txn, msg, 401, now, to_tag=build.new_tag(), headers=hdrs)
                return
        v = self.bindings.update(msg.get("to") or "", msg.get_all("contact"), msg.get("expires"), now)
        hdrs = [("contact", f"<{uri}>;expires={left}") for uri, left in v.bindings]
        if v.granted is not None:
            hdrs.append(("expires", str(v.granted)))
        self._respond(txn, msg, v.status, now, reason=v.reason, to_tag=build.new_tag(), headers=hdrs)
