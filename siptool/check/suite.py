"""Interop suites: a TOML file naming the target, credentials (from the environment), thresholds and checks.

`load_suite(path)` validates everything up front so a typo fails in a second, not after a 35 s call.
Passwords never come from the file or argv: `password_env` names an environment variable.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..analysis.thresholds import LIMITS, Thresholds
from ..errors import SiptoolError
from ..sip.uri import UriError, parse_uri, with_user  # noqa: F401 - with_user: re-exported
from ..agent.dns import dns_server
from .builtin import CHECKS

TRANSPORTS = ("udp", "tcp", "tls")


@dataclass
class Target:
    """Where checks go (RFC 3261 19.1 SIP URI) and who we are."""

    uri: str  # request URI of test calls, e.g. sip:echo@pbx.example.com:5060
    transport: str = "udp"  # "": as RFC 3263 finds it (NAPTR, SRV) for a target named by its domain
    registrar: str = ""  # REGISTER request URI (RFC 3261 10.2); default: sip:<host of uri>
    user: str = ""  # digest username (and From user unless from_uri is set)
    password_env: str = ""  # the environment variable that holds the password
    from_uri: str = ""
    proxy: str = ""  # outbound proxy URI
    domain: str = ""
    insecure: bool = False  # TLS: do not verify the certificate
    tls_uri: str = ""  # target for the TLS check; default: uri with sips: and port 5061
    ca_file: str = ""  # TLS: CA bundle (PEM) that signed the target's certificate
    local: str = ""  # local bind address ip[:port]
    dns_server: str = ""  # ADDR[:PORT] of the DNS server that locates the target (RFC 3263); "": the system's
    target_timeout: float = 0.0  # s without a response before the next server (0: timer B/F)

    @property
    def password(self) -> str | None:
        """The password from the environment (None when the suite names no variable)."""
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise SiptoolError(f"the suite reads the password from ${self.password_env}, which is not set")
        return value

    @property
    def host(self) -> str:
        return parse_uri(self.uri).host

    @property
    def port(self) -> int | None:
        return parse_uri(self.uri).port


@dataclass
class CheckSpec:
    """One [[check]] entry: its type, a display name and its options."""

    type: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    timeout: float = 60.0

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass
class Suite:
    name: str
    target: Target
    thresholds: Thresholds
    checks: list[CheckSpec]
    path: str = ""

    def select(self, only: list[str] | None = None) -> list[CheckSpec]:
        """The checks to run: all, or those whose name or type is in `only`. A name in `only` that
        matches no check is a bad argument (a typo must not turn into a run that tests nothing)."""
        if not only:
            return list(self.checks)
        known = {c.name for c in self.checks} | {c.type for c in self.checks}
        unknown = [o for o in only if o not in known]
        if unknown:
            names = ", ".join(c.name for c in self.checks)
            types = sorted({c.type for c in self.checks} - {c.name for c in self.checks})
            raise SiptoolError(f"--only {unknown[0]}: no such check in {self.path or 'the suite'}; its checks: "
                               f"{names}" + (f" (types: {', '.join(types)})" if types else ""))
        return [c for c in self.checks if c.name in only or c.type in only]


def load_suite(path: str | os.PathLike) -> Suite:
    """Read and validate a suite file. Raises SiptoolError with the offending key on any problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SiptoolError(f"no suite file {p} (siptool check --init writes an example)") from None
    except tomllib.TOMLDecodeError as exc:
        raise SiptoolError(f"{p}: not valid TOML: {exc}") from None
    return parse_suite(data, str(p))


