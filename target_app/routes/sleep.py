"""The sleep family: the same wait d, in each route style."""

from __future__ import annotations

import asyncio
import time

from starlette.concurrency import run_in_threadpool

from target_app.params import WaitSeconds
from target_app.routes.answer import answer


async def async_await(wait: WaitSeconds) -> dict[str, object]:
    await asyncio.sleep(wait)
    return answer(wait_ms=wait * 1000)


async def blocking_in_async(wait: WaitSeconds) -> dict[str, object]:
    time.sleep(wait)  # the mistake being measured: the event loop stops for d
    return answer(wait_ms=wait * 1000)


def sync_def(wait: WaitSeconds) -> dict[str, object]:
    time.sleep(wait)
    return answer(wait_ms=wait * 1000)


async def offloaded(wait: WaitSeconds) -> dict[str, object]:
    await run_in_threadpool(time.sleep, wait)
    return answer(wait_ms=wait * 1000)


HANDLERS = {
    "async-await": async_await,
    "blocking-in-async": blocking_in_async,
    "sync-def": sync_def,
    "offloaded": offloaded,
}
