"""Fixtures shared by all tests. Path helpers live in tests/support.py (`from support import ...`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import FIXTURES, SHARED


@pytest.fixture
def shared_pcaps() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/pcaps is not present (a fresh clone has no shared corpus)")
    return SHARED


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