def parse_suite(data: dict, path: str = "<suite>") -> Suite:
    unknown = set(data) - {"name", "target", "thresholds", "check"}
    if unknown:
        raise SiptoolError(f"{path}: unknown section {sorted(unknown)[0]!r} (expected target, thresholds, check)")
    t = data.get("target")
    if not isinstance(t, dict) or not t.get("uri"):
        raise SiptoolError(f"{path}: [target] needs uri = \"sip:user@host[:port]\"")
    if "password" in t:
        raise SiptoolError(f"{path}: never put a password in the suite; set password_env = \"VAR\" and export VAR")
    keys = {"from": "from_uri"}
    fields = set(Target.__dataclass_fields__)
    kwargs = {}
    for key, value in t.items():
        name = keys.get(key, key)
        if name not in fields:
            raise SiptoolError(f"{path}: unknown [target] key {key!r}")
        kwargs[name] = value
    target = Target(**kwargs)
    for key in ("uri", "registrar", "from_uri", "tls_uri"):
        _check_uri(path, f"[target] {'from' if key == 'from_uri' else key}", getattr(target, key))
    target.transport = target.transport.lower()
    if target.transport not in (*TRANSPORTS, ""):
        raise SiptoolError(f"{path}: transport must be one of {', '.join(TRANSPORTS)} (or \"\": as DNS says)")
    if target.dns_server:
        try:
            dns_server(target.dns_server)
        except SiptoolError as exc:
            raise SiptoolError(f"{path}: [target] dns_server: {exc}") from None
    if isinstance(target.target_timeout, bool) or not isinstance(target.target_timeout, (int, float)) \
            or target.target_timeout < 0:
        raise SiptoolError(f"{path}: [target] target_timeout must be a number of seconds (0: timer B/F)")
    th = dict(data.get("thresholds", {}))
    if "mos_min" in th:  # the name suites used before there was one thresholds object
        th.setdefault("mos", th.pop("mos_min"))
    bad = set(th) - set(LIMITS)
    if bad:
        raise SiptoolError(f"{path}: unknown threshold {sorted(bad)[0]!r} ({', '.join(LIMITS)})")
    for k, v in th.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise SiptoolError(f"{path}: threshold {k} must be a number of at least 0 (got {v!r})")
    thresholds = Thresholds.from_limits(**{k: float(v) for k, v in th.items()})
    checks = []
    names: set[str] = set()
    for i, entry in enumerate(data.get("check", []), 1):
        entry = dict(entry)
        kind = entry.pop("type", None)
        if kind not in CHECKS:
            raise SiptoolError(f"{path}: check #{i}: unknown type {kind!r}; built in: {', '.join(sorted(CHECKS))}")
        name = str(entry.pop("name", kind))
        if name in names:
            raise SiptoolError(f"{path}: two checks are named {name!r}; give one a name = \"...\"")
        names.add(name)
        timeout = float(entry.pop("timeout", CHECKS[kind].timeout))
        allowed = CHECKS[kind].options
        bad = set(entry) - set(allowed)
        if bad:
            raise SiptoolError(f"{path}: check {name!r}: unknown option {sorted(bad)[0]!r}"
                               + (f" (it takes {', '.join(sorted(allowed))})" if allowed else " (it takes none)"))
        if entry.get("number") is not None:
            _check_number(path, name, entry)
        if entry.get("uri"):
            _check_uri(path, f"check {name!r}: uri", entry["uri"])
        if kind == "voice_agent":
            _beside(path, entry)
        checks.append(CheckSpec(kind, name, {**allowed, **entry}, timeout))
    if not checks:
        raise SiptoolError(f"{path}: no [[check]] entries")
    return Suite(str(data.get("name", Path(path).stem)), target, thresholds, checks, path)


def _check_uri(path: str, what: str, value) -> None:
    """A sip: or sips: URI with a valid host (and port 1-65535); empty means the default."""
    if value == "":
        return
    try:
        scheme = parse_uri(value).scheme if isinstance(value, str) else ""
    except UriError as exc:
        raise SiptoolError(f"{path}: {what}: {exc}") from None
    if scheme not in ("sip", "sips"):
        raise SiptoolError(f"{path}: {what} must start with sip: or sips:, as in sip:user@host[:port] "
                           f"(got {value!r})")


def _beside(path: str, entry: dict) -> None:
    """A voice_agent check's WAV files and script are read beside the suite file when relative."""
    base = Path(path).resolve().parent
    if isinstance(entry.get("say"), list):
        entry["say"] = [str(base / x) if isinstance(x, str) and x.lower().endswith(".wav") else x
                        for x in entry["say"]]
    if isinstance(entry.get("script"), str) and entry["script"]:
        entry["script"] = str(base / entry["script"])


def _check_number(path: str, name: str, entry: dict) -> None:
    number = entry["number"]
    if not isinstance(number, str) or not re.fullmatch(r"[A-Za-z0-9+*._~!%-]+", number):
        raise SiptoolError(f"{path}: check {name!r}: number must be the user part of a SIP URI "
                           f"(e.g. \"ring\" or \"+4930123\"), got {number!r}")
    if entry.get("uri"):
        raise SiptoolError(f"{path}: check {name!r}: give uri or number, not both")


