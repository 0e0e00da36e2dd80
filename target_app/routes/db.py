"""The database family: ``SELECT pg_sleep(d)`` on a real PostgreSQL, in each route style."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from target_app.params import WaitSeconds
from target_app.resources import Resources, resources
from target_app.routes.answer import answer

Res = Annotated[Resources, Depends(resources)]


def _pg_sleep_blocking(res: Resources, wait: float) -> None:
    with res.db.connection() as conn:
        conn.execute("SELECT pg_sleep(%s)", (wait,))


async def asyncpg_pool(wait: WaitSeconds, res: Res) -> dict[str, object]:
    async with res.db.acquire() as conn:
        await conn.execute("SELECT pg_sleep($1)", wait)
    return answer(wait_ms=wait * 1000)


async def blocking_in_async(wait: WaitSeconds, res: Res) -> dict[str, object]:
    _pg_sleep_blocking(res, wait)  # blocks the event loop for the whole query
    return answer(wait_ms=wait * 1000)


def sync_def(wait: WaitSeconds, res: Res) -> dict[str, object]:
    _pg_sleep_blocking(res, wait)
    return answer(wait_ms=wait * 1000)


HANDLERS = {"asyncpg": asyncpg_pool, "blocking-in-async": blocking_in_async, "sync-def": sync_def}
