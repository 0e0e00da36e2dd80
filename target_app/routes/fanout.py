"""The fan-out family: k upstream calls of d each, one after another or together (through the
worker's shared aiohttp session: :class:`target_app.resources.Upstream`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends

from target_app.params import FanoutWidth, WaitSeconds
from target_app.resources import Resources, resources
from target_app.routes.answer import answer


async def sequential(
    wait: WaitSeconds, k: FanoutWidth, res: Annotated[Resources, Depends(resources)]
) -> dict[str, object]:
    for _ in range(k):
        await res.upstream.fanout_call(wait)
    return answer(wait_ms=wait * 1000, k=k)


async def gather(wait: WaitSeconds, k: FanoutWidth, res: Annotated[Resources, Depends(resources)]) -> dict[str, object]:
    await asyncio.gather(*(res.upstream.fanout_call(wait) for _ in range(k)))
    return answer(wait_ms=wait * 1000, k=k)


HANDLERS = {"sequential": sequential, "gather": gather}
