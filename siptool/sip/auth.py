"""HTTP digest authentication for SIP (RFC 3261 22, RFC 7616, RFC 8760): MD5, SHA-256, SHA-512-256,
qop=auth, nc, cnonce, stale. Client side answers 401/407; server side challenges and verifies.
Passwords are only ever hashed here; nothing in this module prints or stores them."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

# strongest first (RFC 8760 2.4: a UAC uses the first supported algorithm it prefers)
ALGORITHMS = {"SHA-512-256": "sha512_256", "SHA-256": "sha256", "MD5": "md5"}
MAX_VALUE = 4096  # a digest header longer than this is refused unread (ours are ~300 bytes)
MAX_PARAMS = 32
MAX_FIELD = 1024  # nonce, cnonce, realm, response...
_TOKEN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!%*+`'~")


def parse_params(text: str) -> dict[str, str] | None:
    """auth-params (RFC 7235 2.1): name=token or name="quoted string", comma separated, names in lower
    case. One pass over the text; None when it is too long or not of that form."""
    if len(text) > MAX_VALUE:
        return None
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            return out
        start = i
        while i < n and text[i] in _TOKEN:
            i += 1
        name = text[start:i].lower()
        while i < n and text[i] in " \t":
            i += 1
        if not name or i >= n or text[i] != "=" or len(out) >= MAX_PARAMS:
            return None
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            chars = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(text[i])
                i += 1
            if i >= n:
                return None  # no closing quote
            i += 1
            value = "".join(chars)
        else:
            start = i
            while i < n and text[i] not in " \t,":
                i += 1
            value = text[start:i]
        if len(value) > MAX_FIELD:
            return None
        out[name] = value


def _h(algorithm: str, text: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm.upper().removesuffix("-SESS")], text.encode()).hexdigest()


def supported(algorithm: str) -> bool:
    name = algorithm.upper().removesuffix("-SESS")
    if name not in ALGORITHMS:
        return False
    try:
        hashlib.new(ALGORITHMS[name])
    except ValueError:
        return False
    return True


@dataclass
class Challenge:
    """One WWW-Authenticate / Proxy-Authenticate value (RFC 7616 3.3)."""

    realm: str = ""
    nonce: str = ""
    algorithm: str = "MD5"
    qop: list[str] = field(default_factory=list)
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False
    proxy: bool = False  # came in a 407

    @classmethod
    def parse(cls, value: str, proxy: bool = False) -> "Challenge | None":
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            return None
        p = parse_params(rest)
        if p is None or not p.get("nonce"):
            return None
        return cls(realm=p.get("realm", ""), nonce=p.get("nonce", ""), algorithm=p.get("algorithm", "MD5"),
                   qop=[q.strip() for q in p.get("qop", "").split(",") if q.strip()], opaque=p.get("opaque"),
                   stale=p.get("stale", "").lower() == "true", userhash=p.get("userhash", "").lower() == "true",
                   proxy=proxy)


def pick_challenge(values: list[str], proxy: bool = False) -> Challenge | None:
    """The strongest supported challenge among several (RFC 8760 2.4 lets a server offer many)."""
    order = list(ALGORITHMS)
    best = None
    for v in values:
        c = Challenge.parse(v, proxy)
        if c is None or not supported(c.algorithm):
            continue
        rank = order.index(c.algorithm.upper().removesuffix("-SESS"))
        if best is None or rank < best[0]:
            best = (rank, c)
    return best[1] if best else None


def response_value(algorithm: str, user: str, realm: str, password: str, method: str, uri: str, nonce: str,
                   nc: str = "", cnonce: str = "", qop: str = "", body: bytes = b"") -> str:
    """The `response` parameter (RFC 7616 3.4.1-3.4.3; RFC 2617 3.2.2.1 without qop)."""
    ha1 = _h(algorithm, f"{user}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(algorithm, f"{method}:{uri}:{_h(algorithm, body.decode('latin-1'))}")
    else:
        ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


class Credentials:
    """A user's credentials and the nonce counts used so far (nc increments per nonce, RFC 7616 3.4)."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._password = password
        self._nc: dict[str, int] = {}

    def __repr__(self) -> str:  # never show the password
        return f"Credentials(user={self.user!r})"

    def authorization(self, ch: Challenge, method: str, uri: str, body: bytes = b"", cnonce: str | None = None) -> str:
        """The Authorization / Proxy-Authorization value answering a challenge."""
        qop = "auth" if "auth" in ch.qop else ("auth-int" if "auth-int" in ch.qop else "")
        nc = cn = ""
        if qop:
            n = self._nc.get(ch.nonce, 0) + 1
            self._nc[ch.nonce] = n
            nc = f"{n:08x}"
            cn = cnonce or secrets.token_hex(8)
        user = self.user
        if ch.userhash:
            user = _h(ch.algorithm, f"{self.user}:{ch.realm}")
        resp = response_value(ch.algorithm, self.user, ch.realm, self._password, method, uri, ch.nonce, nc, cn, qop, body)
        parts = [f'username="{user}"', f'realm="{ch.realm}"', f'nonce="{ch.nonce}"', f'uri="{uri}"',
                 f'response="{resp}"', f"algorithm={ch.algorithm}"]
        if ch.opaque is not None:
            parts.append(f'opaque="{ch.opaque}"')
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{cn}"']
        if ch.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


