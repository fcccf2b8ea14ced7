"""What the benchmark scripts share: one JSON line per figure, and the best of repeated timings.

Imported by name (``from benchtools import ...``): a script's own folder is first on ``sys.path``.
"""

from __future__ import annotations

import json
import time


def emit(name: str, value: float, unit: str) -> None:
    """Print one figure as ``{"name", "value", "unit"}`` (value rounded to 4 decimals)."""
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit}), flush=True)


def best_of(fn, repeats: int = 3, warm_up: bool = False) -> float:
    """The shortest of ``repeats`` timed calls of ``fn`` (seconds); ``warm_up`` first makes one untimed call
    (numba compilation, caches)."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)
