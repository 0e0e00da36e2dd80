"""CPU work, in a module of its own so process-pool children import nothing heavy to run it."""

from __future__ import annotations

import time


def burn(work: int) -> float:
    """Spin the interpreter for ``work`` iterations; return the CPU milliseconds it took."""
    start = time.thread_time()
    total = 0
    for i in range(work):
        total += i * i
    return (time.thread_time() - start) * 1000
