"""Text renderings of a call ladder: the terminal flow (like sngrep's) and a Mermaid sequence diagram."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from rich.text import Text

from .ladder_layout import Ladder

STYLES = {"request": "cyan", "provisional": "yellow", "success": "green", "failure": "red"}
TIME_W = 24  # "00:56:20.123  +1234.5 ms "


def terminal(ladder: Ladder, width: int = 100) -> list[Text]:
    """Lines of the ladder for a terminal of `width` columns (hosts as columns, arrows between)."""
    n = max(len(ladder.hosts), 2)
    col_w = max(18, min(34, (width - TIME_W - 2) // n))
    centers = [TIME_W + col_w // 2 + i * col_w for i in range(n)]
    total = centers[-1] + col_w // 2 + 1
    out = [Text(ladder.title, style="bold"), Text(ladder.subtitle, style="dim")]
    head = [" "] * total
    for c, host in zip(centers, ladder.hosts):
        name = host if len(host) <= col_w - 1 else "…" + host[-(col_w - 2):]
        start = max(0, c - len(name) // 2)
        head[start:start + len(name)] = list(name)
    out.append(Text("".join(head).rstrip(), style="bold"))
    for row in ladder.rows:
        clock = datetime.fromtimestamp(row.time, timezone.utc).strftime("%H:%M:%S.%f")[:12]
        delta = f"+{row.delta * 1000:.1f} ms" if row.delta < 1 else f"+{row.delta:.3f} s"
        prefix = f"{clock} {delta:>10} "
        label = row.label + (" (retrans)" if row.retransmission else "") + (f"  {row.note}" if row.note else "")
        line = _arrow(centers, total, row.src, row.dst, label, "─")
        style = "dim" if row.retransmission else STYLES[row.kind]
        text = Text(prefix.ljust(TIME_W), style="dim")
        text.append(line[TIME_W:], style=style)
        out.append(text)
    for band in ladder.bands:
        line = _arrow(centers, total, band.src, band.dst, band.label, "═")
        text = Text("media".ljust(TIME_W), style="dim")
        text.append(line[TIME_W:], style="bold red" if band.bad else "magenta")
        out.append(text)
    return out


def _arrow(centers: list[int], total: int, a: int, b: int, label: str, fill: str) -> str:
    chars = [" "] * total
    for c in centers:
        chars[c] = "│"
    if a == b:  # a message from a host to itself
        text = f"⟲ {label}"
        chars[centers[a] + 1:centers[a] + 1 + len(text)] = list(text)
        return "".join(chars[:total]).rstrip()
    left, right = sorted((centers[a], centers[b]))
    for x in range(left + 1, right):
        chars[x] = fill
    if b > a:
        chars[right - 1] = "▶"
    else:
        chars[left + 1] = "◀"
    room = right - left - 5
    if room > 0:
        text = f" {label if len(label) <= room else label[:room - 1] + '…'} "
        start = left + 1 + (right - left - 1 - len(text)) // 2
        chars[start:start + len(text)] = list(text)
    return "".join(chars).rstrip()


def mermaid(ladder: Ladder) -> str:
    """A Mermaid `sequenceDiagram`: participants are the hosts, retransmissions dotted."""
    names = [f"H{i}" for i in range(len(ladder.hosts))]
    lines = ["sequenceDiagram", f"    %% {_safe(ladder.title)} ({_safe(ladder.subtitle)})"]
    lines += [f"    participant {n} as {_safe(h)}" for n, h in zip(names, ladder.hosts)]
    for row in ladder.rows:
        arrow = "-->>" if row.retransmission or row.kind == "provisional" else "->>"
        label = row.label + (" (retrans)" if row.retransmission else "") + (f" [{row.note}]" if row.note else "")
        lines.append(f"    {names[row.src]}{arrow}{names[row.dst]}: {_safe(label)}")
    for band in ladder.bands:
        lines.append(f"    Note over {names[band.src]},{names[band.dst]}: {_safe(band.label)}")
    return "\n".join(lines) + "\n"


def _safe(text: str) -> str:
    """Mermaid message text: no line breaks, no characters its parser treats as syntax."""
    return re.sub(r"[;#:<>{}\n\r]", " ", text).strip()
