"""The per-request work sizes every route takes, with their bounds and defaults.

Each is an ``async def`` dependency on purpose: a sync dependency would run in the threadpool and
borrow the very tokens the threadpool styles are measured on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request

from target_app.settings import MAX_FANOUT, MAX_WAIT_MS, MAX_WORK, Settings


@dataclass(frozen=True)
class ParamSpec:
    name: str
    low: int
    high: int
    unit: str

    def describe(self) -> str:
        return f"an integer from {self.low} to {self.high} {self.unit}"


PARAMS: dict[str, ParamSpec] = {
    "ms": ParamSpec("ms", 0, MAX_WAIT_MS, "milliseconds"),
    "work": ParamSpec("work", 0, MAX_WORK, "loop iterations"),
    "k": ParamSpec("k", 1, MAX_FANOUT, "upstream calls"),
}


def _query(name: str) -> object:
    spec = PARAMS[name]
    return Query(ge=spec.low, le=spec.high, description=spec.describe())


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


async def wait_seconds(request: Request, ms: Annotated[int | None, _query("ms")] = None) -> float:
    return (settings_of(request).default_wait_ms if ms is None else ms) / 1000


async def cpu_work(request: Request, work: Annotated[int | None, _query("work")] = None) -> int:
    return settings_of(request).default_work if work is None else work


async def fanout_width(request: Request, k: Annotated[int | None, _query("k")] = None) -> int:
    return settings_of(request).default_fanout if k is None else k


WaitSeconds = Annotated[float, Depends(wait_seconds)]
CpuWork = Annotated[int, Depends(cpu_work)]
FanoutWidth = Annotated[int, Depends(fanout_width)]
