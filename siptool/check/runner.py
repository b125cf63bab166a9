"""Run a suite: each check in order, each under its own timeout; one check's failure never stops the rest."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from .builtin import CHECKS
from .result import ERROR, CheckResult, SuiteResult
from .suite import Suite, Thresholds, Target


@dataclass
class Context:
    """What a check sees: the target, the thresholds and the user agent driver."""

    target: Target
    thresholds: Thresholds
    ua: object  # siptool.check.uac.Driver (or anything with the same coroutines)


async def run_suite(suite: Suite, ua, only: list[str] | None = None,
                    on_result: Callable[[CheckResult], None] | None = None) -> SuiteResult:
    ctx = Context(suite.target, suite.thresholds, ua)
    out = SuiteResult(suite.name, suite.target.uri)
    t0 = time.monotonic()
    for spec in suite.select(only):
        result = CheckResult(spec.name, spec.type)
        begin = getattr(ua, "begin", None)
        if begin is not None:
            begin(spec.name)  # the driver names this check's pcap files after it
        start = time.monotonic()
        try:
            await asyncio.wait_for(CHECKS[spec.type].run(ctx, spec, result), spec.timeout)
        except asyncio.TimeoutError:
            result.status = ERROR
            result.message = f"did not finish within {spec.timeout:.0f} s (raise timeout = ... for this check)"
        except Exception as exc:  # noqa: BLE001  a check that cannot run is an error result, not a crash
            result.status = ERROR
            result.message = f"{type(exc).__name__}: {exc}" if not getattr(exc, "exit_code", None) else str(exc)
        result.duration_s = round(time.monotonic() - start, 3)
        out.results.append(result)
        if on_result is not None:
            on_result(result)
    out.duration_s = round(time.monotonic() - t0, 3)
    return out
