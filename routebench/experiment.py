"""Experiment files (TOML): which styles, at which user counts, on which server shape, for how long.

A file sets defaults at the top level; each ``[[groups]]`` entry names styles (ids or whole
families) and may override any of them. The matrix is every group x server workers x users x
style (or the group's styles all together, for the neighbour scenario) x repeat.
See ``experiments/*.toml`` for the shipped profiles.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.rundir import RunDir
from target_app import catalogue
from target_app.settings import WorkerClass, bounds, default

PROFILES_DIR = Path(__file__).resolve().parent.parent / "experiments"


class ExperimentError(ValueError):
    """An experiment file that cannot be run, said in one line."""


class Knobs(BaseModel):
    """What a cell can vary. Top level: defaults; a group: overrides (None = inherit)."""

    model_config = ConfigDict(extra="forbid")

    duration_s: float | None = Field(None, gt=0, le=3600)  # the window; with precision, the least window
    # Precision-driven cells: a cell stops once the 95% interval of every style's p99 is within this
    # relative half width (0.05: +-5%), after duration_s and at max_duration_s at the latest. 0: off.
    precision: float | None = Field(None, ge=0, lt=1)
    max_duration_s: float | None = Field(None, gt=0, le=3600)
    warmup_s: float | None = Field(None, ge=0, le=600)
    repeats: int | None = Field(None, ge=1, le=100)
    model: Literal["closed", "open"] | None = None
    arrival_rate: float | None = Field(None, gt=0, le=100_000)
    users: list[int] | None = None
    # The server-side knobs take their bounds from Settings, which declares each once.
    wait_ms: int | None = Field(None, **bounds("default_wait_ms"))
    work: int | None = Field(None, **bounds("default_work"))
    fanout: int | None = Field(None, **bounds("default_fanout"))
    server_workers: list[int] | None = None
    worker_class: WorkerClass | None = None
    threadpool_tokens: int | None = Field(None, **bounds("threadpool_tokens"))
    db_pool_size: int | None = Field(None, **bounds("db_pool_size"))
    locust_workers: int | None = Field(None, ge=0, le=64)
    # Closed model: after the window, the load goes on until every request started in it has
    # finished, for at most this many seconds (and 3x the longest latency seen): its latencies are
    # then decided, not lower bounds. 0: what is in flight when the window ends is censored.
    finish_s: float | None = Field(None, ge=0, le=600)

    @field_validator("users")
    @classmethod
    def _user_counts(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(n < 1 or n > 10_000 for n in v)):
            raise ValueError("must be a non-empty list of integers from 1 to 10000")
        return v

    @field_validator("server_workers")
    @classmethod
    def _worker_counts(cls, v: list[int] | None) -> list[int] | None:
        low, high = bounds("workers")["ge"], bounds("workers")["le"]
        if v is not None and (not v or any(n < low or n > high for n in v)):
            raise ValueError(f"must be a non-empty list of integers from {low} to {high}")
        return v


DEFAULTS = Knobs(
    duration_s=10,
    precision=0,
    warmup_s=2,
    repeats=1,
    model="closed",
    arrival_rate=50,
    users=[10],
    wait_ms=default("default_wait_ms"),
    work=default("default_work"),
    fanout=default("default_fanout"),
    server_workers=[2],
    worker_class=default("worker_class"),
    threadpool_tokens=default("threadpool_tokens"),
    db_pool_size=default("db_pool_size"),
    locust_workers=0,
    finish_s=10,
)


class Group(Knobs):
    name: str | None = None
    styles: list[str]
    together: bool = False

    @field_validator("styles")
    @classmethod
    def _known_styles(cls, v: list[str]) -> list[str]:
        try:
            catalogue.select([s for s in v if not is_route(s)])  # routes are checked against your app
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return v


def is_route(name: str) -> bool:
    """A route of your app (``/items/{id}``, ``POST /items``), not a style of the catalogue."""
    return name.startswith("/") or bool(re.match(r"^[A-Z]+ /", name))


def pick(patterns: list[str], routes: list[str] | None) -> list[str]:
    """A group's styles: from the catalogue, or with your app (``routes``) its routes (``*``: all)."""
    if routes is None:
        named = [p for p in patterns if is_route(p)]
        if named:
            raise ExperimentError(f"{named[0]!r} is a route of an app: give the app (--app module:attribute)")
        return [s.id for s in catalogue.select(patterns)]
    chosen: list[str] = []
    for p in patterns:
        if p == catalogue.ALL:
            chosen += routes
        elif p in routes:
            chosen.append(p)
        else:
            what = "no such route in your app" if is_route(p) else "a style of routebench's own target app"
            raise ExperimentError(f"{p!r}: {what}; your app's routes: {', '.join(routes)} (or '*' for all)")
    return list(dict.fromkeys(chosen))


