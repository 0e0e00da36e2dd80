"""The shop's HTTP API."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path, Request
from pydantic import BaseModel

from shop import pricing, scoring
from shop.store import Store


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.store = Store()
    app.state.calls = itertools.count()
    yield


app = FastAPI(title="shop", lifespan=lifespan)


@app.get("/products")
async def products(request: Request) -> list[dict[str, object]]:
    return await request.app.state.store.list_products()


@app.get("/products/{product_id}")
async def product(request: Request, product_id: Annotated[int, Path(examples=[3])]) -> dict[str, object]:
    found = await request.app.state.store.product(product_id)
    if found is None:
        raise HTTPException(404)
    return found


@app.get("/prices")
async def prices(currency: str = "USD") -> dict[str, float]:
    return pricing.current_rates([currency])


@app.get("/orders/summary")
def orders_summary(request: Request) -> dict[str, float]:
    return request.app.state.store.order_totals()


@app.get("/ledger")
def ledger(request: Request) -> dict[str, float]:
    return request.app.state.store.ledger_balance()


@app.get("/recommendations")
async def recommendations() -> list[tuple[int, float]]:
    return scoring.score(list(range(20)))[:5]


@app.get("/stock")
async def stock(request: Request) -> dict[str, object]:
    # Every fourth call finds the stock service down.
    if next(request.app.state.calls) % 4 == 3:
        raise HTTPException(503, "stock service unavailable")
    return {"region": request.app.state.store.region, "in_stock": 41}


@app.get("/search")
async def search(request: Request, q: str) -> list[dict[str, object]]:
    return [p for p in (await request.app.state.store.list_products()) if q in str(p["name"])]


class CartItem(BaseModel):
    product_id: int
    quantity: int = 1


@app.post("/cart")
async def add_to_cart(request: Request, item: CartItem) -> dict[str, int]:
    await request.app.state.store.product(item.product_id)  # the product must exist
    return {"product_id": item.product_id, "quantity": item.quantity}
