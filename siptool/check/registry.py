"""What a check type is: one async function plus its options and default timeout.

    @check("options", timeout=10)
    async def options(ctx, spec, result): ...

`check` only describes the function (it registers nothing); the built-in checks are listed, in
order, in check/builtin.py's CHECKS.

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


def check(name: str, timeout: float = 60.0, **options: Any):
    """Make a check function a CheckType with its options (and their defaults)."""
    def wrap(fn) -> CheckType:
        return CheckType(name, fn, dict(options), timeout, (fn.__doc__ or "").strip().splitlines()[0])
    return wrap
