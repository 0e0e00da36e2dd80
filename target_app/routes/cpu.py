"""The CPU family: pure-Python work of ``work`` loop iterations, in each route style."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends

from target_app.params import CpuWork
from target_app.resources import Resources, resources
from target_app.routes.answer import answer
from target_app.work import burn


async def in_async(work: CpuWork) -> dict[str, object]:
    return answer(cpu_ms=burn(work))


def sync_def(work: CpuWork) -> dict[str, object]:
    return answer(cpu_ms=burn(work))


async def process_pool(work: CpuWork, res: Annotated[Resources, Depends(resources)]) -> dict[str, object]:
    assert res.process_pool is not None
    cpu_ms = await asyncio.get_running_loop().run_in_executor(res.process_pool, burn, work)
    return answer(cpu_ms=cpu_ms)


HANDLERS = {"async": in_async, "sync-def": sync_def, "process-pool": process_pool}
