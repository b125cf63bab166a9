"""`siptool diff A B`: the same calls seen at two capture points, compared.

Calls are paired by Call-ID where it is kept; where a B2BUA or a topology-hiding proxy rewrites it,
by the From and To user numbers, the INVITE's time and its SDP offer. In each pair, messages are
paired by request method or status, CSeq method and order (retransmissions kept apart), giving the
hop delay of each (time on b - time on a) and what was rewritten; each RTP stream is paired by SSRC
and direction, and its sequence numbers at both points say where its loss began: missing at both
points is lost before the first point the stream passes, missing only at the second is lost
between them. Both captures must share a clock (one host, or NTP): hop delays are differences of
the two captures' times.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .. import __version__
from ..report.diff_model import CallPair, CaptureDiff, DiffSide, MessagePair, Rewrite, StreamPair
from ..report.model import Call, LadderStep, Report, Stream
from .diff_facts import MessageFacts, collect, differences

MAX_SKEW_S = 10.0  # a call's INVITE on b at most this long before or after a's (B2BUA routing time)
SEQ_SHOWN = 10  # sequence numbers listed per kind of loss


@dataclass
class Side:
    """One capture, read: its Report, each call's message facts (in ladder order) and the
    per-packet series of its RTP streams."""

    path: str
    report: Report
    facts: dict[int, list[MessageFacts]] = field(default_factory=dict)  # id(call) -> one per ladder step
    series: dict = field(default_factory=dict)  # (src, dst, ssrc) -> StreamMetrics


def compare(a: Side, b: Side, max_skew_s: float = MAX_SKEW_S) -> CaptureDiff:
    """Pair the calls of two captures and compare each pair."""
    out = CaptureDiff(a=_side(a), b=_side(b), version=__version__)
    calls_a = [c for c in a.report.calls if c.kind == "call"]
    calls_b = [c for c in b.report.calls if c.kind == "call"]
    pairs = match_calls(calls_a, calls_b, max_skew_s)
    paired_a = {id(x) for x, _, _, _ in pairs}
    paired_b = {id(y) for _, y, _, _ in pairs}
    for x, y, how, note in sorted(pairs, key=lambda p: p[0].start):
        out.calls.append(compare_calls(a, x, b, y, how, note))
    out.calls += [_one_side(x, "a", max_skew_s) for x in calls_a if id(x) not in paired_a]
    out.calls += [_one_side(y, "b", max_skew_s) for y in calls_b if id(y) not in paired_b]
    out.matched, out.only_a, out.only_b = len(pairs), len(calls_a) - len(pairs), len(calls_b) - len(pairs)
    out.paired_by = dict(Counter(how for _, _, how, _ in pairs))
    others = sum(1 for c in a.report.calls + b.report.calls if c.kind != "call")
    if others:
        out.notes.append(f"{others} non-INVITE exchanges (REGISTER, OPTIONS...) are not compared")
    return out


def _side(side: Side) -> DiffSide:
    c = side.report.capture
    return DiffSide(file=side.path, packets=c.packets, sip_messages=c.sip_packets,
                    calls=sum(1 for x in side.report.calls if x.kind == "call"), first_time=c.first_time,
                    last_time=c.last_time, truncated=c.truncated,
                    malformed=sum(1 for f in side.report.findings if f.code == "sip.malformed"))


# --- pairing calls -------------------------------------------------------------------------------

def match_calls(calls_a: list[Call], calls_b: list[Call], max_skew_s: float) -> list[tuple[Call, Call, str, str]]:
    """(call on a, call on b, how, note) for each pair: by Call-ID first, then by users, time and SDP."""
    by_id: dict[str, list[Call]] = {}
    for y in calls_b:
        by_id.setdefault(y.call_id, []).append(y)
    pairs, taken = [], set()
    for x in calls_a:
        y = next((y for y in by_id.get(x.call_id, []) if id(y) not in taken), None)
        if y is not None:
            taken.add(id(y))
            pairs.append((x, y, "call-id", f"same Call-ID {x.call_id}"))
    paired = {id(x) for x, _, _, _ in pairs}
    left_a = [x for x in calls_a if id(x) not in paired]
    left_b = sorted((y for y in calls_b if id(y) not in taken), key=lambda c: c.start)
    starts = [y.start for y in left_b]
    offers = {id(c): _offer_codecs(c) for c in left_a + left_b}
    candidates = []
    for x in left_a:  # only b's calls within the skew of x: a sorted window, not every pair
        for y in left_b[bisect.bisect_left(starts, x.start - max_skew_s):
                        bisect.bisect_right(starts, x.start + max_skew_s)]:
            if same_number(x.from_user, y.from_user) and same_number(x.to_user, y.to_user):
                codecs = offers[id(x)] == offers[id(y)] and bool(offers[id(x)])
                candidates.append((not codecs, abs(y.start - x.start), x, y, y.start - x.start, codecs))
    used_a: set[int] = set()
    for _, _, x, y, skew, codecs in sorted(candidates, key=lambda c: (c[0], c[1])):
        if id(x) in used_a or id(y) in taken:
            continue
        used_a.add(id(x))
        taken.add(id(y))
        sdp = ", the same offered codecs" if codecs else ""
        pairs.append((x, y, "users+time+sdp" if codecs else "users+time",
                      f"Call-ID rewritten; From {x.from_user or '-'} and To {x.to_user or '-'} on both, "
                      f"INVITE {skew * 1000:+.1f} ms on b{sdp}"))
    return pairs


def same_number(a: str, b: str) -> bool:
    """The same user: equal, or (numbers of 6 digits or more) one's digits end the other's, as
    +4930123456 and 030123456 after a B2BUA normalised the number."""
    if a == b:
        return True
    da, db = "".join(ch for ch in a if ch.isdigit()), "".join(ch for ch in b if ch.isdigit())
    if len(da) < 6 or len(db) < 6:
        return False
    short, long_ = sorted((da.lstrip("0"), db.lstrip("0")), key=len)
    return len(short) >= 6 and long_.endswith(short)


def _offer_codecs(call: Call) -> list[str]:
    offer = next((e for e in call.sdp if e.role == "offer"), None)
    return [c.split(" ", 1)[1].split("/")[0] if " " in c else c for c in offer.codecs] if offer else []


def _one_side(call: Call, side: str, max_skew_s: float) -> CallPair:
    pair = CallPair(matched_by="", from_user=call.from_user, to_user=call.to_user,
                    match_note=f"seen on {side} only: no call on the other side has its Call-ID, or its "
                               f"From/To users within {max_skew_s:g} s")
    _fill(pair, call, side)
    return pair


def _fill(pair: CallPair, call: Call, side: str) -> None:
    setattr(pair, f"number_{side}", call.number)
    setattr(pair, f"call_id_{side}", call.call_id)
    setattr(pair, f"start_{side}", call.start)
    setattr(pair, f"final_{side}", call.final_status)
    setattr(pair, f"reason_{side}", call.final_reason)


# --- one pair ------------------------------------------------------------------------------------

def compare_calls(a: Side, x: Call, b: Side, y: Call, how: str, note: str) -> CallPair:
    pair = CallPair(matched_by=how, match_note=note, from_user=x.from_user, to_user=x.to_user)
    _fill(pair, x, "a")
    _fill(pair, y, "b")
    facts_a, facts_b = a.facts.get(id(x), []), b.facts.get(id(y), [])
    if len(facts_a) != len(x.ladder) or len(facts_b) != len(y.ladder):
        pair.notes.append("some messages' headers were not read: rewrites not compared")
        facts_a = facts_b = []
    pair.messages = match_messages(x.ladder, y.ladder)
    pair.only_a = sum(1 for m in pair.messages if m.frame_b is None)
    pair.only_b = sum(1 for m in pair.messages if m.frame_a is None)
    if facts_a and facts_b:
        pair.rewrites = rewrites(x.ladder, facts_a, y.ladder, facts_b, pair.messages)
    pair.streams = match_streams(a, x, b, y, pair)
    return pair


def _label(step: LadderStep) -> str:
    if step.status is not None and step.method and step.method != "INVITE":
        return f"{step.label} ({step.method})"
    return step.label


def _hop_by_hop(step: LadderStep, finals: dict[int, int]) -> bool:
    """100 Trying is never forwarded (RFC 3261 16.7); the ACK of a failure is each hop's own
    (17.1.1.3), told from the 2xx's ACK by the final response its CSeq got."""
    if step.status == 100:
        return True
    return step.method == "ACK" and step.status is None and finals.get(step.cseq, 200) >= 300