class CapacitySearch(BaseModel):
    """``mode = "capacity"``: per style (and server shape, and repeat) the highest offered rate that
    passes every probe rule (analysis.capacity), found by routebench.search.Search."""

    model_config = ConfigDict(extra="forbid")

    slo: list[str] = Field(default_factory=lambda: ["p99<250ms", "failure_rate<1%"], min_length=1)
    start_rps: float | None = Field(None, gt=0, le=100_000)  # None: 0.9 x the model's predicted MST (else 10)
    min_rps: float = Field(1.0, gt=0, le=100_000)
    max_rps: float = Field(5000.0, gt=0, le=100_000)
    growth: float = Field(2.0, gt=1, le=10)
    tolerance: float = Field(0.05, gt=0, lt=1)
    probe_s: float = Field(4.0, gt=0, le=600)  # each probe's window (its warm-up is warmup_s)
    confirm_s: float = Field(8.0, gt=0, le=3600)  # the confirmation's window: longer than a probe
    max_probes: int = Field(14, ge=2, le=100)  # per search, confirmations included

    @field_validator("slo")
    @classmethod
    def _slos(cls, v: list[str]) -> list[str]:
        from analysis.capacity import CapacityError, parse_slo

        for text in v:
            try:
                parse_slo(text)
            except CapacityError as exc:
                raise ValueError(str(exc)) from None
        return v


class Experiment(Knobs):
    name: str = "custom"
    description: str = ""
    groups: list[Group] = Field(min_length=1)
    slo: list[str] = Field(default_factory=list)
    # Off: no CPU-per-request probes before the matrix (quicker; the prediction then has no CPU term).
    calibrate: bool = True
    # On: py-spy samples every server worker over each cell's window (routebench.profiler).
    profile: bool = False
    # On: cells with the same server settings share one target stack and one Locust cluster
    # (routebench.lab); off: a fresh stack and cluster for every cell.
    reuse: bool = True
    # "matrix": every cell of the groups as it is; "capacity": a search per style (routebench.search).
    mode: Literal["matrix", "capacity"] = "matrix"
    capacity: CapacitySearch = Field(default_factory=CapacitySearch)
    # The canary's requests/s beside every cell (catalogue.CANARY: what the rest of the app feels); 0: none.
    canary_rate: float = Field(catalogue.CANARY_RATE, ge=0, le=1000)


class Cell(BaseModel):
    """One measured run: one Locust test of one set of styles on one server shape (the stack and
    the Locust cluster may be the last cell's: routebench.lab)."""

    index: int
    id: str
    group: str
    styles: list[str]
    users: int
    server_workers: int
    repeat: int
    duration_s: float
    warmup_s: float
    model: Literal["closed", "open"]
    arrival_rate: float
    wait_ms: int
    work: int
    fanout: int
    worker_class: WorkerClass
    threadpool_tokens: int
    db_pool_size: int
    locust_workers: int
    precision: float = 0.0
    max_duration_s: float | None = None
    tail_s: float = 0.0  # open model, capacity probes: load after the window (--rb-tail)
    finish_s: float = 0.0  # closed model: the longest the load goes on for the window's requests (--rb-finish)

    @property
    def longest_s(self) -> float:
        """The longest window the cell can measure: its maximum when precision-driven."""
        return max(self.duration_s, self.max_duration_s or 0.0) if self.precision else self.duration_s

    @property
    def needs_db(self) -> bool:
        return any(catalogue.family_of(s) == "db" for s in self.styles)


def expand(exp: Experiment, routes: list[str] | None = None) -> list[Cell]:
    """The experiment's cells; with your app, ``routes`` are its routes (what ``*`` and route names mean)."""
    cells: list[Cell] = []
    top = DEFAULTS.model_copy(update=exp.model_dump(exclude_unset=True, include=set(Knobs.model_fields)))
    for g_index, group in enumerate(exp.groups):
        k = top.model_copy(update=group.model_dump(exclude_unset=True, include=set(Knobs.model_fields)))
        styles = pick(group.styles, routes)
        if k.precision and k.max_duration_s is not None and k.duration_s and k.max_duration_s < k.duration_s:
            where = f"group {group.name or g_index + 1}"
            raise ExperimentError(
                f"{where}: max_duration_s ({k.max_duration_s:g}) is shorter than duration_s ({k.duration_s:g}), "
                "the least window of a precision-driven cell"
            )
        style_sets = [styles] if group.together else [[s] for s in styles]
        label = group.name or (f"group{g_index + 1}" if group.together else "")
        assert k.server_workers and k.users and k.repeats
        for workers in k.server_workers:
            for users in k.users:
                for style_set in style_sets:
                    for repeat in range(1, k.repeats + 1):
                        what = label if group.together else style_set[0]
                        index = len(cells) + 1
                        cells.append(
                            Cell(
                                index=index,
                                id=catalogue.slug(f"{index:03d}-{what}-u{users}-w{workers}-r{repeat}"),
                                group=label or (catalogue.family_of(style_set[0]) if routes is None else "route"),
                                styles=style_set,
                                users=users,
                                server_workers=workers,
                                repeat=repeat,
                                **k.model_dump(exclude={"users", "server_workers", "repeats"}),
                            )
                        )
    return cells


