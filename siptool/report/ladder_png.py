"""The ladder as a PNG (matplotlib), from the same geometry as the SVG: for chat tools and tickets
that do not take SVG."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .ladder_layout import Ladder
from .ladder_svg import COLORS


def png(ladder: Ladder, path: Path, dpi: int = 110) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(ladder.hosts), 2)
    rows = len(ladder.rows) + len(ladder.bands) + 1
    fig_w, fig_h = 2.0 + 2.4 * n, 1.3 + 0.34 * rows
    fig, ax = plt.subplots(figsize=(fig_w, fig_h), dpi=dpi)
    ax.set_xlim(-1.6, n - 0.4)
    ax.set_ylim(rows + 0.3, -1.4)
    ax.axis("off")
    fig.suptitle(ladder.title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    ax.text(-1.6, -1.25, ladder.subtitle, fontsize=8, color="#555", va="bottom")
    for i, host in enumerate(ladder.hosts):
        ax.text(i, -0.55, host, ha="center", va="center", fontsize=8, fontweight="bold", family="monospace",
                bbox={"boxstyle": "round,pad=0.3", "fc": "#eef2f7", "ec": "#88aaaa"})
        ax.plot([i, i], [-0.3, rows], color="#bbbbbb", lw=0.8, ls=(0, (4, 3)))
    y = 0.5
    for row in ladder.rows:
        clock = datetime.fromtimestamp(row.time, timezone.utc).strftime("%H:%M:%S.%f")[:12]
        delta = f"+{row.delta * 1000:.1f} ms" if row.delta < 1 else f"+{row.delta:.3f} s"
        ax.text(-1.55, y, f"{clock}  {delta:>10}", fontsize=7, color="#555", va="center", family="monospace")
        color = "#999999" if row.retransmission else COLORS[row.kind]
        label = row.label + (" (retrans)" if row.retransmission else "")
        if row.src == row.dst:
            ax.annotate("", xy=(row.src, y + 0.15), xytext=(row.src + 0.25, y - 0.15),
                        arrowprops={"arrowstyle": "->", "color": color, "connectionstyle": "arc3,rad=-0.8"})
            ax.text(row.src + 0.3, y, label, fontsize=7.5, color=color, va="center")
        else:
            ax.annotate("", xy=(row.dst, y), xytext=(row.src, y),
                        arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.3,
                                    "ls": "--" if row.retransmission else "-"})
            mid = (row.src + row.dst) / 2
            ax.text(mid, y - 0.12, label, fontsize=7.5, color=color, ha="center", va="bottom")
            if row.note:
                ax.text(mid, y + 0.1, row.note, fontsize=6, color="#777", ha="center", va="top")
        y += 1
    for band in ladder.bands:
        color = "#c62828" if band.bad else "#7b1fa2"
        ax.annotate("", xy=(band.dst, y), xytext=(band.src, y),
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 4, "alpha": 0.45})
        ax.text((band.src + band.dst) / 2, y - 0.15, band.label, fontsize=7, color=color, ha="center", va="bottom")
        y += 1
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.5 / fig_h, bottom=0.02)
    fig.savefig(path, dpi=dpi, facecolor="white")
    plt.close(fig)
    return Path(path)
