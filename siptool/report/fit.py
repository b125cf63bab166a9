"""Tables that fit the terminal without cutting a number.

Each column says whether it may fold (wrap at spaces), how narrow it may comfortably get and how much
it matters. When the table is wider than the terminal, the least important columns move onto a second
line of each row, inside the column named `host`, as "label value": first the minor ones, if that
keeps every cell on one line; otherwise until every folding column can keep its comfortable width;
then folding columns give up width, widest first, down to their longest word. Numbers are never shortened or cut."""

from __future__ import annotations

from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text

GAP = 3  # between two columns: the right and left cell padding and the box's blank separator
MINOR = 2  # columns of this priority or less move to the second line before anything folds


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    justify: str = "left"
    fold: int = 0  # 0: kept whole (numbers, codes); else it may wrap at spaces, comfortably down to this width
    priority: int = 5  # when the row cannot fit, the lowest priority moves to the second line first
    label: str = ""  # how a moved value is introduced (default: the header)


def _plain(cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _width(text: str) -> int:
    return max((len(line) for line in text.split("\n")), default=0)


def _word(text: str) -> int:
    return max((len(w) for w in text.split()), default=0)


def fit_table(columns: list[Column], rows: list[list], width: int, host: int, **table_args) -> Table:
    """A rich Table of `rows` (cells: str or Text) no wider than `width` when that is possible;
    `host` is the index of the folding column that takes moved values."""
    shown = list(range(len(columns)))
    moved: list[int] = []
    texts = [[_plain(c) for c in r] for r in rows]

    def cells(i: int) -> list[str]:
        if i == host and moved:
            return [t[i] + "\n" + _moved(columns, t, moved) for t in texts]
        return [t[i] for t in texts]

    def natural(i: int) -> int:
        return max([_width(x) for x in cells(i)] + [_width(columns[i].header), 1])

    def own(i: int) -> int:  # without the moved values, which may fold in the host column
        return max([_width(t[i]) for t in texts] + [_width(columns[i].header), 1])

    def least(i: int) -> int:
        if not columns[i].fold:
            return natural(i)
        return max([_word(x) for x in cells(i)] + [_word(columns[i].header), 1])

    def comfortable(i: int) -> int:
        return natural(i) if not columns[i].fold else max(least(i), min(natural(i), columns[i].fold))

    def budget() -> int:
        return width - GAP * (len(shown) - 1)

    def move(fits, allowed) -> bool:
        """Move the least important allowed columns to the second line until `fits`."""
        nonlocal moved
        while not fits():
            candidates = [i for i in shown if i not in (host, 0) and allowed(i)]
            if not candidates:
                return False
            drop = min(candidates, key=lambda i: (columns[i].priority, -i))
            shown.remove(drop)
            moved = sorted(moved + [drop])
        return True

    # Minor columns move first if that keeps every other cell on one line; else fold, then move more.
    if not move(lambda: sum(own(i) for i in shown) <= budget(), lambda i: columns[i].priority <= MINOR):
        shown, moved = list(range(len(columns))), []
        move(lambda: sum(comfortable(i) for i in shown) <= budget(), lambda i: True)
    widths = {i: natural(i) for i in shown}
    for floor in (comfortable, least):
        while sum(widths.values()) > budget():
            folding = [i for i in shown if widths[i] > floor(i)]
            if not folding:
                break
            widest = max(folding, key=lambda i: widths[i])
            widths[widest] -= 1
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, **table_args)
    for i in shown:
        c = columns[i]
        table.add_column(c.header, justify=c.justify, width=widths[i], no_wrap=not c.fold,
                         overflow="fold" if c.fold else "ignore")
    for r, t in zip(rows, texts):
        row = [r[i] for i in shown]
        extra = _moved(columns, t, moved)
        if extra and host in shown:
            pos = shown.index(host)
            base = row[pos] if isinstance(row[pos], Text) else Text(str(row[pos]))
            row[pos] = Text.assemble(base, "\n", (extra, "dim"))
        table.add_row(*row)
    return table


def _moved(columns: list[Column], texts: list[str], moved: list[int]) -> str:
    parts = []
    for i in moved:
        if texts[i] and texts[i] != "-":
            parts.append(f"{columns[i].label or columns[i].header.replace(chr(10), ' ')} {texts[i]}")
    return ", ".join(parts)
