"""--help for people on an 80-column terminal: every example command fits on its line, every
command's summary is one sentence, and every exit code named is one of ExitStatus's."""

from __future__ import annotations

import importlib
import re

import pytest

from siptool.commands import MODULES
from siptool.status import ExitStatus


@pytest.mark.parametrize("name", MODULES)
def test_examples_fit_and_codes_are_known(name):
    mod = importlib.import_module(f"siptool.commands.{name}")
    examples = [line for line in mod.EPILOG.splitlines() if line.startswith("  ") and not line.startswith("  #")]
    assert examples, "every command shows examples"
    for line in examples:
        assert len(line) <= 78, f"{name}: an example breaks on 80 columns: {line!r}"
    codes = {int(c) for c in re.findall(r"\b(\d)\b(?= [a-z])", mod.EPILOG.split("Exit codes:", 1)[-1])}
    assert codes and codes <= {int(s) for s in ExitStatus}


def test_top_level_help_has_one_line_per_command():
    from typer.testing import CliRunner

    from siptool.cli import get_app

    out = CliRunner().invoke(get_app(), ["--help"], env={"COLUMNS": "80"})
    assert out.exit_code == 0
    for name in MODULES:
        (line,) = [ln for ln in out.stdout.splitlines() if re.match(rf"│ {name}\s", ln)]
        summary = line.strip("│ ").split(None, 1)[1]
        assert summary and summary[0].isupper()
    # a command's docstring is one line: the top-level list wraps it, it never breaks it mid-sentence
    app = get_app()
    for cmd in app.registered_commands:
        doc = (cmd.callback.__doc__ or "").strip()
        assert doc and "\n" not in doc, cmd.name
