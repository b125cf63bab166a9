"""Capture-wide call metrics (RFC 6076 where it defines them; ASR per ITU-T E.411).

Attempts are INVITE sessions (one Call-ID), so an INVITE challenged 401/407 and re-sent with
credentials is one attempt, judged by its last outcome.
"""

from __future__ import annotations

import numpy as np

from ..report.model import Call, Metrics

EFFECTIVE = {200, 480, 486, 600, 603}  # RFC 6076 SEER numerator codes
INEFFECTIVE = {408, 500, 503, 504}  # RFC 6076 ISA codes


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 2) if den else None


def _quantile(ordered: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile of sorted values, without np.percentile's import of numpy.ma."""
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def _stats(values: list[float], total: bool = False) -> dict[str, float]:
    if not values:
        return {}
    a = np.sort(np.asarray(values, dtype=float))
    out = {"count": int(a.size), "mean": round(float(a.mean()), 3), "median": round(_quantile(a, 0.5), 3),
           "p95": round(_quantile(a, 0.95), 3), "max": round(float(a[-1]), 3)}
    if total:
        out["total"] = round(float(a.sum()), 3)
    return out


def compute_metrics(calls: list[Call]) -> Metrics:
    m = Metrics()
    sessions = [c for c in calls if c.kind == "call"]
    m.calls = len(sessions)
    for c in calls:
        m.sip_messages += c.messages
        m.retransmissions += c.retransmissions
        for method, n in c.requests.items():
            m.methods[method] = m.methods.get(method, 0) + n
    finals = [c.final_status for c in sessions]
    for code in finals:
        key = str(code) if code is not None else "none"
        m.final_codes[key] = m.final_codes.get(key, 0) + 1
    m.answered = sum(1 for c in sessions if c.answer is not None)
    m.cancelled = sum(1 for c in sessions if c.state == "cancelled")
    m.failed = sum(1 for c in sessions if c.state == "failed")
    m.in_progress = sum(1 for c in sessions if c.state == "in-progress")
    m.no_answer = sum(1 for c in sessions if c.final_status in (408, 480, 487) and c.answer is None)
    m.dropped = sum(1 for c in sessions if c.answer is not None and c.ack_missing and (
        c.ok_retransmissions or (c.duration_s is not None and 28 <= c.duration_s <= 40)))
    redirected = sum(1 for code in finals if code is not None and 300 <= code < 400)
    base = m.calls - redirected
    m.session_establishment_ratio = _pct(m.answered, base)
    m.session_establishment_effectiveness_ratio = _pct(
        sum(1 for c in sessions if c.answer is not None or c.final_status in EFFECTIVE), base)
    m.ineffective_session_attempts = _pct(sum(1 for code in finals if code in INEFFECTIVE), m.calls)
    m.answer_seizure_ratio = _pct(m.answered, m.calls)
    m.session_success_ratio = _pct(m.answered - m.dropped, base)
    m.session_completion_ratio = _pct(sum(1 for c in sessions if c.state == "completed"), m.calls)
    m.pdd_ms = _stats([c.pdd_ms for c in sessions if c.pdd_ms is not None])
    m.session_duration_s = _stats([c.duration_s for c in sessions if c.duration_s is not None], total=True)
    return m
