"""What a test call is asked to do (CallOptions, Thresholds), checked before anything is sent."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..analysis.thresholds import Thresholds
from ..errors import SiptoolError
from ..rtp.packet import DTMF_EVENTS
from ..rtp.srtp import SUITES
from ..status import ExitStatus
from ..sip import build
from . import inputs, prompts, script, sdes, sdp, stun
from .dns import dns_server
from .media import read_wav
from .rtpsession import dtmf_seconds
from .transport import TlsOptions


SECURE = ("tls", "wss")  # transports over TLS (RFC 3261 26.2, RFC 7118 WSS)


class AgentError(SiptoolError):
    """A test call, OPTIONS or REGISTER that could not be done (exit 1: the trunk's side)."""

    exit_code = ExitStatus.FAILED


@dataclass
class CallOptions:
    uri: str
    transport: str | None = None  # udp/tcp/tls/ws/wss; default from the URI (transport=, sips:) else udp
    from_uri: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    proxy: str | None = None
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    duration: float | None = 5.0
    dtmf: str = ""
    play: str | None = None
    record: str | None = None
    signal: str = "speech"
    local_ip: str | None = None  # None: the source address of the route to the first hop
    public_ip: str | None = None  # advertise this address in Contact and SDP (NAT)
    stun: str | None = None  # HOST[:PORT] of a STUN server to learn the public address from
    t1: float = 0.5
    t2: float = 4.0
    insecure: bool = False
    ca_file: str | None = None
    sni: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cancel_after: float | None = None
    hold: bool = False
    pcap: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    no_answer_timeout: float = 60.0  # CANCEL when no final response after this long
    content: bool = True  # the call's Analyzer decodes its audio: who spoke when (docs/content.md)
    # A voice test (agent/script.py): prompts to say (--say), a fixed pause between them (--pause), or a
    # script file (--script); `voice` listens to the far end's greeting even without prompts.
    says: tuple[str, ...] = ()
    pause: float | None = None
    script: str | None = None
    voice: bool = False
    steps: list = field(default_factory=list, init=False)  # agent/script.Step, read by check()
    prompts: dict = field(default_factory=dict, init=False, repr=False)  # text -> agent/prompts.Prompt
    srtp: str = "off"  # mandatory, optional (best effort) or off (agent/sdes.py)
    srtp_suites: tuple[str, ...] = sdes.OFFERED  # SDES suites offered, in order of preference
    tls_keylog: str | None = None  # TLS session keys to this file (NSS key log; SSLKEYLOGFILE when None)
    dns_server: str | None = None  # ADDR[:PORT]: the DNS server RFC 3263's lookups ask (default: the system's)
    target_timeout: float | None = None  # fail over to the next server after this long without a response
    only: tuple[str, int] | None = None  # of the servers located, send to this one only (a check of each)
    unreachable: tuple[tuple[str, int], ...] = ()  # servers sent nothing, as if down (a failover check)

    def tls(self) -> TlsOptions:
        return TlsOptions(self.insecure, self.ca_file, self.sni, self.cert_file, self.key_file, self.tls_keylog)

    def check(self) -> None:
        """Every input checked before anything is sent (SiptoolError, exit 2, on the first bad one)."""
        hop, kind = _hop(self)
        if self.from_uri:
            inputs.sip_uri(self.from_uri)
        for c in self.codecs:
            if c.upper() not in sdp.PT:
                raise SiptoolError(f"codec {c!r} is not supported: use {', '.join(sdp.SUPPORTED)}")
        if self.duration is not None:
            inputs.number("--duration", self.duration, 0, 86400, above=True, unit="s")
        inputs.number("--t1", self.t1, 0, 30, above=True, unit="s")
        inputs.number("--t2", self.t2, 0, 300, above=True, unit="s")
        if self.cancel_after is not None:
            inputs.number("cancel after", self.cancel_after, 0, 3600, unit="s")
        inputs.number("no-answer timeout", self.no_answer_timeout, 0, 3600, above=True, unit="s")
        if self.target_timeout is not None:
            inputs.number("--target-timeout", self.target_timeout, 0, 3600, above=True, unit="s")
        dns_server(self.dns_server)
        th = self.thresholds
        inputs.number("--mos", th.mos, 1, 5)
        inputs.number("--loss", th.loss_pct, 0, 100, unit="%")
        inputs.number("--jitter", th.jitter_ms, 0, 10000, unit="ms")
        inputs.number("--pdd", th.pdd_ms, 0, 3_600_000, unit="ms")
        inputs.number("--max-gap", th.media_gap_s, 0.1, 3600, unit="s")
        bad = set(self.dtmf.upper()) - set(DTMF_EVENTS)
        if bad:
            raise SiptoolError(f"--dtmf: not DTMF digits: {''.join(sorted(bad))} (use 0-9 * # A-D)")
        if self.dtmf and self.duration is not None:
            need = dtmf_seconds(len(self.dtmf), dtmf_start(self.duration))
            if need > self.duration:
                raise SiptoolError(f"--dtmf {self.dtmf}: {len(self.dtmf)} digits need {need:.2f} s of media, "
                                   f"more than --duration {self.duration:g} s")
        srtp_options(self.srtp, self.srtp_suites)
        if self.local_ip:
            inputs.local_address("--local-ip", self.local_ip)
        if self.public_ip:
            inputs.ip_address("--public-ip", self.public_ip)
        if self.stun:
            if kind != "udp":
                raise SiptoolError(f"--stun works for UDP only (the call uses {kind.upper()})")
            if self.public_ip:
                raise SiptoolError("give --public-ip or --stun, not both")
            inputs.host_port("--stun", self.stun, stun.DEFAULT_PORT)
        if self.play:
            read_wav(inputs.readable("--play", self.play))
        self._voice_steps()
        if self.tls_keylog and kind not in SECURE:
            raise SiptoolError(f"--tls-keylog: the call uses {kind.upper()}, not TLS: there are no TLS keys to log")
        for name, path in (("--record", self.record), ("--pcap", self.pcap), ("--tls-keylog", self.tls_keylog)):
            if path:
                inputs.writable(name, path)
        for name, path in (("--ca-file", self.ca_file), ("--cert", self.cert_file), ("--key", self.key_file)):
            if path:
                inputs.readable(name, path)
        if kind in SECURE:
            try:
                self.tls().client_context()
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise SiptoolError(f"TLS: cannot load --cert/--key/--ca-file: {exc}") from None


    def _voice_steps(self) -> None:
        """The voice test's steps and prompts (read and spoken now: before anything is sent)."""
        if self.pause is not None:
            inputs.number("--pause", self.pause, 0, 3600, unit="s")
            if not self.says:
                raise SiptoolError("--pause goes with --say (the pause between prompts)")
        if self.script and (self.says or self.pause is not None):
            raise SiptoolError("give --script or --say/--pause, not both")
        if self.script:
            path = inputs.readable("--script", self.script)
            try:
                text = open(path, encoding="utf-8").read()
            except (OSError, ValueError) as exc:
                raise SiptoolError(f"cannot read --script {path}: {exc}") from None
            base = os.path.dirname(os.path.abspath(path))  # a script's WAV files are beside it
            self.steps = [script.Step(st.kind, os.path.join(base, st.text), st.seconds)
                          if st.kind is script.Kind.SAY and prompts.is_file(st.text) else st
                          for st in script.parse(text, path)]
        elif self.says or self.voice:
            self.steps = script.from_options(list(self.says), self.pause)
        if self.steps:
            self.content = True  # the figures come from content analysis
            where = "--script" if self.script else "--say"
            self.prompts = prompts.load_all([s.text for s in self.steps if s.kind is script.Kind.SAY], where)


def srtp_options(mode: str, suites: tuple[str, ...]) -> None:
    """--srtp and --srtp-suites (SiptoolError, exit 2, when either is not known)."""
    if mode not in tuple(sdes.SrtpMode):
        raise SiptoolError(f"--srtp {mode}: use mandatory, optional or off")
    if not suites:
        raise SiptoolError("--srtp-suites: name at least one suite")
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise SiptoolError(f"--srtp-suites: unknown suite {unknown[0][:40]!r} (known: {', '.join(SUITES)})")


def dtmf_start(duration: float | None) -> float:
    """When the first digit goes out: 1 s after the answer, or a quarter into a shorter call."""
    return min(1.0, (duration or 4.0) / 4)


def _hop(o: CallOptions) -> tuple[build.Uri, str]:
    target = inputs.sip_uri(o.uri)
    hop = inputs.sip_uri(o.proxy) if o.proxy else target
    kind = (o.transport or hop.transport or ("tls" if hop.scheme == "sips" else "udp")).lower()
    if kind not in ("udp", "tcp", "tls", "ws", "wss"):
        raise SiptoolError(f"unknown transport {kind!r}: use udp, tcp, tls, ws or wss")
    return hop, kind
