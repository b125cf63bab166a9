#!/usr/bin/env python3
"""Capture mutation fuzzer: hostile captures through siptool's analysis, each outcome classified.

    python bench/fuzz.py --cases 2500 --seed 1            # the fixtures and ../shared/pcaps as seeds
    python bench/fuzz.py --cases 200 --keep /tmp/fuzzed   # keep every input that did not end well

Each case takes a seed capture (pcap, or pcapng built from it) and changes one thing that a parser
reads: a pcap record or pcapng block length, an IP/UDP/TCP length or offset, a SIP Content-Length,
CSeq, Via or Contact, an SDP c=/m=/rtpmap/fmtp/ptime, an RTP version or an RTCP length; or it cuts
the file short. The capture is analysed as `siptool analyze --json` and the terminal view would be,
and the outcome is one of:

    json      a report (valid JSON, and the terminal view renders)
    error     a one-line SiptoolError (exit 2 on the command line)
    internal  any other exception: a bug
    hang      more than --timeout seconds
    memory    more than --memory-mb of Python allocations at the peak

The test suite runs a bounded number of cases (tests/fuzz/test_captures.py); this script runs more.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import signal
import struct
import sys
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NASTY = [b"\xc2\xb9\xc2\xb2", b"\xe2\x91\xa0", b"9" * 5000, b"999999999999", b"99999", b"-1", b"\x00", b"", b"0",
         b"inf", b"nan", b"\xff\xfe", b" " * 300, b"a" * 20000, b"[", b"]", b":", b";", b"<", b'"', b"\r", b"\n",
         b"4294967296", b"0x10", b"127.0.0.1:99999", b";branch=x", b"host:abc;received=1.2.3.4"]
SIP_FIELDS = [b"Content-Length: ", b"l: ", b"CSeq: ", b"Via: SIP/2.0/UDP ", b"Via: ", b"Contact: <sip:",
              b"Call-ID: ", b"From: ", b"To: ", b"Record-Route: <sip:", b"Max-Forwards: "]
SDP_FIELDS = [b"c=IN IP4 ", b"m=audio ", b"a=rtpmap:", b"a=fmtp:", b"a=ptime:", b"a=rtcp:", b"m=audio 4000 RTP/AVP "]


# --- reading and writing captures ---------------------------------------------------------------

def records(data: bytes) -> tuple[bytes, list[list]]:
    """A classic pcap's 24-byte header and its records as [header16, frame bytes]."""
    out, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        out.append([bytearray(data[pos:pos + 16]), bytearray(data[pos + 16:pos + 16 + caplen])])
        pos += 16 + caplen
    return data[:24], out


def pcap(head: bytes, recs: list[list]) -> bytes:
    return head + b"".join(bytes(h) + bytes(d) for h, d in recs)


def pcapng(head: bytes, recs: list[list]) -> list[bytearray]:
    """The same packets as pcapng blocks (SHB, IDB, EPBs), each a bytearray to mutate."""
    linktype = struct.unpack_from("<I", head, 20)[0]
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, linktype & 0xFFFF, 0, 262144) + struct.pack("<I", 20)
    blocks = [bytearray(shb), bytearray(idb)]
    for h, d in recs:
        sec, usec = struct.unpack_from("<II", h)
        ticks = sec * 1_000_000 + usec
        pad = b"\x00" * (-len(d) % 4)
        length = 32 + len(d) + len(pad)
        blocks.append(bytearray(struct.pack("<IIIIIII", 6, length, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(d), len(d))
                                + bytes(d) + pad + struct.pack("<I", length)))
    return blocks


def set_record(rec: list, frame: bytes) -> None:
    rec[1] = bytearray(frame)
    struct.pack_into("<II", rec[0], 8, len(frame), len(frame))