def served_by_uvicorn(exp: Experiment) -> Experiment:
    """``exp`` with every cell served by Uvicorn's own ``--workers`` (your app's environment has no
    Gunicorn with a Uvicorn worker class: routebench.appenv); W, T and the evidence are the same."""
    groups = [g.model_copy(update={"worker_class": "uvicorn"}) if g.worker_class else g for g in exp.groups]
    return exp.model_copy(update={"worker_class": "uvicorn", "groups": groups})


def resolve_path(name_or_path: str) -> Path:
    """A profile name (``smoke``, ``default``, ``full``) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ExperimentError(f"no experiment file {name_or_path!r} (profiles: {known}, or a path to a .toml file)")
    return path


def load(name_or_path: str) -> Experiment:
    path = resolve_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path}: cannot read: {exc}") from None
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"])
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ExperimentError(f"{path}: {where}: {err['msg']}{more}") from None
    if exp.mode == "capacity":
        check_capacity(exp, str(path))
    try:
        # What only the matrix shows (a group's windows that contradict each other); routes are
        # checked once the app is known.
        if not any(is_route(s) for g in exp.groups for s in g.styles):
            expand(exp)
    except ExperimentError as exc:
        raise ExperimentError(f"{path}: {exc}") from None
    return exp


def check_capacity(exp: Experiment, where: str) -> None:
    """What a capacity search needs of an experiment beyond its fields' own bounds."""
    c = exp.capacity
    if c.min_rps > c.max_rps or (c.start_rps is not None and not c.min_rps <= c.start_rps <= c.max_rps):
        raise ExperimentError(f"{where}: capacity: need min_rps <= start_rps <= max_rps")
    if c.confirm_s <= c.probe_s:
        raise ExperimentError(f"{where}: capacity: confirm_s ({c.confirm_s:g}) must be longer than probe_s")
    if any(g.together for g in exp.groups):
        raise ExperimentError(f"{where}: capacity: a search loads one style at a time (not together = true)")


def to_toml(exp: Experiment) -> str:
    """The experiment as a file ``routebench run`` reads back into the same matrix."""
    return tomli_w.dumps(exp.model_dump(exclude_none=True, exclude_defaults=False))


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (a checkout's own file)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path.resolve())


def reproduce(name_or_path: str, exp: Experiment, run_dir: Path, app: dict[str, Any] | None = None) -> dict[str, str]:
    """How to run this experiment again. A shipped profile or a file inside the checkout, left as
    it is, is named as such; anything else points at the copy written beside the run
    (``experiment.toml``), whose text the report also shows, so it runs from any checkout. With
    your app (routebench.routes' plan's ``app``), the same app, directory and routes file."""
    text = to_toml(exp)
    copy = RunDir(run_dir).experiment_toml
    copy.write_text(text, encoding="utf-8")
    try:
        source = resolve_path(name_or_path)
        same = load(name_or_path) == exp
    except ExperimentError:
        source, same = copy, False
    # A shipped profile by name runs from any checkout, wherever the run was started from.
    shipped = source.parent == PROFILES_DIR and Path(name_or_path).suffix != ".toml"
    inside = shipped or not Path(_shown(source)).is_absolute()
    if same and inside:
        profile = name_or_path if shipped else _shown(source)
        return {"command": f"make loadtest PROFILE={profile}{_app_vars(app)}", "toml": text}
    return {"command": f"make loadtest PROFILE={_shown(copy)}{_app_vars(app)}", "toml": text}


def _app_vars(app: dict[str, Any] | None) -> str:
    """The Makefile's variables for your app (empty for routebench's own)."""
    if not app:
        return ""
    out = f" APP={app['app']} APP_DIR={_shown(Path(app['app_dir']))}"
    env = app.get("environment") or {}
    # The interpreter as given or found active: a virtual environment's bin/python, not what it links to.
    out += f" PYTHON_APP={shlex.quote(env['python'])}" if env.get("source") in ("--python", "VIRTUAL_ENV") else ""
    out += f" ROUTES={_shown(Path(app['routes_file']))}" if app.get("routes_file") else ""
    out += f" LOCUSTFILE={_shown(Path(app['locustfile']))}" if app.get("locustfile") else ""
    # What readied the app, and the headers by name (their values, a token, are not written down).
    args = ["--postgres"] if app.get("postgres") else []
    args += ["--setup", shlex.quote(app["setup"])] if app.get("setup") else []
    args += [arg for name in app.get("header_names") or [] for arg in ("--header", shlex.quote(f"{name}: ..."))]
    # Quoted for the shell, and $ doubled for make: pasted, the line runs as the run did.
    return out + (" ARGS=" + shlex.quote(" ".join(args).replace("$", "$$")) if args else "")
