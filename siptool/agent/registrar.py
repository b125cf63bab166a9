"""A minimal registrar's location service (RFC 3261 10.3): address-of-record -> contacts, each with an
expiry. Sans-I/O: `update()` takes the REGISTER's To, Contact and Expires values and `now`, and returns
the status and the bindings to list in the response. Memory is bounded: at most `max_aors` records of
`max_contacts` contacts each; past that the oldest record (or contact) gives way, expired ones first.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SiptoolError
from ..sip.message import param
from ..sip.uri import name_addr
from .inputs import sip_uri as parse_uri

DEFAULT_EXPIRES = 3600  # RFC 3261 10.2.1.1: what a registrar grants when the request names none
MAX_EXPIRES = 3600  # 10.3 step 7: a registrar may shorten the requested expiry


@dataclass(frozen=True)
class Verdict:
    """The response to send: status, reason, and the AOR's current bindings as (contact URI, seconds left)."""

    status: int
    reason: str
    bindings: tuple[tuple[str, int], ...] = ()
    granted: int | None = None  # expiry granted to the request's contacts (Expires of the 200)


def aor_of(to_value: str) -> str:
    """The canonical address-of-record of a To value (10.3 step 5): scheme:user@host, no port/params."""
    uri = parse_uri(name_addr(to_value)[1])
    return f"{uri.scheme}:{uri.user}@{uri.host.lower()}" if uri.user else f"{uri.scheme}:{uri.host.lower()}"


def _seconds(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() else None


class Bindings:
    def __init__(self, max_aors: int = 1000, max_contacts: int = 10, max_expires: int = MAX_EXPIRES) -> None:
        self.max_aors, self.max_contacts, self.max_expires = max_aors, max_contacts, max_expires
        self._aors: dict[str, dict[str, float]] = {}  # aor -> {contact URI: expiry time}, oldest first

    def __len__(self) -> int:
        return sum(len(c) for c in self._aors.values())

    def current(self, aor: str, now: float) -> tuple[tuple[str, int], ...]:
        contacts = self._aors.get(aor, {})
        for uri in [u for u, t in contacts.items() if t <= now]:
            del contacts[uri]
        return tuple((u, max(1, int(t - now + 0.5))) for u, t in contacts.items())

    def update(self, to_value: str, contacts: list[str], expires: str | None, now: float) -> Verdict:
        """Apply one REGISTER (10.3 steps 5-8): no Contact is a query; `*` with Expires: 0 removes every
        binding of the AOR; a contact's expires parameter beats the Expires header; 0 removes it."""
        try:
            aor = aor_of(to_value)
        except SiptoolError:
            return Verdict(400, "Bad To")
        header = _seconds(expires)
        if any(c.strip() == "*" for c in contacts):
            if len(contacts) != 1 or header != 0:  # 10.3 step 6
                return Verdict(400, "Invalid Wildcard")
            self._aors.pop(aor, None)
            return Verdict(200, "OK", granted=0)
        granted = None
        for value in contacts:
            try:
                uri = name_addr(value)[1]
                parse_uri(uri)
            except SiptoolError:
                return Verdict(400, "Bad Contact")
            seconds = _seconds(param(value, "expires"))
            seconds = min(self.max_expires, seconds if seconds is not None else
                          header if header is not None else DEFAULT_EXPIRES)
            self._bind(aor, uri, seconds, now)
            granted = seconds if granted is None else max(granted, seconds)
        return Verdict(200, "OK", self.current(aor, now), granted)

    def _bind(self, aor: str, uri: str, seconds: int, now: float) -> None:
        contacts = self._aors.pop(aor, {})
        self._aors[aor] = contacts  # the newest record last: the oldest gives way first
        contacts.pop(uri, None)
        if seconds > 0:
            contacts[uri] = now + seconds
        self.current(aor, now)
        while len(contacts) > self.max_contacts:
            del contacts[next(iter(contacts))]
        if not contacts:
            self._aors.pop(aor, None)
            return
        if len(self._aors) > self.max_aors:
            for other in [a for a in self._aors if a != aor]:
                if not self.current(other, now):
                    del self._aors[other]
            while len(self._aors) > self.max_aors:
                del self._aors[next(a for a in self._aors if a != aor)]
