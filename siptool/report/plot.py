"""`siptool plot`: one call's media over time (matplotlib): jitter, packet arrival deltas and loss per
second for every stream, with the SIP events and the moments of the findings marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import Call, Severity

SEVERITY_COLORS = {Severity.CRITICAL: "#b71c1c", Severity.ERROR: "#c62828", Severity.WARNING: "#ef6c00",
                   Severity.INFO: "#607d8b"}
SIP_EVENTS = ("INVITE", "ACK", "BYE", "CANCEL")
MAX_MARKS = 40  # lines per finding (a loss finding may list every packet after a gap)


def lost_per_second(times: np.ndarray, sequence: np.ndarray, start: float, end: float):
    """(bin starts, packets lost per 1 s bin), by tshark's rule: lost = expected - received, with
    expected = last sequence - first + 1 (extended, RFC 3550 A.1), so duplicates count against loss.
    Each packet's share is charged to the second it arrived in: a packet raising the highest sequence
    seen by k adds k - 1, any other (duplicate, late) takes 1 away, and the last packet settles
    the difference between the highest and the last sequence. The bins add up to the stream's lost."""
    edges = np.arange(np.floor(start), np.ceil(end) + 1.0)
    if len(edges) < 2:
        edges = np.array([np.floor(start), np.floor(start) + 1.0])
    if len(sequence) < 2:
        return edges[:-1], np.zeros(len(edges) - 1, np.int64)
    highest = np.maximum.accumulate(sequence)
    share = np.diff(highest) - 1
    share[-1] += sequence[-1] - highest[-1]
    t = np.clip(times[1:], edges[0], edges[-1])
    counts, _ = np.histogram(t, bins=edges, weights=share)
    return edges[:-1], np.rint(counts).astype(np.int64)


def event_times(call: Call, series: dict) -> dict[int, float]:
    """Frame number -> capture time, for the call's SIP messages and every packet of its streams."""
    times: dict[int, float] = {step.frame: step.time for step in call.ladder}
    for s in call.streams:
        m = series.get((s.src, s.dst, s.ssrc))
        if m is not None and len(m.frames):
            times.update(zip(m.frames.tolist(), (m.start + m.times).tolist()))
    return times


def plot_call(call: Call, series: dict, path: Path, dpi: int = 100):
    """Draw the figure and save it; returns the Figure (closed) for callers that inspect it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    t0 = call.ladder[0].time if call.ladder else min(s.start for s in call.streams)
    speech = [s for s in call.streams if s.content is not None]  # content analysis: a speech panel
    rows = 4 if speech else 3
    fig, axes = plt.subplots(rows, 1, figsize=(11, 7.5 + 1.6 * (rows - 3)), dpi=dpi, sharex=True,
                             gridspec_kw={"height_ratios": [3, 3, 3, 2][:rows]})
    ax_jit, ax_delta, ax_loss = axes[:3]
    colors: dict[int, str] = {}
    width = 0.8 / max(len(call.streams), 1)
    for i, s in enumerate(call.streams):
        m = series.get((s.src, s.dst, s.ssrc))
        if m is None or not len(m.times):
            continue
        t = m.start + m.times - t0
        mos = f", MOS {s.mos:.2f}" if s.mos is not None else ""
        label = f"{s.src} -> {s.dst} {s.codec}{mos}"
        # RFC 3550 J holds its value until the next packet: steps, not a ramp across a gap.
        line, = ax_jit.plot(t, m.jitter_ms, lw=1.2, label=label, drawstyle="steps-post", gid="stream")
        color = colors[id(s)] = line.get_color()
        # One dot per packet: a 5.8 s gap is one dot at 5800 ms, not a line climbing to it.
        ax_delta.plot(t[1:], m.delta_ms[1:], ls="none", marker=".", ms=3, color=color, alpha=0.85, gid="stream")
        bins, lost = lost_per_second(t, m.sequence, min(0.0, t[0]), t[-1])
        extra = f" ({s.duplicates} dup)" if s.duplicates else ""
        ax_loss.bar(bins + 0.1 + i * width, lost, width=width, color=color, align="edge",
                    label=f"{int(lost.sum())} lost{extra}")
    if speech:
        _speech_panel(axes[3], speech, colors, t0)
    for ax in axes[:3]:  # before the event lines, which are no data
        _floor_zero(ax)
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
    _mark_findings(call, event_times(call, series), t0, axes)
    ax_jit.set_ylabel("jitter (ms)\nRFC 3550")
    ax_delta.set_ylabel("arrival delta (ms)")
    ax_loss.set_ylabel("lost packets\nper second")
    ax_loss.yaxis.set_major_locator(MaxNLocator(integer=True))
    if ax_loss.patches:
        ax_loss.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel(f"seconds since the first SIP message ({_clock(t0)} UTC)")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    if call.streams:
        ax_jit.legend(loc="best", fontsize=8, framealpha=0.85)
    status = f"{call.final_status} {call.final_reason}".strip() if call.final_status else call.state
    number = f"call {call.number}: " if call.number else ""
    fig.suptitle(f"{number}{call.from_user or call.from_uri} -> {call.to_user or call.to_uri}  {status}\n"
                 f"Call-ID {call.call_id}", fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, facecolor="white", format="png")
    plt.close(fig)
    return fig


def _speech_panel(ax, streams, colors: dict[int, str], t0: float) -> None:
    """Talk spurts (content analysis), one row per stream, in its colour: who spoke when, beside the
    network figures above."""
    labels = []
    for row, s in enumerate(streams):
        c = s.content
        spans = [(x.start - t0, x.end - x.start) for x in c.talk_spurts]
        ax.broken_barh(spans, (row - 0.35, 0.7), color=colors.get(id(s), "#43a047"), gid="speech")
        what = "silent" if c.silent else "not decoded" if not c.decoded else \
            f"{c.level_dbov:.0f} dBov" if c.level_dbov is not None else "no speech"
        labels.append(f"{c.side or s.src} ({what})")
    ax.set_yticks(range(len(streams)), labels, fontsize=8)
    ax.set_ylim(-0.6, len(streams) - 0.4)
    ax.invert_yaxis()
    ax.set_ylabel("speech")


def _mark_findings(call: Call, times: dict[int, float], t0: float, axes) -> None:
    """A line at each moment a finding points at (its frames: the packet after a gap, the message
    that failed...), its code written at the first; the codes of findings that start at the same
    moment are written once, joined."""
    labels: dict[float, tuple[list[str], str]] = {}
    for f in call.findings:
        when = sorted({times[x] for x in f.frames if x in times})[:MAX_MARKS]
        if not when:
            continue
        color = SEVERITY_COLORS.get(f.severity, "#607d8b")
        for x in when:
            for ax in axes:
                ax.axvline(x - t0, color=color, lw=1.2, alpha=0.7)
        codes, first_color = labels.setdefault(when[0], ([], color))
        if f.code not in codes:
            codes.append(f.code)
    for x, (codes, color) in labels.items():
        axes[-1].annotate(", ".join(codes), (x - t0, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                          va="top", ha="left", fontsize=7, color=color)


def _floor_zero(ax) -> None:
    """Figures that cannot be negative start at 0, and an empty panel shows 0..1, not -0.04..0.04."""
    low, high = ax.get_ylim()
    data = [y for line in ax.get_lines() for y in np.asarray(line.get_ydata(), float).ravel() if np.isfinite(y)]
    data += [p.get_height() for p in ax.patches]
    if not data or max(abs(v) for v in data) == 0:
        ax.set_ylim(0, 1)
    elif min(data) >= 0:
        ax.set_ylim(0, max(high, 1e-9))


def _clock(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