class DigestRefused(Exception):
    """A challenge that cannot be answered: `unsupported` (no MD5/SHA-256 digest offered) or
    `rejected` (challenged again after our answer, with a nonce that is not stale: wrong credentials)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class DigestAnswer:
    """The digest loop of one request (RFC 3261 22.2, RFC 8760), sans-I/O and written once for INVITE
    and REGISTER: each 401/407 gives the header to send the request again with, or DigestRefused."""

    def __init__(self, creds: Credentials, method: str, uri: str) -> None:
        self.creds, self.method, self.uri = creds, method, uri
        self.tried: set[str] = set()
        self.challenged: str | None = None  # "401" or "407" once one was answered
        self.algorithm: str | None = None

    def answer(self, resp, body: bytes = b"") -> tuple[str, str]:
        proxy = resp.status == 407
        ch = pick_challenge(resp.get_all("proxy-authenticate" if proxy else "www-authenticate"), proxy)
        if ch is None:
            raise DigestRefused("unsupported")
        if ch.nonce in self.tried or (self.tried and not ch.stale):
            raise DigestRefused("rejected")
        self.tried.add(ch.nonce)
        self.challenged, self.algorithm = str(resp.status), ch.algorithm
        return ("proxy-authorization" if proxy else "authorization",
                self.creds.authorization(ch, self.method, self.uri, body))


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of a Digest Authorization value; {} when it is not one or is malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    return parse_params(rest) or {}


class Authenticator:
    """Server side: challenge with a nonce bound to a secret and a time, verify answers (RFC 7616 3.3, 5.5).
    A nonce older than `nonce_ttl` is answered with stale=true."""

    def __init__(self, realm: str, users: dict[str, str], algorithms=("SHA-256", "MD5"), nonce_ttl: float = 300.0) -> None:
        self.realm = realm
        self._users = dict(users)
        self.algorithms = [a for a in algorithms if supported(a)]
        self.nonce_ttl = nonce_ttl
        self._secret = secrets.token_bytes(16)

    def _nonce(self, stamp: int | None = None) -> str:
        stamp = int(time.time()) if stamp is None else stamp
        mac = hmac.new(self._secret, str(stamp).encode(), "sha256").hexdigest()[:24]
        return f"{stamp:x}.{mac}"

    def _nonce_state(self, nonce: str) -> str:
        stamp, _, mac = nonce.partition(".")
        if not 1 <= len(stamp) <= 12 or not all(c in "0123456789abcdef" for c in stamp):
            return "bad"  # ours are a time in hex: anything else is forged (or 3,600 digits long)
        t = int(stamp, 16)
        if not hmac.compare_digest(self._nonce(t).encode(), nonce.encode("utf-8", "replace")):
            return "bad"
        return "stale" if time.time() - t > self.nonce_ttl else "ok"

    def issued(self, header: str | None) -> bool:
        """Whether an Authorization value answers a nonce of ours (fresh or stale): then a wrong
        `response` means wrong credentials, not a nonce from another server or an earlier run."""
        return bool(header) and self._nonce_state(parse_authorization(header).get("nonce", "")) != "bad"

    def challenges(self, stale: bool = False) -> list[str]:
        nonce = self._nonce()
        return [f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth", algorithm={a}'
                + (", stale=true" if stale else "") for a in self.algorithms]

    def check(self, method: str, header: str | None) -> str:
        """'ok', 'stale' (answer again with stale=true) or 'fail'."""
        if not header:
            return "fail"
        p = parse_authorization(header)
        algo = p.get("algorithm", "MD5")
        password = self._users.get(p.get("username", ""))
        if password is None or p.get("realm") != self.realm or not supported(algo):
            return "fail"
        state = self._nonce_state(p.get("nonce", ""))
        if state == "bad":
            return "fail"
        want = response_value(algo, p["username"], self.realm, password, method, p.get("uri", ""), p["nonce"],
                              p.get("nc", ""), p.get("cnonce", ""), p.get("qop", ""))
        if not hmac.compare_digest(want.encode(), p.get("response", "").encode("utf-8", "replace")):
            return "fail"
        return "stale" if state == "stale" else "ok"
