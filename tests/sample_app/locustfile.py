"""The shop's own load test, as its team wrote it: a shopper who browses, and a price checker."""

from locust import FastHttpUser, between, constant, task


class Shopper(FastHttpUser):
    wait_time = between(0.02, 0.06)  # a shopper glances at the page before the next click

    @task(3)
    def browse(self) -> None:
        self.client.get("/products")

    @task(1)
    def look_closer(self) -> None:
        self.client.get("/products/7", name="/products/[id]")


class PriceCheck(FastHttpUser):
    wait_time = constant(0)

    @task
    def prices(self) -> None:
        self.client.get("/prices", params={"currency": "GBP"})
