"""The report: the one thing every output (terminal, JSON, ladder, JUnit) renders from.

Renderers never compute metrics; everything they show is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..sip.dialogs import CallState  # noqa: F401  (how a dialog ended: decided where SIP is tracked)

SCHEMA_VERSION = "1.13"


class Severity(StrEnum):
    """How bad a finding is, worst first. A str: JSON, filters and --fail-on see the value."""

    CRITICAL = "critical"  # the trunk does not work (e.g. a registrar that takes any password)
    ERROR = "error"  # calls fail or audio is lost
    WARNING = "warning"  # something users may notice, or a risk
    INFO = "info"  # worth knowing, not a fault (busy, hold, asymmetric codecs)

    @property
    def rank(self) -> int:
        """0 for critical .. 3 for info: lower is worse."""
        return _RANK[self]


SEVERITIES = tuple(Severity)  # worst first
_RANK = {s: i for i, s in enumerate(SEVERITIES)}
OPTIONAL = {"optional": True}  # a field left out of the JSON when None (content analysis off: as before)


@dataclass(slots=True)
class Finding:
    """One diagnosis: what is wrong, the evidence, and what to do about it."""

    code: str  # stable identifier, e.g. "sip.malformed", "call.failed.486"
    severity: Severity
    title: str  # one line
    explanation: str  # plain words: what happened and the likely cause
    fix: str = ""  # suggested action
    call_id: str | None = None
    frames: list[int] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)  # addresses, ports, codes, figures
    call: int | None = None  # the number of the call it belongs to (Call.number)
    source_file: str | None = None  # of a set of captures: the file it was found in (null: the one capture)
    capture_point: str | None = None  # of a set of captures or HEP agents: where it was seen

    def __post_init__(self) -> None:
        self.severity = Severity(self.severity)  # a plain "warning" becomes the enum; a typo raises


@dataclass(slots=True)
class FindingGroup:
    """The findings of one code and severity across the report, shown once with the calls they cover."""

    code: str
    severity: Severity
    title: str  # the findings' title when they all share it, else the first one's and how many more
    count: int  # findings in the group
    calls: list[int] = field(default_factory=list)  # numbers of the calls they belong to (none: capture-wide)
    first: Finding | None = None  # the first of them: its explanation, fix, frames and evidence


@dataclass(slots=True)
class LadderStep:
    """One message in a call flow."""

    frame: int
    time: float
    src: str  # "ip:port"
    dst: str
    transport: str  # UDP, TCP, TLS, WS, WSS, SCTP
    label: str  # "INVITE" or "180 Ringing"
    method: str | None  # request method, or the CSeq method of a response
    status: int | None  # response code, None for requests
    cseq: int
    retransmission: bool = False
    sdp: bool = False  # carries an SDP body
    summary: str = ""  # short extra text for ladders (e.g. "a=sendonly", "PCMU")
    side: str = ""  # who sent it: "caller" or "callee" (from the dialog's tags), "" when unknown


@dataclass(slots=True)
class SdpEntry:
    """One m= line of an SDP body seen in the call: what a side said it would send and receive."""

    frame: int
    time: float
    sender: str  # "ip:port" of the SIP message carrying it
    message: str  # "INVITE", "183 Session Progress", "200 OK", "ACK"...
    role: str  # "offer" or "answer" (RFC 3264)
    media: str  # "audio", "video"
    address: str  # connection address (c=)
    port: int
    protocol: str = "RTP/AVP"
    codecs: list[str] = field(default_factory=list)  # "0 PCMU/8000", in preference order
    direction: str = "sendrecv"
    ptime: int | None = None
    rtcp_mux: bool = False
    encrypted: str = ""  # "SDES", "DTLS" or ""
    ice: bool = False
    side: str = ""  # whose media description: "caller" or "callee" (from the SIP message's tags)
    crypto: list[str] = field(default_factory=list)  # SDES suites of its a=crypto lines, in order (keys never)


@dataclass(slots=True)
class RtcpXr:
    """RTCP XR VoIP Metrics (RFC 3611 4.7) the receiver of a stream sent about it: its own figures."""

    loss_pct: float  # lost in the network
    discard_pct: float  # discarded by its jitter buffer
    round_trip_ms: int | None
    end_system_delay_ms: int | None
    r_factor: int | None
    mos_lq: float | None
    mos_cq: float | None
    jitter_buffer_nominal_ms: int
    jitter_buffer_max_ms: int
    reports: int  # XR VoIP Metrics blocks seen for this SSRC


@dataclass(slots=True)
class Srtp:
    """A stream that is SRTP (RFC 3711): how its keys were agreed, whether its packets could be
    checked, and what checking their authentication tags found."""

    keying: str  # "sdes" (a=crypto, RFC 4568), "dtls-srtp" (RFC 5764), "zrtp" (RFC 6189), "unknown"
    checked: bool = False  # a key authenticated its packets (so they can be decrypted too)
    reason: str = ""  # why its packets could not be checked, in words ("" when checked)
    suite: str = ""  # the crypto suite of the key that authenticated it
    key_from: str = ""  # where that key was seen: "sdp", "sdp-tls" (SDP read with the key log), "keys-file"
    packets: int = 0  # packets whose tag was checked
    authenticated: int = 0
    auth_failures: int = 0  # no key authenticates them: a receiver drops them (wrong key, altered)
    replayed: int = 0  # a receiver's replay window drops them (RFC 3711 3.3.2): repeated or too late
    first_failure_frame: int = 0


@dataclass(slots=True)
class Interval:
    """A stretch of time on the capture clock (seconds)."""

    start: float
    end: float


@dataclass(slots=True)
class StreamContent:
    """What a stream's audio held (content analysis: the stream decoded, speech activity per
    rtp/speech.py). Times are capture times; levels relative to full scale (ITU-T G.100.1)."""

    codec: str  # the codec decoded, "" when it could not be
    decoded: bool  # False: see `error`; the figures below are then empty
    side: str = ""  # who sent it: "caller" or "callee" (SIP dialog sides), "" when not known
    error: str = ""  # why the audio could not be analysed
    packets: int = 0  # audio packets decoded (comfort noise and RFC 4733 events are not audio)
    dropped: int = 0  # duplicates and packets too late to put back in order
    comfort_noise: int = 0  # RFC 3389 comfort noise packets: silence by design
    audio_s: float = 0.0  # seconds of audio decoded
    speech_s: float = 0.0  # seconds of talk spurts
    talk_spurts: list[Interval] = field(default_factory=list)  # speech, start to end
    level_dbov: float | None = None  # active speech level: mean power over the talk spurts
    peak_dbfs: float | None = None  # loudest sample
    noise_dbov: float | None = None  # median power of the pauses that carry sound; None: digital silence
    clipped_pct: float = 0.0  # samples at full scale, % of the samples in talk spurts
    silent: bool = False  # nothing reached -60 dBFS: digital silence, comfort noise or inaudible
    digital_silence: list[Interval] = field(default_factory=list)  # runs of exact digital silence >= 1 s
    speech_threshold_dbfs: float | None = None  # the peak a 10 ms frame needed to count as speech


@dataclass(slots=True)
class Stream:
    """One RTP stream (one SSRC, one direction) with the figures tshark's rtp,streams also gives."""

    ssrc: int
    src: str  # "ip:port"
    dst: str
    payload_type: int
    codec: str
    media: str = "audio"  # "audio", "video", "event" (RFC 4733 only) or "other": audio verdicts and MOS need "audio"
    clock_rate: int = 8000
    packets: int = 0
    expected: int = 0
    lost: int = 0
    loss_pct: float = 0.0
    duplicates: int = 0
    out_of_order: int = 0
    sequence_errors: int = 0
    timestamp_jumps: int = 0  # RTP clock jumped > 0.5 s against arrival between consecutive packets
    timestamp_jump_frame: int = 0  # the packet of the first such jump (0: none)
    max_delta_ms: float = 0.0
    max_delta_frame: int = 0  # the packet that arrived max_delta_ms after its predecessor
    mean_jitter_ms: float = 0.0
    max_jitter_ms: float = 0.0
    max_voice_jitter_ms: float = 0.0  # max jitter over voice packets (RFC 4733 events left out); judged
    mean_bitrate_kbps: float = 0.0
    mos: float | None = None
    r_factor: float | None = None
    # the E-model behind mos and r_factor when it is not G.107's narrowband one: "G.107.1-estimate" for
    # G.722 and Opus (wideband scale, estimated codec values; rtp/mos.py); absent for the others
    mos_model: str | None = field(default=None, metadata=OPTIONAL)
    from_sdp: bool = False
    start: float = 0.0
    end: float = 0.0
    first_frame: int = 0
    last_frame: int = 0
    dtmf: str = ""  # RFC 4733 digits seen
    call_id: str | None = None
    # What the receiver of this stream said about it in RTCP reports (RFC 3550 6.4), when captured:
    rtcp_loss_pct: float | None = None  # highest "fraction lost" reported (one report interval)
    rtcp_lost: int | None = None  # "cumulative number of packets lost" in the last report
    rtcp_jitter_ms: float | None = None  # last interarrival jitter reported
    rtcp_rtt_ms: float | None = None  # median round trip: report block seen - its SR seen - DLSR
    rtcp_xr: RtcpXr | None = None  # the receiver's RTCP XR VoIP Metrics for this SSRC (RFC 3611 4.7), last seen
    source_file: str | None = None  # of a set of captures: the file of its first packet (null: the one capture)
    capture_point: str | None = None  # of a set of captures or HEP agents: where it was seen
    srtp: Srtp | None = None  # set when the stream is SRTP (or may be: signalling not readable)
    effective_loss_pct: float = 0.0  # network loss plus what a 60 ms jitter buffer discards: the MOS's loss
    past_limits: bool = False  # its loss, voice jitter or MOS is past the thresholds it was judged by (1.10)
    content: StreamContent | None = field(default=None, metadata=OPTIONAL)  # audio content, when analysed