def _keys(ladder: list[LadderStep], indices: list[int], with_cseq: bool) -> dict[tuple, int]:
    """Each message's key: its kind (method, status, retransmission, CSeq number if asked) and its
    order among that kind."""
    seen: Counter = Counter()
    out = {}
    for i in indices:
        s = ladder[i]
        kind = (s.method, s.status, s.retransmission) + ((s.cseq,) if with_cseq else ())
        seen[kind] += 1
        out[kind + (seen[kind],)] = i
    return out


def match_messages(la: list[LadderStep], lb: list[LadderStep]) -> list[MessagePair]:
    """Pair each side's messages: first by method or status, CSeq number and order (a proxy keeps
    CSeq), then what is left by method or status and order alone (a B2BUA numbers its own leg);
    retransmissions pair with retransmissions. What has no partner is seen on one side only."""
    found: list[tuple[int | None, int | None]] = []
    left_a, left_b = list(range(len(la))), list(range(len(lb)))
    for with_cseq in (True, False):
        ka, kb = _keys(la, left_a, with_cseq), _keys(lb, left_b, with_cseq)
        both = set(ka) & set(kb)
        found += [(ka[k], kb[k]) for k in both]
        done_a, done_b = {ka[k] for k in both}, {kb[k] for k in both}
        left_a = [i for i in left_a if i not in done_a]
        left_b = [i for i in left_b if i not in done_b]
    found += [(i, None) for i in left_a] + [(None, j) for j in left_b]
    finals = [{s.cseq: s.status for s in ladder if s.status and s.status >= 200 and s.method == "INVITE"}
              for ladder in (la, lb)]
    steps = [(la[i] if i is not None else None, lb[j] if j is not None else None) for i, j in found]
    pairs = []
    for sa, sb in sorted(steps, key=lambda ab: min(s.time for s in ab if s is not None)):  # first sighting
        step = sa or sb
        p = MessagePair(label=_label(step), cseq=step.cseq, sender=step.side or (sb.side if sb else ""),
                        retransmission=step.retransmission,
                        hop_by_hop=_hop_by_hop(step, finals[0] if sa is not None else finals[1]))
        if sa is not None:
            p.frame_a, p.time_a = sa.frame, sa.time
        if sb is not None:
            p.frame_b, p.time_b = sb.frame, sb.time
        if sa is not None and sb is not None and not p.hop_by_hop:
            p.delay_ms = round((sb.time - sa.time) * 1000, 3)
            p.direction = "a->b" if p.delay_ms >= 0 else "b->a"
        pairs.append(p)
    return pairs


