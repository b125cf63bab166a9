#!/usr/bin/env python3
"""Is the report the same? `siptool analyze --json` (and the terminal report) of an old and a new tree,
byte for byte, on every committed fixture, every ../shared/pcaps capture and any files given.

The hot path rule (DESIGN.md): a change there keeps the report byte for byte the same. The old tree
is any checkout (e.g. `git worktree add /tmp/old main`, or `git archive REV | tar -x -C /tmp/old`);
both run with this interpreter, each with its own tree first on PYTHONPATH.

  python bench/same_report.py --old /tmp/old                      # fixtures and corpus
  python bench/same_report.py --old /tmp/old /tmp/b100k.pcap      # plus a bench capture

`--added stream.past_limits` names a field the new schema added on purpose: it is removed from the
new JSON (and schema_version is set to the old one) before comparing, both the parsed values and
the text byte for byte.
Exit 0 when every capture gives the same output, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "pcaps"
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".gz")


def captures(extra: list[str]) -> list[Path]:
    found = sorted((REPO / "fixtures" / "pcaps").glob("*.pcap"))
    if SHARED.is_dir():
        found += sorted(p for p in SHARED.iterdir() if p.suffix in CAPTURE_SUFFIXES)
    return found + [Path(p).resolve() for p in extra]


def run(tree: Path, args: list[str]) -> tuple[int, bytes, bytes]:
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="160", NO_COLOR="1")
    # from /, so that neither tree is found through the working directory
    proc = subprocess.run([sys.executable, "-m", "siptool", *args], env=env, capture_output=True, cwd="/")
    return proc.returncode, proc.stdout, proc.stderr


def strip_added(data, added: dict[str, set[str]]):
    """The new JSON without the fields named in `added` ({"stream": {"judged_bad"}, ...})."""
    if isinstance(data, list):
        return [strip_added(v, added) for v in data]
    if not isinstance(data, dict):
        return data
    out = {k: strip_added(v, added) for k, v in data.items()}
    if "ssrc" in out and "payload_type" in out:  # a stream
        for name in added.get("stream", ()):
            out.pop(name, None)
    if "call_id" in out and "ladder" in out:  # a call
        for name in added.get("call", ()):
            out.pop(name, None)
    return out


def without_added(text: bytes, added: dict[str, set[str]], version: str | None) -> bytes:
    """The new compact JSON text with the added fields (scalar values) cut out and the old version
    put back: then it must equal the old text byte for byte."""
    names = "|".join(re.escape(n) for kind in added.values() for n in kind)
    text = re.sub(rb',"(?:' + names.encode() + rb')":(?:true|false|null|-?[0-9.eE+-]+|"[^"]*")', b"", text)
    return re.sub(rb'^\{"schema_version":"[^"]*"', b'{"schema_version":"' + (version or "").encode() + b'"', text)


def compare(old: Path, new: Path, path: Path, added: dict[str, set[str]]) -> list[str]:
    """What differs for one capture (empty: the same)."""
    problems = []
    o, n = run(old, ["analyze", str(path), "--json"]), run(new, ["analyze", str(path), "--json"])
    if o[0] != n[0]:
        problems.append(f"exit {o[0]} -> {n[0]}")
    if not added:
        if o[1] != n[1]:
            problems.append("JSON differs")
    elif o[1] or n[1]:
        try:
            a, b = json.loads(o[1]), json.loads(n[1])
        except ValueError as exc:
            problems.append(f"JSON unreadable: {exc}")
        else:
            b["schema_version"] = a.get("schema_version")
            if strip_added(b, added) != a:
                problems.append("JSON differs (added fields left out)")
            elif without_added(n[1], added, a.get("schema_version")) != o[1]:
                problems.append("JSON text differs (added fields left out): order or formatting")
    if o[2] != n[2]:
        problems.append("stderr differs")
    o, n = run(old, ["analyze", str(path), "--no-color"]), run(new, ["analyze", str(path), "--no-color"])
    if o[:2] != n[:2]:
        problems.append("terminal report differs")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=True, help="the old tree (a directory holding siptool/)")
    ap.add_argument("--new", type=Path, default=REPO, help="the new tree (default: this one)")
    ap.add_argument("--added", action="append", default=[], metavar="KIND.FIELD",
                    help="a field the new schema adds (stream.past_limits); may repeat")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("files", nargs="*", help="more captures (a bench capture)")
    args = ap.parse_args()
    added: dict[str, set[str]] = {}
    for item in args.added:
        kind, _, name = item.partition(".")
        added.setdefault(kind, set()).add(name)
    paths = captures(args.files)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda p: (p, compare(args.old, args.new, p, added)), paths))
    differ = [(p, r) for p, r in results if r]
    for p, r in differ:
        print(f"DIFFERENT {p}: {'; '.join(r)}")
    print(f"{len(paths) - len(differ)} of {len(paths)} captures give the same report"
          + (" (added fields left out: " + ", ".join(args.added) + ")" if added else " byte for byte"))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