@dataclass(slots=True)
class Turn:
    """One side stopped speaking and, after a silence, the other started (content analysis)."""

    start: float  # when the silence began: the end of the first side's speech
    gap_ms: float  # the silence
    after: str  # who stopped: "caller" or "callee"
    by: str  # who spoke next


@dataclass(slots=True)
class Overlap:
    """Both sides speaking at once."""

    start: float
    duration_ms: float
    speaking: str  # who had been speaking ("caller" or "callee")
    interrupter: str  # who started while they spoke
    lead_ms: float  # how long `speaking` had been speaking when the interrupter started


@dataclass(slots=True)
class Gaps:
    """Response gaps of one side (its turns' silences): how many and their spread, ms."""

    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(slots=True)
class Conversation:
    """Who spoke when in an answered call, from its audio streams' talk spurts (content analysis).
    Sides are the SIP dialog's: the caller sent the INVITE. Delays are from the 200 OK, ms."""

    caller_first_rtp_ms: float | None = None  # answer to the caller's first RTP packet
    callee_first_rtp_ms: float | None = None
    caller_first_speech_ms: float | None = None  # answer to the caller's first talk spurt
    callee_first_speech_ms: float | None = None  # the answering side's greeting latency
    caller_speech_s: float = 0.0
    callee_speech_s: float = 0.0
    turns: list[Turn] = field(default_factory=list)
    callee_responses: Gaps | None = None  # the callee's gaps after the caller stopped (its response time)
    caller_responses: Gaps | None = None
    overlaps: list[Overlap] = field(default_factory=list)
    overlap_s: float = 0.0


