"""What a worker opens once at start-up and shares between requests: HTTP clients, database pools,
the process pool. Each opens in the worker's own running loop (after Gunicorn's fork)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import httpx
import psycopg
import psycopg_pool
from fastapi import Request

from routebench.serverside.lifeline import die_with_parent
from target_app.settings import Settings
from target_app.work import burn


class Unavailable(Exception):
    """A dependency of a route (database, upstream) is missing or failing: the route answers 503."""


@dataclass
class Database:
    """An asyncpg pool for the async style and a psycopg pool for the blocking styles, P each."""

    url: str | None
    pool_size: int
    timeout_s: float
    async_pool: asyncpg.Pool | None = None
    sync_pool: psycopg_pool.ConnectionPool | None = None
    error: str | None = None
    async_waiting: int = 0

    async def open(self) -> None:
        if self.url is None:
            self.error = "no database configured (set DATABASE_URL or enable the embedded server)"
            return
        try:
            self.async_pool = await asyncpg.create_pool(
                self.url, min_size=self.pool_size, max_size=self.pool_size, timeout=self.timeout_s
            )
            self.sync_pool = psycopg_pool.ConnectionPool(
                self.url,
                min_size=self.pool_size,
                max_size=self.pool_size,
                timeout=self.timeout_s,
                open=False,
            )
            # Opening waits for the first connections; keep that off the event loop.
            await asyncio.to_thread(self.sync_pool.open, wait=True, timeout=self.timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self.error = f"database unreachable: {type(exc).__name__}: {exc}".strip()
            await self.close()

    async def close(self) -> None:
        if self.async_pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.async_pool.close(), timeout=5)
            self.async_pool = None
        if self.sync_pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.sync_pool.close, timeout=5)
            self.sync_pool = None

    def _check(self) -> None:
        if self.error is not None:
            raise Unavailable(self.error)

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        self._check()
        assert self.async_pool is not None
        self.async_waiting += 1
        try:
            conn = await self.async_pool.acquire(timeout=self.timeout_s)
        finally:
            self.async_waiting -= 1
        try:
            yield conn
        finally:
            await self.async_pool.release(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        self._check()
        assert self.sync_pool is not None
        with self.sync_pool.connection(timeout=self.timeout_s) as conn:
            yield conn

    def stats(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {
            "db_async_in_use": None,
            "db_async_waiting": None,
            "db_sync_in_use": None,
            "db_sync_waiting": None,
        }
        if self.async_pool is not None:
            out["db_async_in_use"] = self.async_pool.get_size() - self.async_pool.get_idle_size()
            out["db_async_waiting"] = self.async_waiting
        if self.sync_pool is not None:
            s = self.sync_pool.get_stats()
            out["db_sync_in_use"] = s.get("pool_size", 0) - s.get("pool_available", 0)
            out["db_sync_waiting"] = s.get("requests_waiting", 0)
        return out


@dataclass
class Upstream:
    """Clients for the upstream service, shared by a worker's requests: the http family's styles call it
    through httpx (``httpx.AsyncClient`` for the async style, ``httpx.Client`` for the blocking ones);
    the fan-out's calls go through an ``aiohttp.ClientSession``.

    Why two libraries: httpx's async connection pool spends CPU on every call in proportion to the calls
    in flight (httpx issue #3215). ``make bench`` measures it on this lab's upstream (50 ms waits, one
    process): 1.0 ms of CPU a call at 10 in flight, 5.8 ms at 50, when aiohttp spent 0.15 and 0.13 ms
    (routebench.bench.bench_fanout_clients, one run). A fan-out of k=5
    at 20 users puts 50 calls in flight per worker, so with httpx the client's CPU, not the fan-out's
    style, set the throughput. The http family keeps httpx, which is what it measures."""

    url: str | None
    timeout_s: float
    max_connections: int
    async_client: httpx.AsyncClient | None = None
    sync_client: httpx.Client | None = None
    fanout_session: aiohttp.ClientSession | None = None

    def open(self) -> None:
        """Opens the clients; called from the worker's running loop (aiohttp's session binds to it)."""
        if self.url is None:
            return
        limits = httpx.Limits(max_connections=self.max_connections, max_keepalive_connections=self.max_connections)
        timeout = httpx.Timeout(self.timeout_s)
        self.async_client = httpx.AsyncClient(base_url=self.url, limits=limits, timeout=timeout)
        self.sync_client = httpx.Client(base_url=self.url, limits=limits, timeout=timeout)
        self.fanout_session = aiohttp.ClientSession(
            base_url=self.url,
            connector=aiohttp.TCPConnector(limit=self.max_connections),
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            raise_for_status=True,
        )

    async def close(self) -> None:
        if self.async_client is not None:
            await self.async_client.aclose()
        if self.sync_client is not None:
            self.sync_client.close()
        if self.fanout_session is not None:
            await self.fanout_session.close()

    def _check(self) -> None:
        if self.url is None:
            raise Unavailable("no upstream service configured (ROUTEBENCH_UPSTREAM_URL)")

    async def wait(self, seconds: float) -> None:
        self._check()
        assert self.async_client is not None
        (await self.async_client.get("/wait", params={"ms": round(seconds * 1000)})).raise_for_status()

    def wait_blocking(self, seconds: float) -> None:
        self._check()
        assert self.sync_client is not None
        self.sync_client.get("/wait", params={"ms": round(seconds * 1000)}).raise_for_status()

    async def fanout_call(self, seconds: float) -> None:
        """One of a fan-out's calls (aiohttp; see the class)."""
        self._check()
        assert self.fanout_session is not None
        try:
            async with self.fanout_session.get("/wait", params={"ms": round(seconds * 1000)}) as response:
                await response.read()
        except TimeoutError as exc:  # aiohttp's timeout is asyncio's, not a ClientError
            raise Unavailable(f"upstream failed: no answer within {self.timeout_s:g} s") from exc


@dataclass
class Resources:
    settings: Settings
    db: Database = field(init=False)
    upstream: Upstream = field(init=False)
    process_pool: ProcessPoolExecutor | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.db = Database(s.database_url, s.db_pool_size, s.db_timeout_s)
        self.upstream = Upstream(s.upstream_url, s.upstream_timeout_s, s.upstream_max_connections)

    async def open(self) -> None:
        self.upstream.open()
        await self.db.open()
        # spawn, not fork: this worker already runs threads (AnyIO's, psycopg_pool's). Not forkserver
        # either: a forkserver outlives a SIGKILLed worker; spawned children die with it.
        self.process_pool = ProcessPoolExecutor(
            self.settings.process_pool_size,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=die_with_parent,
            initargs=(signal.SIGKILL,),
        )
        # Start the pool's processes now, not on the first measured request.
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self.process_pool, burn, 0) for _ in range(self.settings.process_pool_size))
        )

    async def close(self) -> None:
        if self.process_pool is not None:
            self.process_pool.shutdown(wait=False, cancel_futures=True)
        await self.upstream.close()
        await self.db.close()


async def resources(request: Request) -> Resources:
    """The worker's shared resources, as a dependency (async, so it borrows no thread token)."""
    return request.app.state.resources
