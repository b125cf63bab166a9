"""The ladder as a picture: texts, lines and boxes placed in pixels, once, for the SVG and the PNG.

Text is monospace, so its width is known from its length: columns are as wide as their labels need
(within bounds), longer labels are folded onto more lines (never cut), and each row is as tall as its
lines. Arrowheads have one size in pixels whatever the stroke. Every text box is kept clear of the
others and of the arrowheads (tests/interop/test_pictures_chromium.py checks it in Chromium).

With speech lanes (content analysis), the ladder's rows are its time axis: rows are spaced at least
in proportion to the time between them (`seconds_px`), a time between two rows lies between them in
proportion, and each side's talk spurts are boxes in a lane of its own beside the ladder, from the
height of their start to the height of their end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ladder_layout import Ladder, clock, delta_text, fold, fold_host

COLORS = {"request": "#1f5fa8", "provisional": "#a06a00", "success": "#1a7f37", "failure": "#c62828"}
RETRANS, MEDIA, BAD = "#999999", "#7b1fa2", "#c62828"
MARKERS = {**COLORS, "retrans": RETRANS, "media": MEDIA, "bad": BAD}
EM = 0.61  # advance of a monospace character, in font sizes (DejaVu Sans Mono: 0.602)
MIN_COL, MAX_COL = 200, 320  # px per host column
PAD = 16  # px kept free at each end of an arrow: its head, and a gap
HEAD = 10  # arrowhead length in px (its width is 0.8 of that)
LINE = {14: 17, 12: 15, 11: 14, 10: 12}  # line height per font size


def width_of(text: str, size: int = 12) -> float:
    return len(text) * size * EM


def chars(px: float, size: int = 12) -> int:
    return max(int(px / (size * EM)), 1)


@dataclass(slots=True)
class Text:
    x: float
    y: float  # baseline
    text: str
    fill: str
    size: int = 12
    anchor: str = "start"  # start, middle, end (SVG text-anchor)
    bold: bool = False
    role: str = ""  # label, note, host, title...: halo and tests read it


@dataclass(slots=True)
class Stroke:
    """A polyline; `marker` names the arrowhead at its end ("" for none)."""

    points: list[tuple[float, float]]
    color: str
    width: float = 1.6
    dash: tuple[float, ...] = ()
    opacity: float = 1.0
    marker: str = ""


@dataclass(slots=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    fill: str
    stroke: str


@dataclass(slots=True)
class Group:
    """The parts of one message or band, with its hover text (the SVG's <title>)."""

    kind: str  # msg, rtp
    title: str
    items: list = field(default_factory=list)


@dataclass
class Picture:
    width: int
    height: int
    items: list = field(default_factory=list)  # Text, Stroke, Box, Group


def picture(ladder: Ladder) -> Picture:
    n = max(len(ladder.hosts), 2)
    dw = max((len(delta_text(r.delta)) for r in ladder.rows), default=0)
    fw = max([len(f"#{r.frame}") for r in ladder.rows] + [len(f"#{b.frame}") for b in ladder.bands] + [0])
    tw = max([len(r.transport) for r in ladder.rows] + [3])
    x_delta = 10 + width_of(" " * (12 + 2 + dw))  # right edge of the delta
    x_frame = x_delta + width_of(" " * (2 + fw))  # right edge of the frame number
    x_transport = x_frame + width_of("  ")
    left = x_transport + width_of(" " * tw) + 16
    need = [width_of(h) + 24 for h in ladder.hosts]
    need += [(max(width_of(r.text), width_of(r.note, 10)) + 2 * PAD) / abs(r.dst - r.src)
             for r in ladder.rows if r.src != r.dst]
    need += [(width_of(b.label, 11) / 2 + 2 * PAD) / abs(b.dst - b.src) for b in ladder.bands if b.src != b.dst]
    col_w = max(MIN_COL, min(MAX_COL, max(need, default=MIN_COL)))
    xs = [left + col_w / 2 + i * col_w for i in range(n)]
    items: list = []
    right = xs[-1] + col_w / 2  # grows with labels right of the last column (messages to itself)

    def room(src: int, dst: int, size: int) -> tuple[int, float, str]:
        """Characters a label may have, its x and anchor: centred over an arrow, or right of a loop."""
        if src == dst:
            end = xs[src + 1] - 8 if src + 1 < len(xs) else xs[src] + col_w
            return chars(end - xs[src] - 38, size), xs[src] + 36, "start"
        return chars(abs(xs[dst] - xs[src]) - 2 * PAD, size), (xs[src] + xs[dst]) / 2, "middle"

    def arrow(src: int, dst: int, y: float, color: str, width: float, dash=(), opacity=1.0, marker=""):
        x = xs[src]
        if src == dst:  # a loop right of the column, back into it
            points = [(x, y - 8), (x + 28, y - 8), (x + 28, y + 8), (x + 2, y + 8)]
        else:
            points = [(x, y), (xs[dst], y)]
        return Stroke(points, color, width, dash, opacity, marker)

    def left_columns(y: float, when: float, delta: str, frame: int, transport: str) -> list[Text]:
        out = [Text(10, y, clock(when), "#555")]
        if delta:
            out.append(Text(x_delta, y, delta, "#888", anchor="end"))
        if frame:
            out.append(Text(x_frame, y, f"#{frame}", "#888", anchor="end"))
        return out + [Text(x_transport, y, transport, "#888")]

    names = [fold_host(h, chars(col_w - 24)) for h in ladder.hosts]
    top, head_h = 52, 6 + LINE[12] * max((len(x) for x in names), default=1)
    for x, lines in zip(xs, names):
        items.append(Box(x - col_w / 2 + 8, top, col_w - 16, head_h, "#eef2f7", "#88aaaa"))
        items += [Text(x, top + 16 + k * LINE[12], line, "#222", anchor="middle", bold=True, role="host")
                  for k, line in enumerate(lines)]
    y = top + head_h + 14  # top of the next row's first line of text
    px_s = seconds_px(ladder)  # with speech lanes, rows are spaced in time: at least this many px a second
    axis: list[tuple[float, float]] = []  # (capture time, y) of each row's arrow: the lanes' time axis
    for row in ladder.rows:
        color = RETRANS if row.retransmission else COLORS[row.kind]
        chars_12, tx, anchor = room(row.src, row.dst, 12)
        lines = fold(row.text, chars_12)
        notes = fold(row.note, room(row.src, row.dst, 10)[0]) if row.note else []
        at = y + 20 + (len(lines) - 1) * LINE[12]
        if axis and px_s:
            at = max(at, axis[-1][1] + max(row.time - axis[-1][0], 0.0) * px_s)
        axis.append((max(row.time, axis[-1][0]) if axis else row.time, at))
        group = Group("msg", f"frame {row.frame} {row.transport}: {row.text} {row.note}".strip())
        group.items.append(arrow(row.src, row.dst, at, color, 1.6 if row.src != row.dst else 1.4,
                                 (6, 4) if row.retransmission else (), 1.0,
                                 "retrans" if row.retransmission else row.kind))
        group.items += [Text(tx, at - 8 - (len(lines) - 1 - k) * LINE[12], line, color, anchor=anchor, role="label")
                        for k, line in enumerate(lines)]
        group.items += [Text(tx, at + 15 + k * LINE[10], line, "#666", 10, anchor, role="note")
                        for k, line in enumerate(notes)]
        if row.src == row.dst:
            right = max([right] + [tx + width_of(t.text, t.size) + 10 for t in group.items if isinstance(t, Text)])
        items.append(group)
        items += left_columns(at + 4, row.time, delta_text(row.delta), row.frame, row.transport)
        y = at + (15 + (len(notes) - 1) * LINE[10] + 8 if notes else 10)
    y += 6
    for band in ladder.bands:
        color = BAD if band.bad else MEDIA
        chars_11, tx, anchor = room(band.src, band.dst, 11)
        lines = fold(band.label, chars_11)
        at = y + 20 + (len(lines) - 1) * LINE[11]
        group = Group("rtp", band.label)
        group.items.append(arrow(band.src, band.dst, at, color, 5 if band.src != band.dst else 4, (), 0.35,
                                 "bad" if band.bad else "media"))
        group.items += [Text(tx, at - 9 - (len(lines) - 1 - k) * LINE[11], line, color, 11, anchor, role="label")
                        for k, line in enumerate(lines)]
        if band.src == band.dst:
            right = max([right] + [tx + width_of(t.text, 11) + 10 for t in group.items if isinstance(t, Text)])
        items.append(group)
        items += left_columns(at + 4, band.start, "", band.frame, "RTP")
        y = at + 10
    bottom = y + 8
    if ladder.lanes:
        lane_items, bottom, right = _lanes(ladder, axis, px_s, right + 24, top, bottom)
        items += lane_items
    lifelines = [Stroke([(x, top + head_h), (x, bottom)], "#bbbbbb", 1, (4, 3)) for x in xs[:len(ladder.hosts)]]
    width = int(max(right + 10, 20 + width_of(ladder.title, 14), 20 + width_of(ladder.subtitle)) + 1)
    heading = [Text(10, 20, ladder.title, "#222", 14, bold=True, role="title"),
               Text(10, 38, ladder.subtitle, "#555", role="subtitle")]
    return Picture(width, int(bottom + 12), heading + lifelines + items)


LANE_W = 22  # px: a lane's strip
LANE_COL = 100  # px per lane: its strip and its title
SPEECH, SPEECH_EDGE = "#66bb6a", "#2e7d32"
LANES_PX = 900  # the call's time takes about this much height with lanes ...
PX_S_MIN, PX_S_MAX = 8, 80  # ... at least and at most this many px a second


def seconds_px(ladder: Ladder) -> float:
    """Px per second of the ladder's time axis when it has speech lanes (0: rows as tall as their text)."""
    if not ladder.lanes:
        return 0.0
    t0, t1 = ladder.span
    return min(PX_S_MAX, max(PX_S_MIN, LANES_PX / max(t1 - t0, 1e-3)))


def height_at(axis: list[tuple[float, float]], px_s: float, t: float) -> float:
    """The height of capture time t on the rows' time axis: between the rows around it in proportion,
    before the first row at its height, after the last at px_s a second."""
    if t <= axis[0][0]:
        return axis[0][1]
    for (ta, ya), (tb, yb) in zip(axis, axis[1:]):
        if t <= tb:
            return ya + (yb - ya) * (t - ta) / (tb - ta) if tb > ta else yb
    return axis[-1][1] + (t - axis[-1][0]) * px_s


def _lanes(ladder: Ladder, axis: list[tuple[float, float]], px_s: float, x0: float, top: float,
           bottom: float) -> tuple[list, float, float]:
    """One lane per side beside the ladder (right of `x0`) on the rows' time axis: each talk spurt a
    box from the height of its start to that of its end; the answer and the BYE as lines across
    the lanes at their rows' heights; seconds from the first message marked right of the lanes.
    Returns the items, the bottom and the right edge."""
    t0, t1 = ladder.span
    y0, y1 = height_at(axis, px_s, t0), height_at(axis, px_s, t1)
    strips = [x0 + i * LANE_COL + (LANE_COL - LANE_W) / 2 for i in range(len(ladder.lanes))]
    right_of = x0 + len(ladder.lanes) * LANE_COL
    items: list = []
    for x, lane in zip(strips, ladder.lanes):
        centre = x + LANE_W / 2
        group = Group("lane", f"{lane.label}: {lane.streams}" + (f" ({lane.note})" if lane.note else ""))
        group.items.append(Text(centre, top + 14, lane.label, "#333", 11, "middle", role="lane"))
        if lane.note:
            group.items.append(Text(centre, top + 28, lane.note, "#666", 10, "middle", role="note"))
        group.items.append(Box(x, y0, LANE_W, max(y1 - y0, 1.0), "#f4f4f4", "#dddddd"))
        for a, b in lane.spurts:
            spurt = Group("speech", f"{lane.label} {a - t0:.2f}-{b - t0:.2f} s")
            ya = height_at(axis, px_s, a)
            spurt.items.append(Box(x + 2, ya, LANE_W - 4, max(height_at(axis, px_s, b) - ya, 1.0), SPEECH, SPEECH_EDGE))
            group.items.append(spurt)
        items.append(group)
    for m in ladder.marks:  # the answer and the BYE, on their rows' height
        y = height_at(axis, px_s, m.time)
        items.append(Group("mark", f"{m.label} #{m.frame}", [Stroke([(x0, y), (right_of, y)], "#9e9e9e", 1, (3, 3))]))
    taken: list[tuple[float, float]] = []  # the seconds' labels' heights
    step = next(s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
                if s * px_s >= 40 or s == 3600)
    k = 0
    while t0 + k * step <= t1 + 1e-9:
        y = height_at(axis, px_s, t0 + k * step)
        if not any(abs(y - h) < LINE[10] + 2 for h in taken):
            taken.append(y)
            items.append(Stroke([(right_of - 4, y), (right_of + 2, y)], "#888888", 1))
            items.append(Text(right_of + 6, y + 4, f"{k * step:g} s", "#666", 10, role="axis"))
        k += 1
    return items, max(bottom, y1 + 12), right_of + 6 + width_of(f"{k * step:g} s", 10) + 10