@dataclass(slots=True)
class MediaFigures:
    """One direction of a test call's audio as its verdict reads it (analysis/placed.py): received,
    the Analyzer's stream of it with the packets due after the far end's media stopped counted as
    lost; sent, the far end's last RTCP report about our stream (what it alone measured)."""

    packets: int = 0
    lost: int = 0
    loss_pct: float = 0.0
    missing_at_end: int = 0  # packets due (at the far end's ptime) between the last one and the end
    srtp_dropped: int = 0  # lost as SRTP: came but fail authentication or come past the replay window
    jitter_ms: float = 0.0  # mean RFC 3550 jitter (sent: the far end's last reported)
    max_jitter_ms: float = 0.0  # the voice packets' maximum (received only): what the thresholds judge
    mos: float | None = None
    r: float | None = None
    source: str = ""  # "measured" (the Analyzer's stream), "rtcp" (the far end's reports), "sent" (neither)
    mos_model: str | None = field(default=None, metadata=OPTIONAL)  # as Stream.mos_model

    @property
    def judged_jitter_ms(self) -> float:
        """The jitter the thresholds judge: measured, the voice packets' maximum; else the far end's
        RTCP figure, the only one there is for what we sent."""
        return self.max_jitter_ms if self.source == "measured" else self.jitter_ms


