"""Many capture files (`siptool analyze DIR | FILE...`): rotated files as one timeline, independent
captures side by side, in parallel.

- A **timeline** is the files of one capture point read as one capture: one Analyzer is fed file
  after file in the order of their first packets, frame numbers counting on from file to file
  (as `mergecap -a` would number them), so a call that crosses a file boundary is whole. Memory
  follows the calls in progress, as for one file.
- **Independent** timelines (other probes, other days) are analysed apart, on all local cores
  (processes) or on a Dask cluster (`dask_client`), and their Reports merged (combine.py).

How files are put into timelines (`plan`):
- `rotated`: every file given is one timeline;
- `independent`: every file is a timeline of its own;
- `auto` (the default): files in one folder whose names are equal but for their runs of digits
  (`trunk_00001.pcap`, `trunk_00002.pcap` from `siptool capture --ring` or Wireshark; tcpdump -C's
  `trunk.pcap`, `trunk.pcap1`...; tcpdump -G's `trunk-20261204-1000.pcap`...) are one rotated
  capture; every other file stands alone. AUTO_RULE says it in words, and the report carries it.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field

from ..analysis import combine
from ..analysis import findings as rules
from ..analysis.session import Analyzer, _media_tracker
from ..analysis.thresholds import DEFAULT, Thresholds
from ..capture import CaptureInfo, open_capture
from ..capture.reader import GZIP_MAGIC, PCAP_MAGICS, PCAPNG_SHB, Capture
from ..errors import SiptoolError
from ..report.model import Report, SourceFile
from .files import feed_source

MODES = ("auto", "rotated", "independent")
DASK_CONNECT_S = 10
AUTO_RULE = ("files in one folder named alike but for their numbers (trunk_00001.pcap, trunk_00002.pcap; "
             "trunk.pcap, trunk.pcap1) are one rotated capture, read as one timeline in the order of their "
             "first packets; every other file is an independent capture")
CAPTURE_MAGICS = frozenset(PCAP_MAGICS) | {PCAPNG_SHB}


@dataclass
class Timeline:
    """The files of one capture point, in reading order."""

    name: str  # the capture point: the file, or the rotated files' name with * for the numbers
    files: list[str] = field(default_factory=list)


def expand(paths: list[str]) -> tuple[list[str], list[str]]:
    """Files named, and the capture files inside folders named (walked, in name order). Returns
    (files, not_captures): what a folder held that is not a capture (by its first bytes) is left out."""
    files, others = [], []
    for path in paths:
        if not os.path.isdir(path):
            if not os.path.exists(path):
                raise SiptoolError(f"{path}: no such file or folder")
            files.append(path)
            continue
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for n in sorted(names):
                full = os.path.join(root, n)
                (files if _looks_like_capture(full) else others).append(full)
    if not files:
        raise SiptoolError(f"{', '.join(paths)}: no capture files found")
    return list(dict.fromkeys(files)), others


def _looks_like_capture(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head in CAPTURE_MAGICS or head[:2] == GZIP_MAGIC


def rotation_key(path: str) -> tuple[str, str]:
    """(folder, name with every run of digits as #, and a trailing number optional): equal for the
    files of one rotation."""
    folder, name = os.path.split(path)
    return folder, re.sub(r"\d+", "#", name).removesuffix("#")


def plan(files: list[str], mode: str = "auto") -> list[Timeline]:
    """Put the files into timelines (see the module's docstring); each in order of first packet."""
    if mode not in MODES:
        raise SiptoolError(f"unknown grouping {mode!r}: use {', '.join(MODES)}")
    if mode == "independent":
        return [Timeline(f, [f]) for f in files]
    if mode == "rotated":
        groups = {("", "*"): list(files)}
    else:
        groups: dict[tuple[str, str], list[str]] = {}
        for f in files:
            groups.setdefault(rotation_key(f), []).append(f)
    out = []
    for (folder, pattern), members in groups.items():
        if len(members) == 1:
            out.append(Timeline(members[0], members))
            continue
        longest = os.path.basename(max(members, key=len))  # edge.pcap2, not edge.pcap: shows the number
        name = os.path.join(folder, re.sub(r"\d+", "*", longest)) if mode == "auto" else f"{len(members)} files"
        out.append(Timeline(name, sorted(members, key=_first_packet_order)))
    return out


def _first_packet_order(path: str):
    with Capture(path) as cap:
        rec = next(iter(cap), None)
    return (rec is None, rec.time if rec else 0.0, path)


def analyze_timeline(timeline: Timeline, thresholds: Thresholds = DEFAULT) -> Report:
    """One Analyzer over the timeline's files in order; the Report stamped with the capture point
    and each call's file."""
    analyzer = Analyzer(media=_media_tracker(), thresholds=thresholds)
    info = CaptureInfo(path=timeline.name)
    skipped: Counter[str] = Counter()
    incomplete: list[list[int]] = []
    sources: list[SourceFile] = []
    overlaps: list[tuple[str, str, float]] = []
    frame = 1
    for path in timeline.files:
        with open_capture(path) as source:
            feed_source(analyzer, source, first_frame=frame)
            part = source.info
            skipped.update(source.decoder.skipped)
            incomplete += source.decoder.fragments.incomplete
        sources.append(SourceFile(file=path, capture_point=timeline.name, first_frame=frame, packets=part.packets,
                                  first_time=part.first_time, last_time=part.last_time, truncated=part.truncated))
        if info.last_time is not None and part.first_time is not None and part.first_time < info.last_time:
            overlaps.append((sources[-2].file, path, info.last_time - part.first_time))
        _extend(info, part)
        frame += part.packets
    report = analyzer.finish(info, dict(skipped), incomplete)
    if overlaps:
        report.findings.append(rules.files_overlap(timeline.name, overlaps))
    return combine.stamp(report, timeline.name, sources)


def _extend(info: CaptureInfo, part: CaptureInfo) -> None:
    """The timeline's capture info, one file more."""
    info.format = info.format if part.format in info.format.split("+") else "+".join(
        x for x in (info.format, part.format) if x)
    info.compressed |= part.compressed
    info.linktypes = list(dict.fromkeys(info.linktypes + part.linktypes))
    info.packets += part.packets
    info.size_bytes += part.size_bytes
    if info.first_time is None:
        info.first_time = part.first_time
    if part.last_time is not None:
        info.last_time = part.last_time if info.last_time is None else max(info.last_time, part.last_time)
    if part.truncated:
        why = f"{part.path}: {part.truncated}"
        info.truncated = f"{info.truncated}; {why}" if info.truncated else why


def analyze_files(paths: list[str], mode: str = "auto", workers: int | None = None,
                  thresholds: Thresholds = DEFAULT, dask: str | None = None) -> Report:
    """The combined Report of files and folders: timelines planned by `mode`, analysed in parallel
    (`workers` processes, default every core this process may use; or on the Dask cluster whose
    scheduler is at `dask`)."""
    files, others = expand(paths)
    timelines = plan(files, mode)
    if dask is not None:
        reports = run_dask(dask, timelines, thresholds)
    else:
        reports = run_local(timelines, thresholds, workers)
    name = paths[0] if len(paths) == 1 else f"{len(files)} files"
    words = grouping_words(mode, timelines, len(files))
    if others:
        words += f"; {len(others)} file(s) left out, not captures (first: {others[0]})"
    return combine.merge(reports, name, words)


def local_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_local(timelines: list[Timeline], thresholds: Thresholds = DEFAULT, workers: int | None = None) -> list[Report]:
    """Each timeline's Report, in order: in this process for one timeline or one worker, else in
    a pool of processes (an Analyzer is pure Python: threads would share one core)."""
    workers = min(workers or local_workers(), len(timelines))
    if workers <= 1:
        return [analyze_timeline(t, thresholds) for t in timelines]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork: workers start with siptool already imported (no re-import of __main__, as spawn and
    # forkserver need); nothing else runs in this process while they start
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(analyze_timeline, timelines, [thresholds] * len(timelines)))


def run_dask(address: str, timelines: list[Timeline], thresholds: Thresholds = DEFAULT) -> list[Report]:
    """Each timeline's Report, analysed on a Dask cluster (dask.distributed: its scheduler, workers
    and wire protocol; siptool only maps one function over the timelines). The workers need
    siptool installed and the files at the same paths (shared storage)."""
    try:
        from distributed import Client
    except ImportError:
        raise SiptoolError("--dask needs dask.distributed: pip install 'siptool[dask]'") from None
    _reachable(address)
    try:
        client = Client(address, timeout=DASK_CONNECT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SiptoolError(f"--dask {address}: cannot reach the scheduler ({exc})") from None
    with client:
        futures = client.map(analyze_timeline, timelines, thresholds=thresholds, pure=False)
        return client.gather(futures)


def _reachable(address: str) -> None:
    """A tcp:// scheduler where nothing listens fails at once (the client would retry until its
    timeout)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp" or not parts.hostname or not parts.port:
        return
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=DASK_CONNECT_S).close()
    except OSError as exc:
        raise SiptoolError(f"--dask {address}: cannot reach the scheduler ({exc.strerror or exc})") from None


def grouping_words(mode: str, timelines: list[Timeline], files: int) -> str:
    """How the files were grouped, for the report and the terminal."""
    rotated = sum(1 for t in timelines if len(t.files) > 1)
    counts = f"{files} file{'s' if files != 1 else ''} in {len(timelines)} capture point" \
             f"{'s' if len(timelines) != 1 else ''} ({rotated} rotated)"
    if mode == "auto":
        return f"{counts}; automatic: {AUTO_RULE} (--rotated or --independent to choose)"
    if mode == "rotated":
        return f"{counts}; --rotated: every file is part of one capture, in the order of their first packets"
    return f"{counts}; --independent: every file is a capture of its own"