def udp_payload(frame: bytes) -> tuple[int, int] | None:
    """(offset, length) of the UDP payload in an Ethernet/IPv4 frame, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    return 14 + ihl + 8, len(frame) - (14 + ihl + 8)


def with_udp_payload(frame: bytes, payload: bytes) -> bytes:
    """The frame with a new UDP payload and IP/UDP lengths that fit it."""
    ihl = (frame[14] & 0x0F) * 4
    out = bytearray(frame[:14 + ihl + 8] + payload)
    struct.pack_into("!H", out, 16, min(ihl + 8 + len(payload), 0xFFFF))
    struct.pack_into("!H", out, 14 + ihl + 4, min(8 + len(payload), 0xFFFF))
    return bytes(out)


# --- mutations ---------------------------------------------------------------------------------

def _replace_field(rng: random.Random, text: bytes, names: list[bytes]) -> bytes | None:
    hits = [(n, i) for n in names for i in _find_all(text, n)]
    if not hits:
        return None
    name, at = rng.choice(hits)
    start = at + len(name)
    end = text.find(b"\r\n", start)
    end = len(text) if end < 0 else end
    cut = rng.choice([end, start + rng.randint(0, max(end - start, 0)), start])
    return text[:start] + rng.choice(NASTY) * rng.choice([1, 1, 1, 3]) + text[cut:]


def _find_all(text: bytes, needle: bytes) -> list[int]:
    out, pos = [], text.find(needle)
    while pos >= 0 and len(out) < 50:
        out.append(pos)
        pos = text.find(needle, pos + 1)
    return out


def mutate(rng: random.Random, seed: bytes) -> tuple[str, bytes]:
    """One mutated capture of `seed` (a classic pcap) and what was done."""
    head, recs = records(seed)
    if not recs:
        return "cut", seed[:rng.randint(0, len(seed))]
    kind = rng.choice(["record", "cut", "ip", "udp", "tcp", "sip", "sip", "sdp", "sdp", "rtp", "rtcp", "pcapng",
                       "pcapng", "bytes"])
    sip = [r for r in recs if udp_payload(r[1]) and (b"SIP/2.0" in r[1])]
    sdp = [r for r in sip if b"\r\nv=0" in r[1]]
    rtp = [r for r in recs if (u := udp_payload(r[1])) and u[1] >= 12 and r[1][u[0]] >> 6 == 2]
    if kind == "record":
        rec = rng.choice(recs)
        struct.pack_into("<I", rec[0], rng.choice([8, 12]), rng.choice([0, 1, 15, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                                                         len(rec[1]) + rng.randint(-20, 20) & 0xFFFFFFFF]))
        return kind, pcap(head, recs)
    if kind == "cut":
        data = pcap(head, recs)
        return kind, data[:rng.randint(0, len(data))]
    if kind == "pcapng":
        blocks = pcapng(head, recs)
        block = rng.choice(blocks)
        where = rng.choice([4, len(block) - 4, 8, 20, 24]) if len(block) >= 28 else 4
        struct.pack_into("<I", block, min(where, len(block) - 4), rng.choice([0, 1, 12, 13, 0xFFFFFFFF,
                                                                             rng.randint(0, 1 << 20)]))
        return kind, b"".join(bytes(b) for b in blocks)
    if kind == "bytes":
        data = bytearray(pcap(head, recs))
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return kind, bytes(data)
    if kind in ("ip", "udp", "tcp"):
        ipv4 = [r for r in recs if len(r[1]) >= 34 and r[1][12:14] == b"\x08\x00"]
        if not ipv4:
            return "cut", pcap(head, recs)[:100]
        rec = rng.choice(ipv4)
        f, ihl = rec[1], (rec[1][14] & 0x0F) * 4
        if kind == "ip":
            off = rng.choice([14, 16, 20, 22, 23])  # IHL, total length, flags/offset, TTL, protocol
            if off == 14:
                f[14] = 0x40 | rng.randrange(16)
            elif off in (16, 20):
                struct.pack_into("!H", f, off, rng.randrange(0x10000))
            else:
                f[off] = rng.randrange(256)
        elif len(f) >= 14 + ihl + 20:
            base = 14 + ihl
            if kind == "udp":
                struct.pack_into("!H", f, base + 4, rng.randrange(0x10000))  # UDP length
            else:
                part = rng.choice(["seq", "offset", "flags"])
                if part == "seq":
                    struct.pack_into("!I", f, base + 4, rng.randrange(1 << 32))
                else:
                    f[base + (12 if part == "offset" else 13)] = rng.randrange(256)
        return kind, pcap(head, recs)
    if kind in ("sip", "sdp"):
        pool = sdp if kind == "sdp" else sip
        if not pool:
            return "cut", pcap(head, recs)[:200]
        rec = rng.choice(pool)
        off, _ = udp_payload(rec[1])
        text = _replace_field(rng, bytes(rec[1][off:]), SDP_FIELDS if kind == "sdp" else SIP_FIELDS)
        if text is not None:
            set_record(rec, with_udp_payload(bytes(rec[1]), text))
        return kind, pcap(head, recs)
    pool = rtp
    if not pool:
        return "cut", pcap(head, recs)[:300]
    rec = rng.choice(pool)
    off, n = udp_payload(rec[1])
    p = rec[1]
    if kind == "rtp":
        p[off] = rng.choice([0x00, 0x40, 0xC0, 0x8F, 0xBF, 0x9F, rng.randrange(256)])  # version, CC, X bits
    else:  # RTCP: a packet type and a length word that lie
        p[off + 1] = rng.choice([200, 201, 202, 203, 207])
        struct.pack_into("!H", p, off + 2, rng.choice([0, 1, 0xFFFF, rng.randrange(0x10000)]))
    return kind, pcap(head, recs)


# --- running a case ----------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str  # json, error, internal, hang, memory
    mutation: str
    detail: str = ""
    peak_mb: float = 0.0


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_case(path: Path, mutation: str, timeout: float, memory_mb: float, content: bool = False) -> Outcome:
    """Analyse `path` as `siptool analyze --json` does (with `content`: `--content`, every audio
    stream decoded), and render the terminal view."""
    from rich.console import Console

    from siptool.drivers.files import analyze_file
    from siptool.errors import SiptoolError
    from siptool.report.jsonout import write
    from siptool.report.terminal import render

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    tracemalloc.start()
    try:
        if content:
            from siptool.analysis.content import ContentOptions

            report = analyze_file(path, content=ContentOptions())
        else:
            report = analyze_file(path)
        out = io.StringIO()
        write(report, out, indent=None)
        json.loads(out.getvalue())
        render(report, Console(file=io.StringIO(), width=80))
        kind, detail = "json", ""
    except SiptoolError as exc:
        kind, detail = ("error", str(exc)) if "\n" not in str(exc) else ("internal", "multi-line error")
    except _Hang:
        kind, detail = "hang", f"> {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - that is what is being looked for
        import traceback

        tb = traceback.extract_tb(exc.__traceback__)[-1]
        kind, detail = "internal", f"{type(exc).__name__}: {exc} at {Path(tb.filename).name}:{tb.lineno}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    if kind == "json" and peak > memory_mb:
        kind, detail = "memory", f"{peak:.0f} MB"
    return Outcome(kind, mutation, detail[:300], round(peak, 1))


def seeds(shared: Path | None) -> list[Path]:
    found = sorted((REPO / "fixtures" / "pcaps").glob("*.pcap"))
    if shared is not None and shared.is_dir():
        found += [p for p in sorted(shared.glob("*.pcap")) if p.stat().st_size < 2_000_000]
    return [p for p in found if p.read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"]  # little-endian classic pcap


@dataclass
class Summary:
    cases: int = 0
    outcomes: dict = field(default_factory=dict)  # kind -> count
    by_mutation: dict = field(default_factory=dict)  # mutation -> count
    bad: list = field(default_factory=list)  # Outcomes that are not json/error
    peak_mb: float = 0.0


def fuzz(cases: int, seed: int, workdir: Path, shared: Path | None = None, keep: Path | None = None,
         timeout: float = 20.0, memory_mb: float = 200.0, content: bool = False) -> Summary:
    rng = random.Random(seed)
    pool = [(p, p.read_bytes()) for p in seeds(shared)]
    summary = Summary()
    for i in range(cases):
        name, base = rng.choice(pool)
        mutation, data = mutate(rng, base)
        path = workdir / f"case-{i}.pcap"
        path.write_bytes(data)
        out = run_case(path, mutation, timeout, memory_mb, content)
        summary.cases += 1
        summary.outcomes[out.kind] = summary.outcomes.get(out.kind, 0) + 1
        summary.by_mutation[mutation] = summary.by_mutation.get(mutation, 0) + 1
        summary.peak_mb = max(summary.peak_mb, out.peak_mb)
        if out.kind not in ("json", "error"):
            out.detail = f"{name.name}: {out.detail}"
            summary.bad.append(out)
            if keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{out.kind}-{i}-{mutation}.pcap").write_bytes(data)
        path.unlink()
    return summary


def main() -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "pcaps")
    ap.add_argument("--keep", type=Path, help="write inputs that did not end well here")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--memory-mb", type=float, default=200.0)
    ap.add_argument("--content", action="store_true", help="analyse as `analyze --content` does: decode every "
                                                          "audio stream (Opus, G.722 ... through PyAV)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = fuzz(args.cases, args.seed, Path(tmp), args.shared, args.keep, args.timeout, args.memory_mb,
                 args.content)
    print(f"{s.cases} cases, seed {args.seed}: " + ", ".join(f"{k} {v}" for k, v in sorted(s.outcomes.items()))
          + f"; peak Python allocations {s.peak_mb:.0f} MB")
    print("mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(s.by_mutation.items())))
    for o in s.bad[:50]:
        print(f"  {o.kind:8} {o.mutation:7} {o.detail}")
    return 1 if s.bad else 0


if __name__ == "__main__":
    sys.exit(main())
