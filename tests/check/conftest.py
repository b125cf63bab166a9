"""Fixtures of the check tests (defined in check/lab.py)."""

from check.lab import lab  # noqa: F401 - the module-scoped kamailio + echo agents fixture