def rewrites(la, fa, lb, fb, messages: list[MessagePair]) -> list[Rewrite]:
    """Each distinct header or SDP change between the paired messages, with the messages showing it."""
    frame_a = {s.frame: i for i, s in enumerate(la)}
    frame_b = {s.frame: i for i, s in enumerate(lb)}
    out: list[Rewrite] = []
    for m in messages:
        if m.frame_a is None or m.frame_b is None or m.hop_by_hop or m.retransmission:
            continue
        diffs = differences(fa[frame_a[m.frame_a]], fb[frame_b[m.frame_b]])
        collect(out, m.label, (m.frame_a, m.frame_b), diffs)
    return out


# --- streams -------------------------------------------------------------------------------------

def _direction(stream: Stream, call: Call) -> str:
    """caller->callee when the stream goes where the callee's SDP said it receives (or comes from
    the caller's), callee->caller the other way round; "" when neither SDP names it."""
    def at(side: str) -> set[str]:
        return {f"{e.address}:{e.port}" for e in call.sdp if e.side == side}
    callee, caller = at("callee"), at("caller")
    if stream.dst in callee or stream.src in caller:
        return "caller->callee"
    if stream.dst in caller or stream.src in callee:
        return "callee->caller"
    return ""


def match_streams(a: Side, x: Call, b: Side, y: Call, pair: CallPair) -> list[StreamPair]:
    sa = [(s, _direction(s, x)) for s in x.streams]
    sb = [(s, _direction(s, y)) for s in y.streams]
    out, used = [], set()
    for s, d in sa:
        ssrc_dir = [t for t, e in sb if id(t) not in used and t.ssrc == s.ssrc and e == d and d]
        ssrc = [t for t, e in sb if id(t) not in used and t.ssrc == s.ssrc]
        same_dir = [t for t, e in sb if id(t) not in used and e == d and d]
        for found, how in ((ssrc_dir, "ssrc+direction"), (ssrc if len(ssrc) == 1 else [], "ssrc"),
                           (same_dir if len(same_dir) == 1 else [], "direction")):
            if found:
                used.add(id(found[0]))
                out.append(loss_location(a, s, b, found[0], d or _direction(found[0], y), how))
                break
        else:
            out.append(_stream_side(s, d, "a"))
    out += [_stream_side(t, e, "b") for t, e in sb if id(t) not in used]
    if any(not p.paired_by for p in out):
        pair.notes.append("a stream seen on one side only: it takes another path, or the device re-originates "
                          "media under a new SSRC in another direction")
    return out


