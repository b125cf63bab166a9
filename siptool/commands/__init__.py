"""Subcommands, one module each; each has register(app)."""

from __future__ import annotations

import importlib

MODULES = ("analyze", "ladder", "plot", "call", "echo", "register", "capture", "check")


def register_all(app) -> None:
    for name in MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            continue  # a subcommand not built yet
        module.register(app)
