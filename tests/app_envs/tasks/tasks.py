"""A task list whose API is mounted under /api/v1 and needs a bearer token."""

from __future__ import annotations

import asyncio
import subprocess
import time
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer()

type Task = dict[str, object]  # PEP 695: this module needs Python 3.12, not routebench's 3.11


def user(credentials: HTTPAuthorizationCredentials = Depends(bearer)) -> str:
    return credentials.credentials


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Found only on the environment's own PATH (its bin/), as alembic is.
    subprocess.run(["tasks-migrate"], check=True)
    yield


api = FastAPI(dependencies=[Depends(user)])


@api.get("/tasks")
async def tasks() -> list[Task]:
    await asyncio.sleep(0.02)
    return [{"id": 1, "title": "write"}]


@api.get("/tasks/export")
async def export() -> dict:
    time.sleep(0.02)  # a blocking call inside async def
    return {"format": "csv"}


app = FastAPI(lifespan=lifespan)
app.mount("/api/v1", api)
