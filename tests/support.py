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
