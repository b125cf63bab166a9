"""Subcommands, one module each; each has register(app)."""

from __future__ import annotations

import importlib

MODULES = ("analyze", "ladder", "plot", "audio", "call", "echo", "register", "capture", "check", "diff")


def register_all(app) -> None:
    for name in MODULES:
        register_one(app, name)


def register_one(app, name: str) -> None:
    importlib.import_module(f"{__name__}.{name}").register(app)
