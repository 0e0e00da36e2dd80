"""An app whose lifespan fails: its inventory service cannot be reached."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    raise RuntimeError("cannot reach the inventory service at 10.0.0.9")
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/items")
async def items() -> list[int]:
    return [1, 2, 3]