@dataclass(slots=True)
class FarEndReport:
    """The far end's last RTCP receiver report about the stream we sent (RFC 3550 6.4.1), as our
    RTCP socket received it (the only measurement of what reached it)."""

    loss_pct: float  # fraction lost over the report's interval
    lost: int  # cumulative number of packets lost
    jitter_ms: float  # interarrival jitter
    rtt_ms: float | None  # round trip from the report's LSR and DLSR (6.4.1)
    reports: int  # receiver reports about our stream


@dataclass(slots=True)
class Utterance:
    """Something the agent said: a test call's prompt, or the echo's voice agent's greeting or reply."""

    label: str  # the WAV file's name, or the words spoken
    start: float  # when it began playing (capture clock)
    end: float  # when it stopped (its end, or where it was cut off)


@dataclass(slots=True)
class PromptTurn:
    """One prompt a test call said (`call --say`) and the far end's answer to it, from the call's
    content analysis: our stream's talk spurts and the far end's."""

    prompt: str
    start: float  # when we began saying it (capture clock)
    end: float  # when it finished playing
    speech_end: float  # the end of our speech in it (our stream's last talk spurt in it; else `end`)
    response_ms: float | None = None  # our speech's end to the far end's next talk spurt; None: no answer
    overlap_ms: float = 0.0  # the far end spoke while we said it


@dataclass(slots=True)
class VoiceTest:
    """A test call to a voice agent (`call --say`, `--script`, `check` type voice_agent): its
    latencies, from the same speech activity analysis `analyze --content` runs (docs/content.md)."""

    greeting_ms: float | None = None  # the 200 OK to the far end's first speech; None: it never spoke
    prompts: list[PromptTurn] = field(default_factory=list)
    overlap_ms: float = 0.0  # both speaking, over the whole call
    talk_over: bool = False  # media.talk_over: it kept speaking over us
    level_dbov: float | None = None  # the far end's active speech level


@dataclass(slots=True)
class AgentSrtp:
    """The agent's own SRTP (RFC 3711): the suite SDES agreed (RFC 4568) and what its receiver's
    context did with the far end's packets (the echo's only view of them)."""

    suite: str
    received: int = 0  # SRTP packets given to our receiving context
    authenticated: int = 0
    auth_failures: int = 0  # dropped: the far end's key does not authenticate them
    replayed: int = 0  # dropped by the replay window (RFC 3711 3.3.2)