EXAMPLE = '''\
# siptool interop suite: run with `siptool check suite.toml --junit results.xml`
# Every check below is optional; delete what your trunk does not support (a check that cannot judge
# the target is "skipped", and a skip fails the run unless you pass --allow-skipped).
#
# As written it passes against siptool's own echo agent (about 70 s):
#   export SIPTOOL_PASSWORD=secret
#   siptool echo --listen 127.0.0.1:5060 --user alice --password-env SIPTOOL_PASSWORD &
#   siptool check siptool-suite.toml
name = "carrier-interop"

[target]
uri = "sip:echo@127.0.0.1:5060"   # where test calls go (an echo number on the far side is best)
transport = "udp"                  # udp, tcp or tls
# registrar = "sip:127.0.0.1:5060" # REGISTER goes here (default: the host of uri)
# proxy = "sip:sbc.example.com:5060"  # outbound proxy
user = "alice"                     # digest username
password_env = "SIPTOOL_PASSWORD"  # the password is read from this environment variable, never from here
# from = "sip:alice@example.com"
# tls_uri = "sips:echo@127.0.0.1:5061"  # target of the tls check (default: uri with sips: and port 5061)
# ca_file = "carrier-ca.pem"       # TLS: trust this CA (default: the system store)
# insecure = false                 # TLS: true skips certificate verification (test setups only)
# dns_server = "10.0.0.53"         # the DNS server that locates the target (RFC 3263; default: the system's)
# target_timeout = 2               # s without a response before the next server (default: timer B/F)

[thresholds]                       # a call check fails when a figure is past its limit
pdd_ms = 3000                      # post-dial delay, INVITE to first 18x/2xx (RFC 6076)
mos = 4.0                          # MOS from the E-model (ITU-T G.107), each direction
loss_pct = 1.0                     # RTP packet loss, each direction
jitter_ms = 30                     # max RFC 3550 interarrival jitter, each direction

[[check]]
type = "options"                   # OPTIONS ping: any final response, measured round trip

[[check]]
type = "register"                  # REGISTER with digest auth (RFC 3261 22), 2xx expected
# expires = 300

[[check]]
type = "call"                      # a call per codec with media both ways
name = "call-pcmu"
codec = "PCMU"
duration = 5

[[check]]
type = "call"
name = "call-pcma"
codec = "PCMA"
duration = 5

[[check]]
type = "dtmf"                      # RFC 4733 telephone-events; with an echo target the digits come back
digits = "123#"

[[check]]
type = "hold"                      # re-INVITE a=sendonly, then a=sendrecv (RFC 3264 8.4)

[[check]]
type = "cancel"                    # CANCEL before answer: 487 expected (RFC 3261 9.1)
number = "ring"                    # a number on the target that rings unanswered (siptool echo: "ring");
                                   # one that answers at once makes this check skipped

[[check]]
type = "long_call"                 # longer than 32 s (Timer H / missing ACK, session timers)
duration = 35

# [[check]]
# type = "tls"                     # the same call over TLS to tls_uri

[[check]]
type = "wrong_password"            # a wrong password must be refused (401/403), never accepted

[[check]]
type = "concurrent"                # capacity: N calls at once, all must succeed
calls = 10
duration = 5
# rate = 10                        # new calls per second while they start

# [[check]]
# type = "capacity"                # a ramp: 5, 10 ... 20 calls up together, 5 s each, with media;
# start = 5                        # the highest level that passes (the CCC) must reach expect
# step = 5
# max = 20
# expect = 20

# [[check]]
# type = "failover"                # a trunk named by its domain (RFC 3263: NAPTR, SRV): every server
# calls = 3                        # answers OPTIONS, and with the primaries unreachable the calls go to
# within = 5                       # a backup within 5 s (set target_timeout in [target], e.g. 2)

# [[check]]
# type = "voice_agent"             # a voice agent's latency: its greeting, then each prompt's answer
# number = "agent"                 # (siptool echo --greeting hi.wav --reply ok.wav plays one)
# say = ["hours.wav", "What are your opening hours?"]   # WAV files beside this file, or words (espeak-ng)
# codec = "opus"
# max_greeting_ms = 2000           # answer to its first speech
# max_response_ms = 800            # end of our prompt to its answer

# [[check]]
# type = "fragments"               # does the path pass IP fragments? a large INVITE in fragments must be
#                                  # answered (needs root or CAP_NET_RAW: raw sockets)
'''
