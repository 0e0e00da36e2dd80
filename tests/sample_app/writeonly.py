"""An app with no GET route: nothing routebench can load without a routes file."""

from fastapi import FastAPI

app = FastAPI()


@app.post("/events")
async def events(event: dict[str, str]) -> dict[str, bool]:
    return {"stored": True}