@dataclass(slots=True)
class TargetTry:
    """One server a request was sent to (RFC 3263 4.3), in the order tried, and what happened."""

    name: str  # the host name it came from: the SRV target, or the URI's host
    address: str
    port: int
    transport: str  # udp, tcp, tls
    found: str  # how: "NAPTR+SRV", "SRV", "A", "AAAA", "numeric"
    outcome: str  # "served", "503", "timeout", "unreachable", "skipped" (under its Retry-After)
    detail: str = ""  # one line: the response, the transport error, the Retry-After
    ms: float | None = None  # from the request to this outcome (None: skipped, nothing sent)


@dataclass(slots=True)
class AgentView:
    """A call siptool placed or answered itself: what only its agent knows (set by `call`, `check`
    and `echo`; null in `analyze`), and the verdict on the call read from the Analyzer's figures of
    it with these facts (analysis/placed.py)."""

    role: str = "caller"  # "caller" (call, check) or "callee" (echo)
    media: str = ""  # ip:port our RTP used: which of the call's streams are ours
    codec: str | None = None  # the codec we negotiated and sent
    dtmf_asked: str = ""  # RFC 4733 digits we were asked to send ...
    dtmf_sent: str = ""  # ... and sent
    audio_rtt_ms: float | None = None  # round-trip audio delay by correlation of sent and echoed audio
    far_end: FarEndReport | None = None  # what the far end's RTCP said of the stream we sent
    media_gaps: list[list[float]] = field(default_factory=list)  # [start, end] s with no RTP from the far end
    media_s: float | None = None  # from the start of our media to when we stopped expecting the far end's
    missing_at_end: int = 0  # far end's packets due after its last one came (its media stopped early)
    echoed: int | None = None  # echo: RTP packets sent back
    held_s: float | None = None  # echo: answered, from the 200 OK to the end; else from the INVITE to the end
    outcome: str = ""  # echo: ended, cancelled, rejected, unanswered; by whom in `ended_by`
    ended_by: str = ""  # "local", "remote", "local (no ACK)", "shutdown" (the agent's own view)
    nat: dict[str, Any] = field(default_factory=dict)  # the NAT situation the agent saw (`text` in words)
    notes: list[str] = field(default_factory=list)  # what the agent itself could not do (no SDP answer, BYE unanswered)
    srtp: AgentSrtp | None = None  # the media was SRTP (since 1.13)
    targets: list[TargetTry] = field(default_factory=list)  # caller: the servers the INVITE went to (RFC 3263)
    # the verdict (analysis/placed.py): each direction as judged, one-way audio, every failed limit
    tx: MediaFigures | None = None
    rx: MediaFigures | None = None
    one_way: str | None = None
    problems: list[str] = field(default_factory=list)
    # a voice test (prompts said, the far end listened to): what we said, and its figures (since 1.12)
    said: list[Utterance] | None = field(default=None, metadata=OPTIONAL)
    voice: VoiceTest | None = field(default=None, metadata=OPTIONAL)


