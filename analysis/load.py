"""Load a run directory into tidy DataFrames, checking each file's contract.

Any missing, empty, truncated or wrongly shaped file raises :class:`BadInput` naming the file and
what is wrong; the CLI prints that one line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.rundir import MEASURED, SCHEMA_VERSION, CellDir, RunDir, measured_until
from routebench.serverside.telemetry import WORKER_GLOB
from target_app import catalogue

STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "Requests/s", "50%", "95%", "99%")


class BadInput(ValueError):
    """A run file that cannot be used, said in one line."""


@dataclass(frozen=True)
class CellData:
    """Everything a finished cell left, read once and checked: the stages after loading are pure."""

    exact: dict[str, Any]  # exact.json: per-style entries checked by read_exact
    stats: pd.DataFrame
    history: pd.DataFrame
    failures: pd.DataFrame
    exceptions: pd.DataFrame
    telemetry: pd.DataFrame
    exact_path: Path  # named in the messages of later checks


@dataclass(frozen=True)
class Run:
    dir: Path
    meta: dict[str, Any]
    cells: list[dict[str, Any]]
    data: dict[str, CellData] = field(default_factory=dict)  # every measured cell (ok or degraded), by id
    routes: dict[str, Any] | None = None  # your app's run: its routes plan (routes.json, routebench.routes)

    def path_of(self, style: str) -> str:
        """The path a style's (or your route's) requests were sent to: what the server's telemetry
        names a request by."""
        for r in (self.routes or {}).get("routes", []):
            if r.get("id") == style:
                return str(r.get("path"))
        known = catalogue.BY_ID.get(style)
        return known.path if known is not None else f"/{style}"


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


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinity as None: JSON has neither."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def read_capacity(run_dir: Path) -> dict[str, Any] | None:
    """A capacity run's capacity.json (analysis.capacity), or None for any other run."""
    path = RunDir(run_dir).capacity
    if not path.is_file():
        return None
    doc = read_json(path)
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("routebench.capacity/"):
        raise BadInput(f"{path}: not a routebench capacity document")
    return doc


def load_run(run_dir: Path) -> Run:
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir}: no such run directory")
    meta = read_json(RunDir(run_dir).run_json)
    if not isinstance(meta, dict) or not isinstance(meta.get("cells"), list):
        raise BadInput(f"{RunDir(run_dir).run_json}: has no list of cells")
    version = meta.get("schema_version", 1)  # runs from before the field are version 1's layout
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BadInput(
            f"{RunDir(run_dir).run_json}: schema version {version!r}; this routebench reads up to "
            f"{SCHEMA_VERSION} (a newer routebench wrote it)"
        )
    cells = meta["cells"]
    data = {c["id"]: load_cell(RunDir(run_dir).cell(c["dir"])) for c in cells if c.get("status") in MEASURED}
    routes = read_json(RunDir(run_dir).routes) if RunDir(run_dir).routes.is_file() else None
    return Run(run_dir, meta, cells, data, routes)


def load_cell(files: CellDir) -> CellData:
    return CellData(
        exact=read_exact(files.exact),
        stats=read_stats_csv(files.stats),
        history=read_csv(files.history, HISTORY_COLUMNS, allow_empty=True),  # a fallback: the exact timeline is first
        failures=read_csv(files.failures, FAILURE_COLUMNS, allow_empty=True),
        exceptions=read_csv(files.exceptions, EXCEPTION_COLUMNS, allow_empty=True),
        telemetry=read_telemetry(files.telemetry),
        exact_path=files.exact,
    )


def read_stats_csv(path: Path) -> pd.DataFrame:
    return read_csv(path, STATS_COLUMNS)


HISTORY_COLUMNS = ("Timestamp", "Name", "Requests/s", "95%", "User Count")
FAILURE_COLUMNS = ("Method", "Name", "Error", "Occurrences")
EXCEPTION_COLUMNS = ("Count", "Message", "Traceback", "Nodes")


def read_csv(path: Path, columns: tuple[str, ...], allow_empty: bool = False) -> pd.DataFrame:
    """A CSV Locust wrote, with its column contract checked."""
    if not path.is_file():
        raise BadInput(f"{path}: missing")
    if path.stat().st_size == 0:
        raise BadInput(f"{path}: empty (not even a header)")
    try:
        df = pd.read_csv(path, na_values=["N/A"])
    except pd.errors.EmptyDataError:
        raise BadInput(f"{path}: empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not a CSV Locust wrote: {str(exc).splitlines()[0]}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise BadInput(f"{path}: missing columns {', '.join(missing)}")
    if df.empty and not allow_empty:
        raise BadInput(f"{path}: has a header but no rows")
    return df


def read_exact(path: Path) -> dict[str, Any]:
    """The cell's exact capture, its per-style entries checked: the whole body."""
    body = read_json(path)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, dict):
        raise BadInput(f"{path}: has no 'requests' object")
    for name, entry in requests.items():
        if not isinstance(entry, dict) or not {"count", "percentiles_us"} <= set(entry):
            raise BadInput(f"{path}: entry {name!r} lacks count or percentiles_us")
        missing = [p for p in ("50", "95", "99", "99.9") if p not in entry["percentiles_us"]]
        if missing:
            raise BadInput(f"{path}: entry {name!r} lacks percentiles {', '.join(missing)}")
    return body


def window_s(exact: dict[str, Any]) -> float | None:
    """The measured window's length, from the capture's own open time and :func:`measured_until`
    (None for runs saved before they were recorded)."""
    start, stop = exact.get("measure_from"), measured_until(exact)
    if isinstance(start, (int, float)) and stop is not None and stop > start:
        return float(stop - start)
    return None


def read_telemetry(directory: Path) -> pd.DataFrame:
    """Every worker's samples; a worker killed mid-write may leave a cut last line, which is dropped."""
    frames = []
    for path in sorted(directory.glob(WORKER_GLOB)):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):
                    continue
                raise BadInput(f"{path}: line {number} is not JSON") from None
        if records:
            frames.append(pd.DataFrame.from_records(records))
    if not frames:
        return pd.DataFrame(columns=["t", "pid", "lag_ms", "threads_busy", "threads_total", "inflight"])
    df = pd.concat(frames, ignore_index=True)
    for col in ("t", "pid", "lag_ms", "threads_busy"):
        if col not in df.columns:
            raise BadInput(f"{directory}: telemetry samples lack {col!r}")
    return df.sort_values("t", ignore_index=True)


def ok_cells(run: Run) -> list[dict[str, Any]]:
    return [c for c in run.cells if c.get("status") in MEASURED]
