"""The typer app: parses arguments, calls the core, hands a Report to a renderer. No logic here."""

from __future__ import annotations

import typer

from . import __version__

app = typer.Typer(
    name="siptool",
    help="SIP trunk diagnostics: analyse captures, draw call ladders, place test calls.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"siptool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """SIP trunk diagnostics."""


def get_app() -> typer.Typer:
    """The app with every subcommand (for typer.testing.CliRunner and embedding)."""
    if not app.registered_commands:  # registered once, whoever asks first
        from .commands import register_all

        register_all(app)
    return app


def main() -> None:
    import sys

    from .commands import MODULES, register_one

    # Import only the subcommand being run (call/echo/check pull in asyncio and the agent, which
    # `analyze` does not need): a faster start. `siptool --help` and anything else get them all.
    if len(sys.argv) > 1 and sys.argv[1] in MODULES:  # the root has flags only: argv[1] is the command
        register_one(app, sys.argv[1])
    else:
        get_app()
    app()
