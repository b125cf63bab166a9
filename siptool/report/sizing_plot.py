"""`siptool plot --sizing`: the capture's concurrency and failures over time (matplotlib), from the
report's Sizing series: channels held and answered calls up per step, the Erlang-B channel counts,
and attempts with their 503/486/480 per step."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .model import Sizing

FAILURE_COLORS = {"503": "#c62828", "486": "#ef6c00", "480": "#6a1b9a"}


def plot_sizing(sizing: Sizing, path: Path, title: str, dpi: int = 100):
    """Draw the figure and save it as PNG; returns the (closed) Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    series = sizing.series
    minutes = series.step_s * len(series.channels) > 2 * 3600
    unit = 60.0 if minutes else 1.0
    x = np.arange(len(series.channels)) * series.step_s / unit
    edges = np.append(x, x[-1] + series.step_s / unit)  # a step line reaches the end of its last step

    def held(values: list) -> list:
        return list(values) + list(values[-1:])

    fig, (ax_held, ax_calls) = plt.subplots(2, 1, figsize=(11, 7), dpi=dpi, sharex=True,
                                            gridspec_kw={"height_ratios": [3, 2]})
    ax_held.step(edges, held(series.channels), where="post", lw=1.4, color="#1f5fa8",
                 label="channels held (most per step)", gid="channels")
    ax_held.step(edges, held(series.answered), where="post", lw=1.2, color="#1a7f37", label="answered calls up",
                 gid="answered")
    ax_held.step(edges, held(series.erlangs), where="post", lw=1.0, color="#607d8b", ls="--",
                 label="traffic (mean channels held), E", gid="erlangs")
    if sizing.channels is not None:
        ax_held.axhline(sizing.channels, color="#9e9e9e", lw=1, ls=":",
                        label=f"Erlang-B {sizing.channels} channels at {sizing.gos * 100:g} % blocking")
        ax_held.axhline(sizing.channels_with_headroom, color="#616161", lw=1, ls="-.",
                        label=f"{sizing.channels_with_headroom} with {sizing.headroom_pct:g} % growth")
    for onset in sizing.onsets:
        color = FAILURE_COLORS.get(str(onset.status), "#c62828")
        ax_held.axhline(onset.level, color=color, lw=0.8, alpha=0.6,
                        label=f"{onset.status}s begin with {onset.level} held")
    width = series.step_s / unit
    ax_calls.bar(x, series.attempts, width=width, align="edge", color="#b0bec5", label="attempts (INVITE sessions)",
                 gid="attempts")
    bottom = np.zeros(len(x))
    for code in sorted(series.failures):
        counts = np.asarray(series.failures[code], float)
        ax_calls.bar(x, counts, width=width, align="edge", bottom=bottom, color=FAILURE_COLORS.get(code, "#c62828"),
                     label=f"{code} ({int(counts.sum()):,})", gid=code)
        bottom += counts
    ax_held.set_ylabel("channels")
    ax_calls.set_ylabel(f"calls per {series.step_s:g} s")
    for ax in (ax_held, ax_calls):
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.85)
    ax_calls.set_xlabel(f"{'minutes' if minutes else 'seconds'} since {_clock(series.start)} UTC")
    fig.suptitle(f"{title}\npeak {sizing.peak_channels} channels held, {sizing.peak_answered} answered up; "
                 f"{sizing.window}: {_erlangs(sizing)}", fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, facecolor="white", format="png")
    plt.close(fig)
    return fig


def _erlangs(sizing: Sizing) -> str:
    if sizing.offered_erlangs is None:
        return "no traffic figure"
    return f"{sizing.offered_erlangs:,.2f} E offered"


def _clock(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
