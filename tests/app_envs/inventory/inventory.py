"""An inventory on PostgreSQL, written for pydantic 1 and FastAPI 0.99."""

from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from psycopg_pool import ConnectionPool
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI):
    with ConnectionPool(os.environ["DATABASE_URL"], min_size=10, max_size=10) as pool:
        app.state.pool = pool
        yield


app = FastAPI(lifespan=lifespan)


class Count(BaseModel):
    items: int

    class Config:  # pydantic 1's way
        anystr_strip_whitespace = True


def count_items(pool: ConnectionPool) -> int:
    with pool.connection() as conn:
        return conn.execute("SELECT count(*), pg_sleep(0.02) FROM items").fetchone()[0]


@app.get("/items/count", response_model=Count)
def items_count(request: Request) -> Count:
    return Count(items=count_items(request.app.state.pool))


@app.get("/items/audit", response_model=Count)
async def items_audit(request: Request) -> Count:
    n = count_items(request.app.state.pool)  # a blocking database call inside async def
    time.sleep(0.01)
    return Count(items=n)
