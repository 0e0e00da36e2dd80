"""The body every route answers with: which worker served it and what it did."""

from __future__ import annotations

import os


def answer(**work: float) -> dict[str, object]:
    return {"pid": os.getpid(), **{k: round(v, 3) for k, v in work.items()}}
