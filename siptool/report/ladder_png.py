"""The ladder as a PNG (matplotlib) for chat tools and tickets that do not take SVG: the same
picture as the SVG (ladder_picture), drawn pixel for pixel at 1 px per SVG unit."""

from __future__ import annotations

from pathlib import Path

from .ladder_layout import Ladder
from .ladder_picture import HEAD, MARKERS, Box, Group, Stroke, Text, picture

HA = {"start": "left", "middle": "center", "end": "right"}


def png(ladder: Ladder, path: Path, dpi: int = 100) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch, Polygon

    pic = picture(ladder)
    pt = 72.0 / dpi  # points per pixel
    fig = plt.figure(figsize=(pic.width / dpi, pic.height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, pic.width)
    ax.set_ylim(pic.height, 0)
    ax.axis("off")

    def draw(item) -> None:
        if isinstance(item, Group):
            for x in item.items:
                draw(x)
        elif isinstance(item, Text):
            halo = item.role in ("label", "note")
            t = ax.text(item.x, item.y, item.text, color=item.fill, fontsize=item.size * pt, ha=HA[item.anchor],
                        va="baseline", family="DejaVu Sans Mono", fontweight="bold" if item.bold else "normal")
            if halo:
                import matplotlib.patheffects as pe

                t.set_path_effects([pe.withStroke(linewidth=3 * pt, foreground="white")])
        elif isinstance(item, Box):
            ax.add_patch(FancyBboxPatch((item.x, item.y), item.w, item.h, boxstyle="round,pad=0,rounding_size=3",
                                        fc=item.fill, ec=item.stroke, lw=pt))
        else:
            assert isinstance(item, Stroke)
            xs, ys = zip(*item.points)
            style = (0, tuple(d / item.width for d in item.dash)) if item.dash else "-"  # scaled by lw
            (x1, y1), (x2, y2) = item.points[-2], item.points[-1]
            if item.marker:  # stop the line at the head's base, then the head: HEAD px long, 0.8 wide
                length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
                ux, uy = (x2 - x1) / length, (y2 - y1) / length
                xs = xs[:-1] + (x2 - ux * HEAD * 0.8,)
                ys = ys[:-1] + (y2 - uy * HEAD * 0.8,)
                half = HEAD * 0.4
                bx, by = x2 - ux * HEAD, y2 - uy * HEAD
                ax.add_patch(Polygon([(x2, y2), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)],
                                     closed=True, fc=MARKERS[item.marker], ec="none"))
            ax.plot(xs, ys, color=item.color, lw=item.width * pt, alpha=item.opacity, ls=style,
                    solid_capstyle="butt")

    for item in pic.items:
        draw(item)
    fig.savefig(path, dpi=dpi, facecolor="white", format="png")
    plt.close(fig)
    return Path(path)