def _stream_side(s: Stream, direction: str, side: str) -> StreamPair:
    p = StreamPair(direction=direction, codec=s.codec)
    setattr(p, f"ssrc_{side}", s.ssrc)
    setattr(p, f"src_{side}", s.src)
    setattr(p, f"dst_{side}", s.dst)
    setattr(p, f"packets_{side}", s.packets)
    setattr(p, f"lost_{side}", s.lost)
    return p


def _packets(side: Side, s: Stream) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(extended sequence numbers, capture times, frames) of a stream's packets at one point."""
    m = side.series.get((s.src, s.dst, s.ssrc))
    if m is None or not len(m.sequence):
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    return m.sequence.astype(np.int64), m.start + m.times, m.frames


def loss_location(a: Side, sa: Stream, b: Side, sb: Stream, direction: str, how: str) -> StreamPair:
    """Where the stream's loss began, from the sequence numbers seen at each point: the upstream
    point is the one packets pass first (their median time difference); numbers missing at both are
    lost before it, those missing only downstream were lost between the two points."""
    p = _stream_side(sa, direction, "a")
    for name in ("ssrc", "src", "dst", "packets", "lost"):
        setattr(p, f"{name}_b", getattr(sb, name))
    p.paired_by = how
    seq_a, t_a, f_a = _packets(a, sa)
    seq_b, t_b, f_b = _packets(b, sb)
    if not len(seq_a) or not len(seq_b):
        return p
    seq_b = seq_b + 65536 * int(round((seq_a[0] - seq_b[0]) / 65536))  # one numbering for both
    common, ia, ib = np.intersect1d(seq_a, seq_b, return_indices=True)
    if len(common):
        p.upstream = "a" if float(np.median(t_b[ib] - t_a[ia])) >= 0 else "b"
    else:
        p.upstream = "a" if t_a.min() <= t_b.min() else "b"
    up, down = (seq_a, seq_b) if p.upstream == "a" else (seq_b, seq_a)
    up_frames = f_a if p.upstream == "a" else f_b
    everything = np.arange(min(up.min(), down.min()), max(up.max(), down.max()) + 1)
    seen_up, seen_down = np.isin(everything, up), np.isin(everything, down)
    before = everything[~seen_up & ~seen_down]
    between = everything[seen_up & ~seen_down]
    p.lost_before, p.lost_between = int(len(before)), int(len(between))
    p.missed_upstream = int((~seen_up & seen_down).sum())
    p.lost_before_seq = [int(q) & 0xFFFF for q in before[:SEQ_SHOWN]]
    p.lost_between_seq = [int(q) & 0xFFFF for q in between[:SEQ_SHOWN]]
    if len(between):
        # the packet seen upstream that never reached the downstream point
        p.first_between_frame = int(up_frames[np.flatnonzero(up == between[0])[0]])
    return p

