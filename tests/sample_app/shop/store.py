"""The product store: an async client to a database that answers in a few milliseconds."""

from __future__ import annotations

import asyncio
import os
import threading
import time


class Store:
    def __init__(self) -> None:
        self.region = os.environ.get("SHOP_REGION", "eu")
        self.products = {i: {"id": i, "name": f"product {i}", "price": 10.0 + i} for i in range(1, 50)}
        self._ledger = threading.Lock()

    async def list_products(self) -> list[dict[str, object]]:
        await asyncio.sleep(0.03)
        return list(self.products.values())[:10]

    async def product(self, product_id: int) -> dict[str, object] | None:
        await asyncio.sleep(0.01)
        return self.products.get(product_id)

    def order_totals(self) -> dict[str, float]:
        # A report query through a blocking driver, from a plain def route.
        time.sleep(0.03)
        return {"orders": 12.0, "revenue": 840.0}

    def ledger_balance(self) -> dict[str, float]:
        # The ledger's client is not thread-safe: one call at a time, whatever the threadpool.
        with self._ledger:
            time.sleep(0.02)
            return {"balance": 840.0}
