"""Paths shared by tests: the project's fixtures and ../shared/pcaps when present (import as `support`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "pcaps"
SHARED = Path(os.environ.get("SIPTOOL_SHARED_PCAPS", REPO.parent / "shared" / "pcaps"))


def shared_references() -> list[Path]:
    """Reference JSON files of ../shared/pcaps (empty when the folder is absent)."""
    ref = SHARED / "reference"
    return sorted(ref.glob("*.json")) if ref.is_dir() else []


def load_reference(path: Path) -> dict:
    return json.loads(path.read_text())


def require_binary(name: str) -> str:
    """Path of a peer program; skip the test when it is missing, unless CI demands every peer."""
    import shutil

    import pytest

    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}")
                                       if os.path.exists(p)), None)
    if path is None:
        if os.environ.get("SIPTOOL_REQUIRE_PEERS"):
            pytest.fail(f"{name} is required (SIPTOOL_REQUIRE_PEERS is set) but not installed")
        pytest.skip(f"{name} is not installed")
    return path
