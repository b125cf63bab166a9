"""Who spoke when in a call: per side (caller, callee) the talk spurts of its audio streams, and from
them the delays from the answer, the turns (one side stops, the other starts after a silence) and the
overlaps (both speak). `turns_and_overlaps` works on plain (start, end) lists, so the agent can time
a far end's answers to its own prompts the same way.
"""

from __future__ import annotations

import numpy as np

from ..report.model import Call, Conversation, Gaps, Overlap, Turn
from .media_rules import Paths

SIDES = ("caller", "callee")


def conversation(call: Call) -> Conversation | None:
    """The call's figures, or None: not an answered INVITE session, or no audio content analysed."""
    if call.kind != "call" or call.answer is None:
        return None
    paths = Paths(call)
    streams = [s for s in paths.streams if s.content is not None and s.content.decoded]
    if not streams:
        return None
    spurts: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
    first_rtp: dict[str, float] = {}
    for s in streams:
        side = paths.sender.get(id(s))
        if side is None:
            continue
        s.content.side = side
        spurts[side] += [(x.start, x.end) for x in s.content.talk_spurts]
        first_rtp[side] = min(first_rtp.get(side, s.start), s.start)
    caller, callee = (union(spurts[side]) for side in SIDES)
    turns, overlaps = turns_and_overlaps(caller, callee)

    def since_answer(t: float | None) -> float | None:
        return None if t is None else round((t - call.answer) * 1000, 1)

    return Conversation(
        caller_first_rtp_ms=since_answer(first_rtp.get("caller")),
        callee_first_rtp_ms=since_answer(first_rtp.get("callee")),
        caller_first_speech_ms=since_answer(caller[0][0] if caller else None),
        callee_first_speech_ms=since_answer(callee[0][0] if callee else None),
        caller_speech_s=round(sum(e - s for s, e in caller), 3), callee_speech_s=round(sum(e - s for s, e in callee), 3),
        turns=turns, callee_responses=gaps([t.gap_ms for t in turns if t.by == "callee"]),
        caller_responses=gaps([t.gap_ms for t in turns if t.by == "caller"]),
        overlaps=overlaps, overlap_s=round(sum(o.duration_ms for o in overlaps) / 1000, 3))


def union(spurts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Intervals sorted and joined where they overlap (one side's streams, e.g. after an SSRC change)."""
    out: list[tuple[float, float]] = []
    for s, e in sorted(spurts):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def turns_and_overlaps(caller: list[tuple[float, float]], callee: list[tuple[float, float]]
                       ) -> tuple[list[Turn], list[Overlap]]:
    """Turns: between two stretches of talk (anyone speaking) separated by silence, when the one who
    spoke last before it is not the one who speaks first after it. Overlaps: both speaking at once,
    with who had been speaking (and for how long) when the other started."""
    tagged = sorted([(s, e, "caller") for s, e in caller] + [(s, e, "callee") for s, e in callee])
    blocks: list[list] = []  # [start, end, first side, last side]
    for s, e, side in tagged:
        if blocks and s < blocks[-1][1]:
            block = blocks[-1]
            if e >= block[1]:
                block[1], block[3] = e, side
        else:
            blocks.append([s, e, side, side])
    turns = [Turn(start=a[1], gap_ms=round((b[0] - a[1]) * 1000, 1), after=a[3], by=b[2])
             for a, b in zip(blocks, blocks[1:]) if a[3] != b[2]]
    overlaps = []
    i = j = 0
    while i < len(caller) and j < len(callee):
        (a0, a1), (b0, b1) = caller[i], callee[j]
        start, end = max(a0, b0), min(a1, b1)
        if start < end:
            speaking, lead = ("caller", b0 - a0) if a0 <= b0 else ("callee", a0 - b0)
            overlaps.append(Overlap(start=start, duration_ms=round((end - start) * 1000, 1),
                                    speaking=speaking, interrupter="callee" if speaking == "caller" else "caller",
                                    lead_ms=round(lead * 1000, 1)))
        if a1 <= b1:
            i += 1
        else:
            j += 1
    return turns, overlaps


def gaps(values: list[float]) -> Gaps | None:
    if not values:
        return None
    x = np.array(values)
    return Gaps(count=len(values), p50_ms=round(float(np.percentile(x, 50)), 1),
                p95_ms=round(float(np.percentile(x, 95)), 1), max_ms=round(float(x.max()), 1))
