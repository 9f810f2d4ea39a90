"""Helpers shared by the benchmarks: timing, machine description, test signals."""

from __future__ import annotations

import time

from training.timing import machine, per_hop_fast, speechlike  # noqa: F401  (shared with training.compare)


def best_of(fn, repeats: int = 5) -> float:
    """Seconds for one call of fn, the best of `repeats` (least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
