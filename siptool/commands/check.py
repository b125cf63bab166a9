"""`siptool check SUITE.toml`: an interop suite against a trunk or PBX, for CI (JUnit XML, JSON)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import List, Optional

import typer

from ..status import ExitStatus
from .common import console, epilog, guarded

EPILOG = epilog(
    [("write siptool-suite.toml, commented", "siptool check --init"),
     ("run it; JUnit for CI", "SIPTOOL_PASSWORD=secret siptool check siptool-suite.toml --junit r.xml"),
     ("two checks only", "siptool check suite.toml --only options --only register --json"),
     ("keep each check's packets for siptool analyze", "siptool check suite.toml --pcap-dir check-pcaps"),
     ("against siptool echo (it registers alice; \"ring\" never answers)",
      "export SIPTOOL_PASSWORD=secret"),
     ("", "siptool echo --user alice --password-env SIPTOOL_PASSWORD &"),
     ("", "siptool check --init && siptool check siptool-suite.toml")],
    "Exit codes: 0 every check passed; 1 a check failed, could not run or was skipped (a skipped check "
    "tested nothing; --allow-skipped accepts skips); 2 bad suite or arguments (an --only name that is "
    "not in the suite).")


def check(
    suite: Optional[Path] = typer.Argument(None, help="Suite file (TOML). See siptool check --init."),
    junit: Optional[Path] = typer.Option(None, "--junit", help="Write JUnit XML here (for CI)."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    init: bool = typer.Option(False, "--init", help="Write a commented example suite (to SUITE or "
                                                     "siptool-suite.toml) and exit."),
    only: Optional[List[str]] = typer.Option(None, "--only", help="Run only this check (name or type); repeat."),
    pcap_dir: Optional[Path] = typer.Option(None, "--pcap-dir", help="Keep each check's own packets here "
                                            "(one pcap per check, readable by siptool analyze)."),
    allow_skipped: bool = typer.Option(False, "--allow-skipped", help="Exit 0 when checks were skipped (could "
                                       "not judge the target) and none failed; skips are still reported."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Ladders of passed checks too."),
    no_color: bool = typer.Option(False, "--no-color", help="No colours."),
) -> None:
    """Run an interop suite: OPTIONS, REGISTER, calls, DTMF, hold, CANCEL, long call, TLS, capacity, fragments."""
    with guarded():
        from ..check.suite import EXAMPLE, load_suite

        if init:
            path = suite or Path("siptool-suite.toml")
            if path.exists():
                raise typer.BadParameter(f"{path} exists; not overwriting it", param_hint="SUITE")
            path.write_text(EXAMPLE)
            typer.echo(f"wrote {path}: edit [target], export the password variable, then: siptool check {path}")
            return
        if suite is None:
            raise typer.BadParameter("give a suite file, or --init to write one", param_hint="SUITE")
        loaded = load_suite(suite)
        loaded.select(only)  # an unknown --only name: exit 2 before any traffic
        from ..check import junit as junit_out
        from ..check import output
        from ..check.runner import run_suite
        from ..check.uac import Driver

        out = console(no_color)
        progress = None if json_out else (lambda r: out.print(output.line(r)))
        ua = Driver(loaded.target, keep=str(pcap_dir) if pcap_dir else None, thresholds=loaded.thresholds)
        try:
            result = asyncio.run(run_suite(loaded, ua, only, progress))
        finally:
            ua.close()
        if junit:
            junit_out.write(result, junit)
        if json_out:
            typer.echo(output.dumps(result, allow_skipped))
        else:
            output.render(result, out, verbose, allow_skipped)
        status = result.exit_status(allow_skipped)
        if status != ExitStatus.OK:
            raise typer.Exit(status)


def register(app: typer.Typer) -> None:
    app.command("check", epilog=EPILOG)(check)
