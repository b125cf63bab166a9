"""The check registry: a check type is one async function plus its options and default timeout.

    @check("options", timeout=10)
    async def options(ctx, spec, result): ...

The function fills `result` (figures, findings, ladder) and calls `result.fail(...)` for each unmet
expectation; an exception becomes an `error` result with its message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable


@dataclass
class CheckType:
    name: str
    run: Callable[..., Awaitable[None]]
    options: dict[str, Any] = field(default_factory=dict)  # option -> default
    timeout: float = 60.0
    doc: str = ""


CHECKS: dict[str, CheckType] = {}


def check(name: str, timeout: float = 60.0, **options: Any):
    """Register a check type with its options (and their defaults)."""
    def wrap(fn):
        CHECKS[name] = CheckType(name, fn, dict(options), timeout, (fn.__doc__ or "").strip().splitlines()[0])
        return fn
    return wrap


def load_builtins() -> None:
    from . import builtin  # noqa: F401  (registers on import)


load_builtins()
