"""A test call to a voice agent (`call --say`, `check` type voice_agent): its latencies, read from
the call's content analysis (the talk spurts of our stream and of the far end's, conversation.py)
and what the agent said when (call.agent.said). Nothing here listens to audio: each figure comes from
the speech activity `analyze --content` finds in the same packets.

- greeting: the 200 OK to the far end's first talk spurt (the Conversation's callee_first_speech_ms);
- each prompt: from the end of our speech in it (our last talk spurt that began while it played) to
  the far end's next talk spurt that began after our speech did; negative when the far end started
  before we finished; None when it did not speak before our next prompt began (no answer);
- overlap: both speaking; talk-over: the media.talk_over finding (the one rule for it);
- level: the far end's active speech level (its audio streams' content)."""

from __future__ import annotations

from ..report.model import Call, PromptTurn, Utterance, VoiceTest
from .conversation import union
from .thresholds import Thresholds

EDGE_S = 0.05  # our speech may be found this much before the prompt's first sample (a frame's edge)


def _spurts(call: Call, side: str) -> list[tuple[float, float]]:
    return union([(x.start, x.end) for s in call.streams if s.content is not None and s.content.side == side
                  for x in s.content.talk_spurts])


def _overlap(a: tuple[float, float], spurts: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(a[1], e) - max(a[0], s)) for s, e in spurts)


def prompt_turns(said: list[Utterance], ours: list[tuple[float, float]],
                 theirs: list[tuple[float, float]]) -> list[PromptTurn]:
    """Each prompt with the far end's answer to it (module docstring)."""
    out = []
    for i, u in enumerate(said):
        nxt = said[i + 1].start if i + 1 < len(said) else float("inf")
        mine = [(s, e) for s, e in ours if u.start - EDGE_S <= s < u.end]
        began = mine[0][0] if mine else u.start
        speech_end = mine[-1][1] if mine else u.end
        answer = next((s for s, _ in theirs if began < s < nxt), None)
        out.append(PromptTurn(
            prompt=u.label, start=u.start, end=u.end, speech_end=speech_end,
            response_ms=round((answer - speech_end) * 1000, 1) if answer is not None else None,
            overlap_ms=round(_overlap((began, speech_end), theirs) * 1000, 1)))
    return out


def voice_test(call: Call) -> VoiceTest | None:
    """The figures of a voice test (call.agent.said set by a test call with prompts), else None."""
    a, conv = call.agent, call.conversation
    if a is None or a.said is None:
        return None
    ours, theirs = _spurts(call, "caller"), _spurts(call, "callee")
    levels = [s.content.level_dbov for s in call.streams if s.content is not None and s.content.side == "callee"
              and s.content.level_dbov is not None]
    return VoiceTest(greeting_ms=conv.callee_first_speech_ms if conv is not None else None,
                     prompts=prompt_turns(a.said, ours, theirs),
                     overlap_ms=round(conv.overlap_s * 1000, 1) if conv is not None else 0.0,
                     talk_over=any(f.code == "media.talk_over" for f in call.findings),
                     level_dbov=max(levels) if levels else None)


def problems(v: VoiceTest, th: Thresholds) -> list[str]:
    """Why a voice test failed, one line each: no greeting or a late one, a prompt unanswered or
    answered late, talk-over."""
    out = []
    if v.greeting_ms is None:
        out.append("the far end never spoke (no greeting)")
    elif v.greeting_ms > th.greeting_ms:
        out.append(f"greeting latency {v.greeting_ms:.0f} ms > {th.greeting_ms:.0f} ms")
    for p in v.prompts:
        if p.response_ms is None:
            out.append(f"no answer to {p.prompt!r}")
        elif p.response_ms > th.response_ms:
            out.append(f"response latency to {p.prompt!r} {p.response_ms:.0f} ms > {th.response_ms:.0f} ms")
    if v.talk_over:
        out.append("the far end talked over us (media.talk_over)")
    return out
