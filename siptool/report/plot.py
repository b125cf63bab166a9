"""`siptool plot`: one call's media over time (matplotlib): jitter, packet arrival deltas and loss per
second for every stream, with the SIP events and the moments of the findings marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import Call

SEVERITY_COLORS = {"critical": "#b71c1c", "error": "#c62828", "warning": "#ef6c00", "info": "#607d8b"}
SIP_EVENTS = ("INVITE", "ACK", "BYE", "CANCEL")


def lost_per_second(times: np.ndarray, sequence: np.ndarray, start: float, end: float):
    """(bin starts, packets missing per 1 s bin): a gap in the extended sequence numbers is charged
    to the second in which the packet after the gap arrived."""
    edges = np.arange(np.floor(start), np.ceil(end) + 1.0)
    if len(sequence) < 2 or len(edges) < 2:
        return edges[:-1], np.zeros(max(len(edges) - 1, 0))
    order = np.argsort(sequence, kind="stable")
    seq, t = sequence[order], times[order]
    gaps = np.diff(seq) - 1
    gaps[gaps < 0] = 0  # duplicates
    counts, _ = np.histogram(t[1:], bins=edges, weights=gaps)
    return edges[:-1], counts


def plot_call(call: Call, series: dict, path: Path, dpi: int = 100):
    """Draw the figure and save it; returns the Figure (closed) for callers that inspect it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = call.ladder[0].time if call.ladder else min(s.start for s in call.streams)
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), dpi=dpi, sharex=True)
    ax_jit, ax_delta, ax_loss = axes
    width = 0.8 / max(len(call.streams), 1)
    frame_times: dict[int, float] = {step.frame: step.time for step in call.ladder}
    for i, s in enumerate(call.streams):
        m = series.get((s.src, s.dst, s.ssrc))
        if m is None or not len(m.times):
            continue
        t = m.start + m.times - t0
        mos = f", MOS {s.mos:.2f}" if s.mos is not None else ""
        label = f"{s.src} -> {s.dst} {s.codec}{mos}"
        line, = ax_jit.plot(t, m.jitter_ms, lw=1.2, label=label)
        color = line.get_color()
        ax_delta.plot(t[1:], m.delta_ms[1:], lw=0.8, color=color, alpha=0.85)
        bins, lost = lost_per_second(t, m.sequence, 0.0 if t[0] > 0 else t[0], t[-1])
        ax_loss.bar(bins + 0.1 + i * width, lost, width=width, color=color, align="edge",
                    label=f"{int(lost.sum())} lost")
        frame_times.update({int(f): float(m.start + x) for f, x in zip(m.frames[:1], m.times[:1])})
    events: list[tuple[float, str]] = []  # SIP moments; labels of near-simultaneous ones are joined
    for step in call.ladder:
        if step.method in SIP_EVENTS and step.status is None and not step.retransmission or (
                step.status is not None and 200 <= step.status and step.method == "INVITE"):
            x = step.time - t0
            if events and x - events[-1][0] < 0.02 * max(call.ladder[-1].time - t0, 1.0):
                events[-1] = (events[-1][0], f"{events[-1][1]}/{step.label}")
            else:
                events.append((x, step.label))
    for x, label in events:
        for ax in axes:
            ax.axvline(x, color="#9e9e9e", lw=0.8, ls=":")
        ax_delta.annotate(label, (x, 0.98), xycoords=("data", "axes fraction"), rotation=90, va="top",
                          ha="right", fontsize=7, color="#616161")
    for f in call.findings:
        when = next((frame_times[x] for x in f.frames if x in frame_times), None)
        if when is None:
            continue
        color = SEVERITY_COLORS.get(f.severity, "#607d8b")
        for ax in axes:
            ax.axvline(when - t0, color=color, lw=1.2, alpha=0.7)
        ax_loss.annotate(f.code, (when - t0, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                         va="top", ha="left", fontsize=7, color=color)
    ax_jit.set_ylabel("jitter (ms)\nRFC 3550")
    ax_delta.set_ylabel("arrival delta (ms)")
    ax_loss.set_ylabel("lost packets\nper second")
    if any(p.get_height() for p in ax_loss.patches):
        ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.set_xlabel(f"seconds since the first SIP message ({_clock(t0)} UTC)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if call.streams:
        ax_jit.legend(loc="best", fontsize=8, framealpha=0.85)
    status = f"{call.final_status} {call.final_reason}".strip() if call.final_status else call.state
    fig.suptitle(f"{call.from_user or call.from_uri} -> {call.to_user or call.to_uri}  {status}\n"
                 f"Call-ID {call.call_id}", fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return fig


def _clock(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
