"""What the agent's sessions say happened, as typed events: the call log, the live board and the echo
log (report/agent_view.py) read these, never strings to parse. `t_ms` is the time since the call's
first INVITE on the clock the tap records (so a step's time equals the Analyzer's figure for it);
None for what happens outside a call (the NAT probe before it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    call_id: str
    t_ms: float | None


# --- shown in the call log -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sent(Event):
    """A SIP message we sent: a request (`method`) or a response (`status`, `reason`)."""

    method: str = ""
    status: int | None = None
    reason: str = ""
    note: str = ""  # "sendonly" for a hold re-INVITE, "NAT probe" for the OPTIONS before a call
    initial: bool = False  # the call's INVITE (not a re-INVITE)


@dataclass(frozen=True, slots=True)
class Received(Event):
    """A SIP message that came: a request (`method`) or a response to our `method` (`status`, `reason`)."""

    method: str = ""
    status: int | None = None
    reason: str = ""
    note: str = ""  # the request a response answers when not the call's INVITE ("BYE", "CANCEL")


@dataclass(frozen=True, slots=True)
class MediaStarted(Event):
    codec: str = ""
    address: str = ""
    port: int = 0
    srtp: str = ""  # the SRTP suite agreed (RFC 4568), "" for plain RTP


@dataclass(frozen=True, slots=True)
class MediaStopped(Event):
    """No RTP from the far end for `seconds` (the media gap threshold) while the call is up."""

    seconds: float = 0.0
    never: bool = False  # none came at all since the answer


@dataclass(frozen=True, slots=True)
class MediaResumed(Event):
    pass


@dataclass(frozen=True, slots=True)
class PromptsDone(Event):
    """A test call's script (agent/script.py) has played and heard everything it was to: hang up."""


@dataclass(frozen=True, slots=True)
class Said(Event):
    """We started saying a prompt (or the echo's voice agent its greeting or a reply)."""

    text: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Note(Event):
    """A step in words: a failure of the transport or of a transaction, what the NAT probe learned."""

    text: str = ""


# --- for the drivers (what to do next) ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Answered(Event):
    """The call is up with this media (address None: no usable SDP answer, see `problem`)."""

    codec: str | None = None
    pt: int | None = None
    address: str | None = None
    port: int = 0
    dtmf_pt: int | None = None
    ptime_ms: int | None = None
    problem: str = ""
    fmtp: str = ""  # the far end's fmtp for the payload type (RFC 7587: Opus FEC)
    srtp: object = None  # agent/sdes.Keys when the media is SRTP


@dataclass(frozen=True, slots=True)
class Ended(Event):
    """The session is over: the driver stops its media and reads its figures."""


LOGGED = (Sent, Received, MediaStarted, MediaStopped, MediaResumed, Said, Note)
