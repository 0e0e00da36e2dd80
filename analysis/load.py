"""Load a run directory into tidy DataFrames, checking each file's contract.

Any missing, empty, truncated or wrongly shaped file raises :class:`BadInput` naming the file and
what is wrong; the CLI prints that one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%")


class BadInput(ValueError):
    """A run file that cannot be used, said in one line."""


@dataclass(frozen=True)
class Run:
    dir: Path
    meta: dict[str, Any]
    cells: list[dict[str, Any]]


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise BadInput(f"{path}: missing")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise BadInput(f"{path}: empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON (truncated?): {exc.msg} at line {exc.lineno}") from None


def load_run(run_dir: Path) -> Run:
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such run directory")
    meta = read_json(run_dir / "run.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("cells"), list):
        raise BadInput(f"{run_dir / 'run.json'}: has no list of cells")
    return Run(run_dir, meta, meta["cells"])


def read_stats_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise BadInput(f"{path}: missing")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise BadInput(f"{path}: empty") from None
    except pd.errors.ParserError as exc:
        raise BadInput(f"{path}: not a CSV Locust wrote: {exc}") from None
    missing = [c for c in STATS_COLUMNS if c not in df.columns]
    if missing:
        raise BadInput(f"{path}: missing columns {', '.join(missing)}")
    return df


def ok_cells(run: Run) -> list[dict[str, Any]]:
    return [c for c in run.cells if c.get("status") == "ok"]
