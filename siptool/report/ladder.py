"""Text renderings of a call ladder: the terminal flow (like sngrep's) and a Mermaid sequence diagram.

The terminal ladder fits the width it is given: each message starts with its time, the delta from
the previous one, its frame number and transport; columns share what is left, and labels that do not
fit between two columns are folded onto the next lines, never cut (see ladder_layout.fold).
"""

from __future__ import annotations

from rich.text import Text

from .ladder_layout import Ladder, clock, delta_text, fold, fold_host

STYLES = {"request": "cyan", "provisional": "yellow", "success": "green", "failure": "red"}
MIN_COL, MAX_COL = 8, 40  # characters per host column
COMFORT = 16  # below this, the times go on lines of their own if that gives the columns more room


def terminal(ladder: Ladder, width: int = 100) -> list[Text]:
    """Lines of the ladder for a terminal of `width` columns (hosts as columns, arrows between).
    When the hosts do not fit beside the time columns, each message's time goes on a line of its own."""
    n = max(len(ladder.hosts), 2)
    dw = max((len(delta_text(r.delta)) for r in ladder.rows), default=0)
    fw = max([len(f"#{r.frame}") for r in ladder.rows] + [len(f"#{b.frame}") for b in ladder.bands] + [0])
    tw = max([len(r.transport) for r in ladder.rows] + [3])

    def prefix(when: str, delta: str, frame: str, transport: str) -> str:
        """ "00:56:37.943   +0.2 ms    #3 UDP": aligned over all rows of the ladder."""
        return f"{when} {delta:>{dw}} {frame:>{fw}} {transport:<{tw}}"

    prefixes = [prefix(clock(r.time), delta_text(r.delta), f"#{r.frame}", r.transport) for r in ladder.rows]
    prefixes += [prefix(clock(b.start), "", f"#{b.frame}" if b.frame else "", "RTP") for b in ladder.bands]
    lead = max((len(p) for p in prefixes), default=0) + 1
    stacked = (width - lead) // n < COMFORT and width // n > (width - lead) // n
    if stacked:
        lead = 0
    col_w = max(MIN_COL, min(MAX_COL, (width - lead) // n))
    centers = [lead + col_w // 2 + i * col_w for i in range(n)]
    total = lead + n * col_w
    out = [Text(line, style="bold") for line in fold(ladder.title, width)]
    out += [Text(line, style="dim") for line in _fold_facts(ladder.subtitle, width)]
    names = [fold_host(h, col_w - 1) for h in ladder.hosts]
    for k in range(max((len(x) for x in names), default=0)):
        head = [" "] * total
        for c, lines in zip(centers, names):
            if k < len(lines):
                start = max(0, min(c - len(lines[k]) // 2, total - len(lines[k])))
                head[start:start + len(lines[k])] = list(lines[k])
        out.append(Text("".join(head).rstrip(), style="bold"))
    items = [(r.src, r.dst, r.text, r.note, "─", "dim" if r.retransmission else STYLES[r.kind]) for r in ladder.rows]
    items += [(b.src, b.dst, b.label.removeprefix("RTP "), "", "═", "bold red" if b.bad else "magenta")
              for b in ladder.bands]
    for prefix, (a, b, label, note, fill, style) in zip(prefixes, items):
        lines = _arrow_lines(centers, total, a, b, label, note, fill)
        if stacked:
            out.append(Text(prefix, style="dim"))
        for k, line in enumerate(lines):
            text = Text((prefix if k == 0 and not stacked else "").ljust(lead), style="dim")
            text.append(line[lead:], style=style)
            out.append(text)
    return out


def _fold_facts(text: str, width: int) -> list[str]:
    """The subtitle ("Call-ID x, PDD 2 ms, ...") folded between its facts where it can be."""
    lines: list[str] = []
    for fact in text.split(", "):
        if lines and len(lines[-1]) + 3 + len(fact) <= width:  # room for the comma after it too
            lines[-1] += ", " + fact
        else:
            if lines:
                lines[-1] += ","
            lines += fold(fact, width - 1)
    return lines


def _arrow_lines(centers: list[int], total: int, a: int, b: int, label: str, note: str, fill: str) -> list[str]:
    """The arrow's line with the first line of its label on it, then the rest of the label and the
    note, each centred between the two columns (with the other columns' bars kept)."""
    def bars() -> list[str]:
        chars = [" "] * total
        for c in centers:
            chars[c] = "│"
        return chars

    if a == b:  # a message from a host to itself: "⟲ label" right of its column
        left = centers[a] + 1
        right = centers[a + 1] if a + 1 < len(centers) else total
        texts = _texts(label, note, right - left - 3)
        lines = []
        for k, t in enumerate(texts):
            chars = bars()
            t = ("⟲ " if k == 0 else "  ") + t
            chars[left:left + len(t)] = list(t)
            lines.append("".join(chars).rstrip())
        return lines
    left, right = sorted((centers[a], centers[b]))
    first = bars()
    for x in range(left + 1, right):
        first[x] = fill
    if b > a:
        first[right - 1] = "▶"
    else:
        first[left + 1] = "◀"
    texts = _texts(label, note, right - left - 5)
    lines = []
    for k, t in enumerate(texts):
        chars = first if k == 0 else bars()
        t = f" {t} "
        start = left + 1 + (right - left - 1 - len(t)) // 2
        chars[start:start + len(t)] = list(t)
        lines.append("".join(chars).rstrip())
    return lines


def _texts(label: str, note: str, room: int) -> list[str]:
    """Label and note on one line when they fit ("INVITE  SDP PCMU"), else folded to `room`."""
    room = max(room, 1)
    if note and len(label) + 2 + len(note) <= room:
        return [f"{label}  {note}"]
    return fold(label, room) + (fold(note, room) if note else [])


def mermaid(ladder: Ladder) -> str:
    """A Mermaid `sequenceDiagram`: participants are the hosts, retransmissions dotted."""
    names = [f"H{i}" for i in range(len(ladder.hosts))]
    lines = ["sequenceDiagram", f"    title {_safe(ladder.title)}", f"    %% {_comment(ladder.subtitle)}"]
    lines += [f"    participant {n} as {_safe(h)}" for n, h in zip(names, ladder.hosts)]
    for row in ladder.rows:
        arrow = "-->>" if row.retransmission or row.kind == "provisional" else "->>"
        label = row.text + (f" [{row.note}]" if row.note else "")
        lines.append(f"    {names[row.src]}{arrow}{names[row.dst]}: {_safe(label)}")
    for band in ladder.bands:
        over = names[band.src] if band.src == band.dst else f"{names[band.src]},{names[band.dst]}"
        lines.append(f"    Note over {over}: {_safe(band.label)}")
    return "\n".join(lines) + "\n"


# Mermaid entity codes (its docs, "Entity codes to escape characters"): "#59;" is ";" and so on.
_ENTITIES = {"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;", "{": "#123;", "}": "#125;",
             "%": "#37;"}


def _safe(text: str) -> str:
    """Mermaid message text: one line, with the characters its parser treats as syntax written as
    entity codes (so "127.0.0.1:5060" and "a -> b" come out as they are)."""
    text = " ".join(text.split())
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def _comment(text: str) -> str:
    return " ".join(text.split())
