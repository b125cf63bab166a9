"""Linear time as a property, without a wall-clock limit (import as `linear`): the work on an input
8 times larger must grow about 8 times, not 64. Best of three runs each, CPU time, so a busy machine
slows both sizes alike."""

from __future__ import annotations

import time


def cost(fn, data, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        fn(data)
        best = min(best, time.process_time() - start)
    return best


def assert_linear(fn, make, small: int, factor: int = 8, slack: float = 3.0) -> None:
    """fn(make(n)) must cost at most factor * slack times more at factor * small than at small."""
    a = max(cost(fn, make(small)), 1e-4)
    b = cost(fn, make(small * factor))
    assert b <= a * factor * slack, f"{b / a:.1f}x the work for {factor}x the input: not linear"
