"""What every subcommand shares: consoles, one-line errors, loading a report."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from ..errors import SiptoolError
from ..status import ExitStatus

if TYPE_CHECKING:
    from rich.console import Console


def epilog(examples: list[tuple[str, str]], *notes: str) -> str:
    """--help's closing text: each example's purpose as a comment above the command (lines stay
    short, so an 80-column terminal never breaks a command), then notes as paragraphs that the help
    renderer wraps to the terminal."""
    lines = ["Examples:", ""]
    for what, command in examples:
        lines += ([f"  # {what}"] if what else []) + [f"  {command}", ""]
    return "\n".join(lines + ["\n\n".join(notes)]) + "\n"


def console(no_color: bool = False, width: int | None = None, stderr: bool = False) -> Console:
    """Colours only on a terminal (rich checks isatty; NO_COLOR is honoured too). Piped into a file
    or a ticket, 120 columns (rich's 80 would cut the call and stream tables); COLUMNS overrides."""
    stream = sys.stderr if stderr else sys.stdout
    if width is None and "COLUMNS" not in os.environ and not stream.isatty():
        width = 120
    from rich.console import Console  # here, not at import: `--json` never needs rich

    # --no-color: no escape codes at all (rich's no_color keeps bold and dim)
    return Console(color_system=None if no_color else "auto", width=width, stderr=stderr, highlight=False,
                   force_terminal=None)


def fail(message: str, code: int = ExitStatus.BAD_INPUT) -> None:
    """Print one line to stderr and exit."""
    typer.echo(f"siptool: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def guarded():
    """Turn SiptoolError (and Ctrl-C) into one line on stderr and an exit code; never a traceback."""
    try:
        yield
    except SiptoolError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", ExitStatus.INTERRUPTED)
    except BrokenPipeError:  # output piped into head etc.
        sys.stderr.close()
        raise typer.Exit(ExitStatus.OK)
    except (typer.Exit, typer.BadParameter, SystemExit):
        raise
    except Exception as exc:  # a bug in siptool: still one line, with a way to see the traceback
        if os.environ.get("SIPTOOL_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (run with SIPTOOL_DEBUG=1 for the traceback "
             "and please report it)", ExitStatus.INTERNAL)


def note(message: str) -> None:
    """One line on stderr that is not an error (the command goes on)."""
    typer.echo(f"siptool: {message}", err=True)


def thresholds_from(loss: float, jitter: float, mos: float, response_ms: float = 800.0):
    """--loss / --jitter / --mos (/ --response-ms), range-checked, as the Thresholds the Analyzer judges by."""
    import dataclasses

    from ..analysis.thresholds import Thresholds

    for name, value, low, high in (("--loss", loss, 0, 100), ("--jitter", jitter, 0, 10000), ("--mos", mos, 1, 5),
                                   ("--response-ms", response_ms, 0, 60000)):
        if not low <= value <= high:
            raise typer.BadParameter(f"use a value from {low} to {high}", param_hint=name)
    return dataclasses.replace(Thresholds.from_limits(loss, jitter, mos), response_ms=response_ms)


def fail_on_findings(report, level) -> None:
    """--fail-on: exit 1 when a finding at `level` (0 critical .. 3 info) or worse exists."""
    if level is None:
        return
    if any(f.severity.rank <= level for f in report.all_findings()):
        raise typer.Exit(ExitStatus.FAILED)


TLS_KEYLOG_HELP = ("NSS key log (SSLKEYLOGFILE) of the capture's TLS sessions: SIP over TLS and WSS is "
                   "decrypted (by tshark) and analysed like clear SIP.")
KEYLOG_OUT_HELP = "TLS: append the session keys to this file (NSS key log, mode 0600; default $SSLKEYLOGFILE)."
SUITES_DEFAULT = "default: AEAD_AES_128_GCM, AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32"  # agent/sdes.OFFERED
SRTP_KEYS_HELP = ("SRTP keys the capture does not show, one sender a line: IP:PORT (or ssrc=0x...) SUITE "
                  "inline:KEY (docs/secure-captures.md). Their streams' packets are checked.")


def load_report(path: str, filters: list[str] | None = None, quiet: bool = False, thresholds=None, sizing=None,
                tls_keylog: str | None = None, srtp_keys: list | None = None, content: bool = False):
    """Analyse a capture file and apply --filter; says so on stderr when no call is left.
    content: decode the audio streams and find who spoke when (analysis/content.py)."""
    import gc

    from ..analysis.sizing import DEFAULT_PLAN
    from ..analysis.thresholds import DEFAULT
    from ..drivers.files import analyze_file

    show = not quiet and sys.stderr.isatty()
    # A command's modules live until it exits: the collector need not scan them again and again while
    # the capture is read (a full collection at 1M packets was ~20 ms of it).
    gc.freeze()
    report = analyze_file(path, progress=show, thresholds=thresholds or DEFAULT, sizing=sizing or DEFAULT_PLAN,
                          tls_keylog=tls_keylog, srtp_keys=srtp_keys, content=content_options(content))
    return filtered(report, filters)


def filtered(report, filters: list[str] | None):
    """--filter applied; says so on stderr when no call is left."""
    from ..analysis.select import filter_report, no_match

    total = len(report.calls)
    report = filter_report(report, filters or [])
    if filters and not report.calls:
        note(no_match(filters, total))
    return report


def call_with_media(report, call: str | None):
    """--call's call (its number or Call-ID; of several sharing a Call-ID, the one with media), or
    without --call the one call with media: else one line and exit 2."""
    from ..analysis.select import find_call

    if call is None:
        chosen = [c for c in report.calls if c.streams]
        if not chosen:
            loose = (f"; {len(report.streams)} stream(s) outside any call (see siptool analyze)"
                     if report.streams else "")
            fail(f"no call in this capture has media (RTP){loose}")
        if len(chosen) != 1:
            nums = ", ".join(str(c.number) for c in chosen[:10])
            fail(f"{len(chosen)} calls with media ({nums}{' ...' if len(chosen) > 10 else ''}); pick one with --call N")
        return chosen[0]
    found = find_call(report, call)
    return ([c for c in found if c.streams] or found)[0]  # a REGISTER sharing the Call-ID has none


CONTENT_DEFAULT = False  # content analysis costs more than 1.3x analyze on a G.711 trunk (bench/run): asked for


def content_option(what: str = "speech activity, levels, who spoke when and their findings"):
    """The --content/--no-content option every capture command shares."""
    return typer.Option(CONTENT_DEFAULT, "--content/--no-content",
                        help=f"Decode the audio streams (content analysis): {what}.")


def content_options(on: bool):
    """--content: the content analysis settings, or None when off."""
    if not on:
        return None
    from ..analysis.content import ContentOptions

    return ContentOptions()


def decryption_keys(tls_keylog: str | None, srtp_keys: str | None) -> list | None:
    """--tls-keylog checked and --srtp-keys read before the capture is (a typo costs one line); the
    SRTP keys (rtp/srtp_keys.KeyEntry), or None."""
    if tls_keylog is not None:
        from ..capture.tls import check_keylog

        check_keylog(tls_keylog)
    if srtp_keys is None:
        return None
    from ..rtp import srtp_keys as keys_file

    return keys_file.load(srtp_keys)


def check_folder(path, option: str) -> None:
    """Before any work: `path` is a folder we may write into, or can be made one."""
    from pathlib import Path

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SiptoolError(f"{option} {path}: is a file; give a folder")
    parent = path if path.exists() else path.parent
    if not parent.is_dir():
        raise SiptoolError(f"{option} {path}: no such folder {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SiptoolError(f"{option} {path}: not allowed to write there")


def check_output(path, option: str, suffix: str | None = None) -> None:
    """Before any work: `path` (given with `option`) can be written, so a typo in a folder name
    costs one line, not a whole analysis and then a traceback. `suffix`: the only kind we write."""
    from pathlib import Path

    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise SiptoolError(f"{option} {path}: is a folder; give a file name")
    if not folder.is_dir():
        raise SiptoolError(f"{option} {path}: no such folder {folder}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SiptoolError(f"{option} {path}: not allowed to write there")
    if suffix and path.suffix.lower() != suffix:
        raise SiptoolError(f"{option} {path}: this writes {suffix[1:].upper()}; give a file name ending in {suffix}")


@contextmanager
def writing(path):
    """An OSError while writing an output file (disk full, removed folder) as one line and exit 2."""
    try:
        yield
    except OSError as exc:
        raise SiptoolError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _fail_levels() -> dict[str, int]:
    from ..report.model import Severity

    return {s.value: s.rank for s in Severity}


def fail_level(fail_on: str | None) -> int | None:
    """--fail-on as the severity rank findings are compared with (None: never fail)."""
    if fail_on is None:
        return None
    levels = _fail_levels()
    if fail_on not in levels:
        raise typer.BadParameter("use critical, error, warning or info", param_hint="--fail-on")
    return levels[fail_on]


def codec_list(values: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """--codec, repeatable and comma-separated (`--codec opus --codec pcmu`, `--codec G722,PCMU`), in
    order, as the agent names them (rtp/codecs.AGENT): one line and exit 2 for any other."""
    from ..rtp.codecs import AGENT, by_name

    names = [v.strip() for value in values or () for v in value.split(",") if v.strip()]
    out = []
    for name in names:
        c = by_name(name)
        if c is None or c.name not in AGENT:
            raise SiptoolError(f"--codec {name}: use {', '.join(a.lower() for a in AGENT)}")
        if c.name not in out:
            out.append(c.name)
    return tuple(out) or default
