"""The HTTP family: one call to the upstream service, which answers after d."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from target_app.params import WaitSeconds
from target_app.resources import Resources, resources
from target_app.routes.answer import answer

Res = Annotated[Resources, Depends(resources)]


async def async_client(wait: WaitSeconds, res: Res) -> dict[str, object]:
    await res.upstream.wait(wait)
    return answer(wait_ms=wait * 1000)


async def blocking_client_in_async(wait: WaitSeconds, res: Res) -> dict[str, object]:
    res.upstream.wait_blocking(wait)  # blocks the event loop for the whole call
    return answer(wait_ms=wait * 1000)


def sync_def(wait: WaitSeconds, res: Res) -> dict[str, object]:
    res.upstream.wait_blocking(wait)
    return answer(wait_ms=wait * 1000)


HANDLERS = {
    "async-client": async_client,
    "blocking-client-in-async": blocking_client_in_async,
    "sync-def": sync_def,
}
