"""What `siptool diff A B` found: the same calls seen at two capture points (inside and outside an
SBC, both sides of a B2BUA, before and after a change). Every diff output (terminal, JSON, HTML)
renders from this; analysis/diff.py fills it. JSON schema `siptool.diff/1` (docs/json-schema.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

DIFF_SCHEMA = "siptool.diff/1"


@dataclass(slots=True)
class DiffSide:
    """One capture point: its file and what reading it met."""

    file: str
    packets: int = 0
    sip_messages: int = 0
    calls: int = 0  # INVITE sessions
    first_time: float | None = None
    last_time: float | None = None
    truncated: str | None = None  # why reading stopped early, as analyze says
    malformed: int = 0  # SIP messages that could not be parsed (analyze lists them)


@dataclass(slots=True)
class MessagePair:
    """One message of the call and where it was seen. delay_ms = time on b - time on a, for the same
    message (matched by method or status, CSeq method and order; retransmissions apart)."""

    label: str  # "INVITE", "180 Ringing", "200 OK (BYE)"
    cseq: int  # on a (b's when seen on b only)
    sender: str  # "caller" or "callee" (from the tags), "" when unknown
    frame_a: int | None = None
    frame_b: int | None = None
    time_a: float | None = None
    time_b: float | None = None
    delay_ms: float | None = None  # null: seen on one side only, or hop-by-hop
    direction: str = ""  # "a->b" or "b->a": which point the message passed first (from delay_ms's sign)
    retransmission: bool = False
    hop_by_hop: bool = False  # 100 Trying and the ACK of a failure: each hop makes its own (RFC 3261 16.7, 17.1.1.3)


@dataclass(slots=True)
class Rewrite:
    """A header or SDP field that differs between a and b, once per distinct change in the call."""

    field: str  # "Via", "Contact", "Record-Route", "Route", "Call-ID", "From", "To", "Request-URI",
    # "c=", "m= port", "proto", "codecs", "ptime", "direction", "crypto"
    messages: list[str] = field(default_factory=list)  # labels of the messages where it is so
    a: str = ""
    b: str = ""
    note: str = ""  # "1 added on top", "removed: PCMA", "reordered"
    frame_a: int = 0  # the first message showing it
    frame_b: int = 0


@dataclass(slots=True)
class StreamPair:
    """One RTP stream at both points, and where its loss began (from the sequence numbers each saw)."""

    direction: str  # "caller->callee", "callee->caller" or "" (unknown)
    ssrc_a: int | None = None
    ssrc_b: int | None = None
    paired_by: str = ""  # "ssrc", "ssrc+direction", "direction" (the device re-numbers SSRC), "" (one side)
    src_a: str = ""
    dst_a: str = ""
    src_b: str = ""
    dst_b: str = ""
    codec: str = ""
    packets_a: int = 0
    packets_b: int = 0
    lost_a: int = 0  # expected - received at that point (RFC 3550 A.3, as analyze and tshark count)
    lost_b: int = 0
    upstream: str = ""  # "a" or "b": the point the stream passes first (from the packets' times)
    lost_before: int = 0  # missing at both points: lost before the upstream point (or never sent)
    lost_between: int = 0  # seen at the upstream point, missing downstream: lost between the two
    missed_upstream: int = 0  # seen downstream only: the upstream capture missed them (or another path)
    lost_before_seq: list[int] = field(default_factory=list)  # the first of them (RTP sequence numbers)
    lost_between_seq: list[int] = field(default_factory=list)
    first_between_frame: int = 0  # upstream frame of the first packet lost between


@dataclass(slots=True)
class CallPair:
    """A call seen at a and b (or at one of them only), and how they differ."""

    matched_by: str  # "call-id", "users+time+sdp", "users+time", or "" (seen on one side only)
    match_note: str = ""  # how, in words
    number_a: int | None = None  # the call's number as `analyze` shows it on each capture
    number_b: int | None = None
    call_id_a: str = ""
    call_id_b: str = ""
    from_user: str = ""
    to_user: str = ""
    start_a: float | None = None
    start_b: float | None = None
    final_a: int | None = None
    final_b: int | None = None
    reason_a: str = ""
    reason_b: str = ""
    messages: list[MessagePair] = field(default_factory=list)  # in order of first sighting
    only_a: int = 0  # messages seen on a only
    only_b: int = 0
    rewrites: list[Rewrite] = field(default_factory=list)
    streams: list[StreamPair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be compared, in words


@dataclass(slots=True)
class CaptureDiff:
    """Two captures of the same traffic, call by call."""

    a: DiffSide
    b: DiffSide
    calls: list[CallPair] = field(default_factory=list)  # matched pairs by a's start, then a only, then b only
    matched: int = 0
    paired_by: dict[str, int] = field(default_factory=dict)  # "call-id" -> pairs made so
    only_a: int = 0  # calls seen on a only
    only_b: int = 0
    notes: list[str] = field(default_factory=list)
    schema: str = DIFF_SCHEMA
    tool: str = "siptool"
    version: str = ""