@dataclass(slots=True)
class Call:
    """Messages sharing a Call-ID: an INVITE session or a non-INVITE exchange (REGISTER, OPTIONS...)."""

    call_id: str
    number: int = 0  # 1..N for INVITE sessions by start time, then N+1.. for other exchanges: kept by filters
    kind: str = "call"  # "call" for INVITE sessions, else the first method in lower case ("register", ...)
    method: str = ""  # first request method seen
    from_uri: str = ""
    to_uri: str = ""
    from_user: str = ""
    to_user: str = ""
    caller: str = ""  # ip:port that sent the first request
    callee: str = ""  # ip:port it went to
    transport: str = ""
    final_status: int | None = None
    final_reason: str = ""
    state: str = ""  # a CallState: answered, completed, failed, cancelled, in-progress, no-response
    start: float = 0.0
    first_provisional: float | None = None
    ringing: float | None = None
    answer: float | None = None
    end: float | None = None
    pdd_ms: float | None = None  # RFC 6076 session request delay
    answer_ms: float | None = None  # INVITE to 200 OK
    duration_s: float | None = None  # answer to BYE (or to end of capture if still up)
    ended_by: str | None = None  # caller, callee, or None
    end_reason: str = ""
    messages: int = 0
    retransmissions: int = 0
    reinvites: int = 0
    auth_challenges: int = 0
    ack_missing: bool = False  # a 2xx to the INVITE was never ACKed in the capture
    ok_retransmissions: int = 0  # 2xx to the INVITE sent again (a sign the ACK is not arriving)
    dialogs: list[str] = field(default_factory=list)  # to-tags of the (early) dialogs, forks
    requests: dict[str, int] = field(default_factory=dict)
    responses: dict[str, int] = field(default_factory=dict)  # "180 INVITE" -> count
    ladder: list[LadderStep] = field(default_factory=list)
    sdp: list[SdpEntry] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # Of a set of captures (analyze DIR | FILE...) or HEP agents; null for one capture. The same
    # Call-ID seen at two capture points is two calls, one per leg, each with its capture point.
    source_file: str | None = None  # the file of its first message
    capture_point: str | None = None  # a HEP capture agent, or the timeline of files that saw it
    conversation: Conversation | None = field(default=None, metadata=OPTIONAL)  # content analysis, when run
    agent: AgentView | None = None  # a call siptool's own agent placed or answered (since 1.9)


@dataclass(slots=True)
class Metrics:
    """Capture-wide figures, RFC 6076 names where it defines them (see docs/json-schema.md)."""

    calls: int = 0  # INVITE sessions
    answered: int = 0
    failed: int = 0
    cancelled: int = 0
    no_answer: int = 0
    in_progress: int = 0
    session_establishment_ratio: float | None = None  # SER, percent
    session_establishment_effectiveness_ratio: float | None = None  # SEER, percent
    session_success_ratio: float | None = None  # SSR: answered and not dropped / (attempts - 3xx), percent
    session_completion_ratio: float | None = None  # SCR: answered and ended by BYE / attempts, percent
    ineffective_session_attempts: float | None = None  # ISA, percent
    answer_seizure_ratio: float | None = None  # ASR, percent
    pdd_ms: dict[str, float] = field(default_factory=dict)  # mean, median, p95, max
    session_duration_s: dict[str, float] = field(default_factory=dict)  # mean, median, max, total
    dropped: int = 0
    final_codes: dict[str, int] = field(default_factory=dict)  # "486" -> count over INVITE sessions
    methods: dict[str, int] = field(default_factory=dict)  # request method -> messages
    sip_messages: int = 0
    retransmissions: int = 0


@dataclass(slots=True)
class SizingSeries:
    """Channels and attempts over time in equal steps, at most sizing.MAX_STEPS of them whatever the
    capture's length (a day: 1-minute steps), so the series stays small."""

    start: float  # beginning of the first step
    step_s: float
    channels: list[int] = field(default_factory=list)  # most channels held at once within the step
    answered: list[int] = field(default_factory=list)  # most answered calls up at once within the step
    erlangs: list[float] = field(default_factory=list)  # mean channels held over the step (traffic)
    attempts: list[int] = field(default_factory=list)  # INVITE sessions that began in the step
    failures: dict[str, list[int]] = field(default_factory=dict)  # "503" -> sessions that began in the step and ended so


@dataclass(slots=True)
class ConcurrencyBand:
    """Attempts that arrived while `low`..`high` channels were already held, and how many failed so."""

    low: int
    high: int
    attempts: int
    failures: dict[str, int] = field(default_factory=dict)  # "503" -> count
    failure_pct: dict[str, float] = field(default_factory=dict)  # "503" -> percent of the band's attempts


