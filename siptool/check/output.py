"""Suite results for people (rich) and machines (JSON)."""

from __future__ import annotations

import dataclasses
import json

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .result import SKIPPED, CheckResult, SuiteResult

STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta", "skipped": "dim"}
JSON_VERSION = 1
LONG = ("targets", "located", "levels")  # figures for the JSON and JUnit only: too long for a line or a cell


def _shown(r: CheckResult) -> dict:
    return {k: v for k, v in r.figures.items() if k not in LONG}


def line(r: CheckResult) -> Text:
    """One line per finished check, printed as the suite goes."""
    t = Text()
    t.append(f"{r.status.upper():7}", style=STYLE.get(r.status, ""))
    t.append(f" {r.name:<20} {r.duration_s:7.2f} s  ")
    t.append(r.message or ", ".join(f"{k}={v}" for k, v in list(_shown(r).items())[:4]))
    return t


def render(result: SuiteResult, console: Console, verbose: bool = False, allow_skipped: bool = False) -> None:
    table = Table(title=f"siptool check: {result.name} -> {result.target}")
    for col in ("check", "result", "time", "figures", "why"):
        table.add_column(col)
    for r in result.results:
        figures = ", ".join(f"{k}={v}" for k, v in _shown(r).items())
        table.add_row(r.name, Text(r.status, style=STYLE.get(r.status, "")), f"{r.duration_s:.1f} s", figures,
                      r.message if not r.passed else "")
    console.print(table)
    for r in result.results:
        if r.passed and not verbose:
            continue
        console.print(Text(f"\n{r.name}: {r.status}", style=STYLE.get(r.status, "")))
        for f in r.findings:
            console.print(f"  [{f.severity}] {f.code}: {f.title}", markup=False)
        if r.ladder:
            console.print(r.ladder, markup=False, highlight=False)
    ok = result.exit_status(allow_skipped) == 0
    console.print(Text(f"\n{result.summary()} in {result.duration_s:.1f} s", style="green" if ok else "bold red"))
    if result.count(SKIPPED):
        console.print("a skipped check tested nothing: " + ("accepted (--allow-skipped)" if allow_skipped else
                      "it fails the run (--allow-skipped accepts it)"), style="dim" if ok else "bold red")


def to_dict(result: SuiteResult, allow_skipped: bool = False) -> dict:
    """`passed`: every check passed; `counts`: checks per status; `exit_status`: what the run exits with."""
    return {
        "schema_version": JSON_VERSION, "tool": "siptool check", "suite": result.name, "target": result.target,
        "passed": result.passed, "counts": result.counts(), "summary": result.summary(),
        "exit_status": int(result.exit_status(allow_skipped)), "started": result.started,
        "duration_s": result.duration_s,
        "checks": [{**{k: v for k, v in dataclasses.asdict(r).items() if k != "findings"},
                    "findings": [dataclasses.asdict(f) for f in r.findings]} for r in result.results],
    }


def dumps(result: SuiteResult, allow_skipped: bool = False) -> str:
    return json.dumps(to_dict(result, allow_skipped), indent=2, default=str)
