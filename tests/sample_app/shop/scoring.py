"""Recommendation scores: pure Python, on the CPU."""

from __future__ import annotations


def score(items: list[int], rounds: int = 480_000) -> list[tuple[int, float]]:
    total = 0.0
    for i in range(rounds):
        total += (i * 31 % 97) ** 0.5
    return sorted(((item, total / (item + 1)) for item in items), key=lambda x: -x[1])