@dataclass(slots=True)
class FailureOnset:
    """Where the failures of one status begin against concurrency: none arrived below `level`."""

    status: int
    count: int  # attempts that ended with this status
    level: int  # fewest channels held when one of them arrived
    attempts_below: int  # attempts that arrived with fewer channels held (none failed so)
    attempts_from: int  # attempts that arrived with `level` or more held
    failure_pct_from: float  # percent of those that ended with this status
    frames: list[int] = field(default_factory=list)  # the first failure responses


@dataclass(slots=True)
class Sizing:
    """Trunk sizing from the capture's INVITE sessions: concurrency, call rate, busy-hour traffic and
    the Erlang-B channel count (definitions in docs/json-schema.md)."""

    window: str  # "busy hour" or "whole capture" (a capture shorter than an hour)
    window_start: float | None = None
    window_end: float | None = None
    attempts: int = 0  # INVITE sessions in the capture
    peak_channels: int = 0  # most channels held at once: a session holds one from INVITE to release
    peak_channels_time: float | None = None
    peak_answered: int = 0  # most answered calls up at once
    peak_answered_time: float | None = None
    cps_peak: int = 0  # most INVITE sessions begun in one 1 s window
    cps_peak_time: float | None = None
    cps_p95: float = 0.0  # 95th percentile over every 1 s window of the capture
    carried_erlangs: float | None = None  # mean channels held over the window
    offered_erlangs: float | None = None  # carried, with the attempts refused for capacity added back
    window_attempts: int = 0  # sessions begun in the window
    window_refused: int = 0  # of those, refused for capacity (503)
    gos: float = 0.01  # grade of service: the blocking probability the channel count is for
    channels: int | None = None  # Erlang-B channels for the offered traffic at that GoS
    headroom_pct: float = 20.0  # traffic growth the next figure allows for
    channels_with_headroom: int | None = None  # Erlang-B channels for the offered traffic grown by headroom_pct
    bands: list[ConcurrencyBand] = field(default_factory=list)
    onsets: list[FailureOnset] = field(default_factory=list)  # per status of ONSET_CODES that occurred
    series: SizingSeries | None = None


@dataclass(slots=True)
class CaptureSummary:
    file: str
    format: str
    compressed: bool = False
    link_types: list[str] = field(default_factory=list)
    packets: int = 0
    bytes: int = 0
    first_time: float | None = None
    last_time: float | None = None
    duration_s: float | None = None
    truncated: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> packets
    sip_packets: int = 0
    tls_packets: int = 0
    tls_decrypted: int = 0  # TLS flow directions a key log opened (--tls-keylog)


@dataclass(slots=True)
class SourceFile:
    """One file of a set of captures: the capture point (timeline) it was read in, and where."""

    file: str
    capture_point: str  # files of one capture point are one timeline, read in order as one capture
    first_frame: int  # its first packet's frame number: frames count on across a timeline's files
    packets: int = 0
    first_time: float | None = None
    last_time: float | None = None
    truncated: str | None = None


@dataclass(slots=True)
class Report:
    capture: CaptureSummary
    calls: list[Call] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    findings: list[Finding] = field(default_factory=list)  # capture-wide findings (not tied to a call)
    streams: list[Stream] = field(default_factory=list)  # media streams that belong to no call
    finding_groups: list[FindingGroup] = field(default_factory=list)  # every finding, grouped (analysis/groups.py)
    sources: list[SourceFile] = field(default_factory=list)  # a set of captures' files (empty: one capture)
    grouping: str = ""  # a set of captures: how its files were put into capture points, in words
    sizing: Sizing | None = None  # trunk sizing (analysis/sizing.py); None without INVITE sessions
    tool: str = "siptool"
    version: str = ""
    schema_version: str = SCHEMA_VERSION

    def all_findings(self) -> list[Finding]:
        out = list(self.findings)
        for call in self.calls:
            out.extend(call.findings)
        return sorted(out, key=lambda f: f.severity.rank)
