"""What each ``routebench`` subcommand does. The parser and the one place that turns errors into
exit codes are in :mod:`routebench.cli`; here, commands raise and return an exit code."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from analysis import capacity, load, report, slo, summary
from analysis.rundir import MEASURED, CellRecord, RunDir, RunState, write_json, write_text
from analysis.validity import describe_loss
from locustfiles.plugin.plan import HEADERS_ENV, merged_headers
from routebench import appenv, experiment, metadata, postgres, routes, terminal, ui_session
from routebench.appenv import AppEnv, AppEnvError
from routebench.launcher import AppError, Stack, claim_port
from routebench.locust_cluster import LoadSpec, LocustCluster, default_worker_count, worker_argv
from routebench.runner import Runner, new_run_id
from routebench.serverside.harness import HEALTH_PATH
from routebench.watch import TICK_S, Watch
from target_app import catalogue
from target_app.settings import Settings, default

console = Console(stderr=True, highlight=False, soft_wrap=True)
SLO_EXIT_CODE = 99  # as k6 does when a threshold is crossed
UNFIT_EXIT_CODE = 3  # check: the run is incomplete, a cell failed, or a judged cell is invalid
LOCUST_MASTER_PORT = 5557  # Locust's own default, which remote workers expect
DEFAULT_PROFILE = "default"  # routebench run with no experiment: the matrix of routebench's styles
APP_PROFILE = "probe"  # ... and with --app: every route of your app alone, then together
CAPACITY_PROFILE = "capacity"  # routebench capacity: the MST of a style of each family
APP_CAPACITY_PROFILE = "app-capacity"  # ... and with --app: of each route of your app


class UserError(Exception):
    """Bad input or an environment problem: printed as one line, never a traceback."""


# CLI flag -> Settings field. The flag's default is the setting's (env var, then built-in).
SERVER_FLAGS: dict[str, tuple[str, type, str]] = {
    "--host": ("host", str, "address every listener binds (default 127.0.0.1)"),
    "--port": ("port", int, "target app port (0: pick a free one)"),
    "--workers": ("workers", int, "server worker processes W (default: CPU count)"),
    "--worker-class": ("worker_class", str, "uvicorn-worker | gunicorn-asgi | uvicorn"),
    "--threadpool": (
        "threadpool_tokens",
        int,
        f"threadpool tokens T per worker (default {default('threadpool_tokens')})",
    ),
    "--db-pool": ("db_pool_size", int, f"database pool size P per worker (default {default('db_pool_size')})"),
    "--upstream-latency": ("upstream_latency_ms", int, "upstream service default latency in ms"),
    "--app": ("app", str, "serve your own ASGI app instead of the target app: module:attribute, as for uvicorn"),
    "--app-dir": ("app_dir", str, "where --app imports from and runs (default: the current directory)"),
    "--python": (
        "app_python",
        str,
        "with --app: the interpreter of your app's environment (default: APP_DIR/.venv or venv, "
        "else the active VIRTUAL_ENV, else routebench's own)",
    ),
    "--stall-threshold": (
        "stall_threshold_ms",
        int,
        f"ms a worker's event loop may go without turning before its stack is captured "
        f"(0: detector off; default {default('stall_threshold_ms')})",
    ),
}


def add_server_flags(p: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    for flag, (_, kind, help_text) in SERVER_FLAGS.items():
        if only is None or flag in only:
            p.add_argument(flag, type=kind, default=None, help=help_text)
    if only is None or "--app" in only:
        p.add_argument(
            "--routes",
            default=None,
            help="with --app: a TOML file that adds or overrides routes to load (methods, parameters, bodies, headers)",
        )
        p.add_argument(
            "--locustfile",
            default=None,
            help="with --app: your own locustfile instead of the routes; each user class is one route of the probe",
        )
        p.add_argument(
            "--setup",
            default=None,
            metavar="CMD",
            help="with --app: a command run once in APP_DIR with your app's environment before its routes are "
            "read (migrations, seeding)",
        )
        p.add_argument(
            "--postgres",
            action="store_true",
            help="with --app: routebench's embedded PostgreSQL with an empty database for your app (DATABASE_URL)",
        )
        p.add_argument(
            "--header",
            action="append",
            default=[],
            metavar="'NAME: VALUE'",
            help="with --app: a header sent with every route (repeatable), for an API that needs a token",
        )
    if only is None:
        p.add_argument("--no-db", action="store_true", help="run without PostgreSQL (db routes answer 503)")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, (field, _, _) in SERVER_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            overrides[field] = value
    if "app_dir" in overrides:
        overrides["app_dir"] = Path(overrides["app_dir"]).resolve()
    elif overrides.get("app"):
        overrides["app_dir"] = Path.cwd()
    if overrides.get("app_python") and not overrides.get("app"):
        raise UserError("--python goes with --app module:attribute: it is your app's interpreter")
    if overrides.get("app") and not overrides["app_dir"].is_dir():
        raise UserError(f"--app-dir {overrides['app_dir']}: no such directory")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise UserError(one_line(exc)) from None


def with_app_env(settings: Settings) -> tuple[Settings, AppEnv | None]:
    """Your app's interpreter chosen and checked (routebench.appenv), said in a line, and in the
    settings (served by Uvicorn's --workers where it has no Gunicorn with a Uvicorn worker); a
    one-line error for one that cannot serve it. Unchanged for the lab's own app."""
    if not settings.app:
        return settings, None
    try:
        env = appenv.resolve(str(settings.app_python) if settings.app_python else None, settings.app_dir or Path.cwd())
    except AppEnvError as exc:
        raise UserError(str(exc)) from None
    update: dict[str, Any] = {"app_python": env.python}
    if env.server == "uvicorn":
        update["worker_class"] = "uvicorn"
    return settings.model_copy(update=update), env


SETUP_TIMEOUT_S = 600.0


@contextlib.contextmanager
def app_prepared(args: argparse.Namespace, settings: Settings) -> Iterator[Settings]:
    """Your app made ready before its schema is read: routebench's embedded PostgreSQL with an empty
    database for it (``--postgres``: DATABASE_URL, said; stopped with the run), then ``--setup CMD``
    run once in its directory with its environment (migrations, seeding). Nothing for the lab's app."""
    wants_db, setup = getattr(args, "postgres", False), getattr(args, "setup", None)
    if not settings.app:
        if wants_db or setup:
            raise UserError("--postgres and --setup go with --app module:attribute")
        yield settings
        return
    app_inputs(args)  # bad routes or headers: one line before any database or setup
    # Your app's DATABASE_URL is its own (from your environment), unless routebench gives it one.
    settings = settings.model_copy(update={"database_url": None})
    with contextlib.ExitStack() as stack:
        if wants_db:
            db = stack.enter_context(
                Stack(
                    settings.model_copy(update={"app": None, "database_url": None}),
                    with_upstream=False,
                    with_target=False,
                )
            )
            assert db.database_url is not None
            url = postgres.create_database(db.database_url, "app")
            console.print(f"--postgres: routebench's embedded PostgreSQL, an empty database: DATABASE_URL={url}")
            settings = settings.model_copy(update={"database_url": url})
        if setup:
            run_setup(setup, settings)
        yield settings


def run_setup(command: str, settings: Settings) -> None:
    """``--setup``: once, in the app's directory, with its interpreter's bin/ first on PATH and its
    DATABASE_URL; a failure is one line with the command's last words."""
    app_dir = settings.app_dir or Path.cwd()
    python = settings.app_python or Path(sys.executable)
    started = time.monotonic()
    try:
        done = appenv.run_in(python, command, app_dir, SETUP_TIMEOUT_S, settings.database_url)
    except subprocess.TimeoutExpired:
        raise UserError(f"--setup {command!r} did not finish within {SETUP_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        tail = [line.strip() for line in done.stdout.splitlines() if line.strip()][-3:]  # in the order written
        raise UserError(f"--setup {command!r} failed (exit {done.returncode}): {' | '.join(tail) or 'no output'}")
    console.print(f"--setup: {command} (in {app_dir}): done in {time.monotonic() - started:.1f} s")


def app_inputs(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str]]:
    """The routes file's routes, the headers for every route (the file's, then ``--header``'s, by name
    whatever its case) and ``--header``'s alone: read before anything starts, so bad input is one line."""
    routes_file, locustfile = getattr(args, "routes", None), getattr(args, "locustfile", None)
    if routes_file and locustfile:
        raise UserError("--routes or --locustfile, not both: your locustfile says what each user sends")
    cli_headers = dict(routes.parse_header(h) for h in getattr(args, "header", None) or [])
    overrides, file_headers = routes.read_routes_file(Path(routes_file)) if routes_file else ([], {})
    return overrides, merged_headers(file_headers, cli_headers), cli_headers


def app_routes(args: argparse.Namespace, settings: Settings, env: AppEnv | None = None) -> dict[str, Any] | None:
    """Your app's routes to load (routebench.routes), said in a line; None for the target app."""
    routes_file, locustfile = getattr(args, "routes", None), getattr(args, "locustfile", None)
    given = getattr(args, "header", None) or []
    if not settings.app:
        if routes_file or locustfile or given or settings.app_dir is not None:
            raise UserError("--routes, --locustfile, --header and --app-dir go with --app module:attribute")
        return None
    overrides, every, cli_headers = app_inputs(args)
    app_dir = settings.app_dir or Path.cwd()
    with tempfile.TemporaryDirectory(prefix="routebench-app-") as tmp:
        found = routes.describe(
            settings.app, app_dir, Path(tmp) / "describe.json", settings.app_python, settings.database_url
        )
        if locustfile:
            plan = routes.locustfile_plan(Path(locustfile), Path(tmp) / "classes.json")
    if not locustfile:
        plan = routes.plan(found.get("openapi"), overrides, every)
        if every:  # their values reach the Locust processes this process starts, not the run directory
            os.environ[HEADERS_ENV] = json.dumps(every)
    plan["app"] = {
        "app": settings.app,
        "app_dir": str(app_dir),
        "kind": found.get("kind"),
        "openapi": found.get("openapi") is not None,
        "routes_file": str(Path(routes_file).resolve()) if routes_file else None,
        "locustfile": str(Path(locustfile).resolve()) if locustfile else None,
        "mounted": found.get("mounted") or [],
        "environment": env.record() if env is not None else None,
        "postgres": bool(getattr(args, "postgres", False)),
        "setup": getattr(args, "setup", None),
        "header_names": sorted(cli_headers),  # by name (the routes file's are reproduced by ROUTES=)
    }
    gets = [x for x in plan["left_out"] if x["method"] == "GET"]
    if not plan["routes"] and gets and all(x["why"] == routes.AUTH_WHY for x in gets):
        names = plan.get("auth_needs") or ["Authorization"]
        raise UserError(
            f"{settings.app}: every GET route needs auth ({len(gets)} declare OpenAPI security): "
            f"give {' and '.join(f'--header {chr(39)}{n}: ...{chr(39)}' for n in names)} or headers in a routes file"
        )
    if not plan["routes"]:
        why = (
            "in its OpenAPI schema, no GET route whose required parameters all have an example or a default"
            if found.get("openapi") is not None
            else f"no OpenAPI schema to find routes in (a {found.get('kind')})"
        )
        raise AppError(f"{settings.app}: no route to load ({why}): name routes in a routes file (--routes FILE)")
    if env is not None:
        console.print(escape(env.said()))
    console.print(
        f"{settings.app}: {len(plan['routes'])} route(s) to load: {', '.join(r['id'] for r in plan['routes'])}"
        + (f"; {len(plan['left_out'])} left out (the report says why)" if plan["left_out"] else "")
    )
    return plan


def one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = ".".join(str(x) for x in err["loc"]) or "settings"
        parts.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "invalid setting: " + "; ".join(parts)


def warn_if_exposed(settings: Settings) -> None:
    if not settings.is_loopback:
        console.print(
            f"[yellow]warning:[/] listening on {settings.host}, reachable from other machines; "
            "the target app has no authentication"
        )


def cmd_serve(args: argparse.Namespace) -> int:
    settings, env = with_app_env(settings_from(args))
    warn_if_exposed(settings)
    if env is not None:
        console.print(escape(env.said()))
    with app_prepared(args, settings) as ready:
        return serve(args, ready)


def serve(args: argparse.Namespace, settings: Settings) -> int:
    console.print("starting the target stack ...")
    with Stack(settings, with_db=not args.no_db) as stack:
        urls = stack.describe()
        console.print(
            f"[green]target[/]   {urls['target']}  (W={settings.workers}, "
            f"{settings.worker_class}, T={settings.threadpool_tokens})"
        )
        console.print(f"[green]upstream[/] {urls['upstream']}")
        console.print(f"[green]database[/] {urls['database'] or 'disabled'}")
        if settings.app:
            console.print(f"your app {settings.app} from {settings.app_dir}; health: {urls['target']}{HEALTH_PATH}")
        else:
            console.print(f"styles: {urls['target']}/styles   telemetry: {urls['target']}/telemetry")
        console.print("Ctrl-C stops everything.")
        print(urls["target"], flush=True)
        while all(m.alive() for m in stack.processes):
            time.sleep(0.5)
        dead = [m for m in stack.processes if not m.alive()]
        raise UserError(f"{dead[0].name} exited unexpectedly (code {dead[0].proc.returncode})")


def print_summary(run_dir: Path) -> None:
    """The plain summary table of a run, printed and written beside it (summary.csv, summary.md)."""
    run = load.load_run(run_dir)
    table = report.full_table(run)
    files = RunDir(run_dir)
    table.to_csv(files.summary_csv, index=False)
    doc = report.capacity_document(run)
    if doc is not None:
        write_json(files.capacity, doc)
    found = report.findings_document(run)
    if found is not None:
        write_json(files.findings, found)
    shown = table[
        [
            "cell",
            "style",
            "style_users",
            "users",
            "server_workers",
            "requests",
            "failures",
            "rps",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "locust_p99_ms",
            "valid",
        ]
    ]
    write_text(files.summary_md, shown.to_markdown(index=False, floatfmt=".1f") + "\n")
    # Piped output (a CI log, a file) gets the full table; a terminal gets what fits its width.
    terminal.print_summary_table(
        table, f"{run_dir.name}: per cell", Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    )
    console.print(f"summary: {files.summary_md}")
    if doc is not None:
        print_capacity(run_dir.name, doc)
    if found is not None:
        print_findings(run_dir.name, found)
        console.print(f"findings: {files.findings}")


def print_findings(run_id: str, doc: dict[str, Any]) -> None:
    """Each route of your app: its verdict, why, and where it blocks (findings.json)."""
    table = Table(title=f"{run_id}: your app's routes ({doc['app'].get('app')})", box=None, show_lines=True)
    for column in ("route", "verdict", "why"):
        table.add_column(column, overflow="fold")
    colour = {"fine": "green", "blocks-event-loop": "red", "errors": "red", "unknown": "dim"}
    for r in doc["routes"]:
        sites = [s["site"] for s in r["evidence"].get("blocking_sites", [])]
        why = r["why"] + (f"\nblocking: {', '.join(sites)}" if sites and r["verdict"] != "fine" else "")
        table.add_row(escape(r["route"]), f"[{colour.get(r['verdict'], 'yellow')}]{r['verdict']}[/]", escape(why))
    Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(table)
    if not doc.get("complete"):
        console.print("[yellow]incomplete:[/] each verdict reads the user counts that finished")
    for x in doc.get("left_out", []):
        console.print(f"[dim]not loaded: {x['method']} {x['path']}: {x['why']}[/]")


def cmd_capacity(args: argparse.Namespace) -> int:
    """``routebench capacity``: the experiment (default: the capacity profile) as capacity searches."""
    args.experiment = args.experiment or (APP_CAPACITY_PROFILE if args.app else CAPACITY_PROFILE)
    if args.locustfile:
        raise UserError(
            "capacity runs the open model (starts on a schedule): your locustfile's users set their own pace"
        )
    exp = experiment.load(args.experiment)
    if exp.mode != "capacity":
        exp = exp.model_copy(update={"mode": "capacity"})
        experiment.check_capacity(exp, args.experiment)
    return run_experiment(args, exp)


def print_capacity(run_id: str, doc: dict[str, Any]) -> None:
    """Each style's MST, its validity and theory's numbers (capacity.json)."""
    table = Table(title=f"{run_id}: maximum sustainable throughput ({', '.join(doc['slo'])})", box=None)
    for column in ("style", "MST req/s", "probes", "predicted", "ceiling", "knee", "vs predicted", "vs baseline"):
        table.add_column(column, justify="left" if column == "style" else "right")
    for r in doc["styles"]:
        table.add_row(
            r["style"],
            report.capacity_text(r),
            str(r["probes"]),
            _num(r["predicted_mst_rps"]),
            _num(r["ceiling_rps"]),
            _num(r["knee_rps"]),
            f"{'≥ ' if r.get('at_search_bound') else ''}{r['vs_predicted']:.2f}" if r["vs_predicted"] else "–",
            _vs_baseline(r),
        )
    Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(table)
    if not doc.get("complete"):
        console.print(
            "[yellow]incomplete:[/] the run stopped early; a search not confirmed shows its best passing probe "
            "(≥, an unconfirmed lower bound that check does not count)"
        )


def _num(value: float | None) -> str:
    return f"{value:,.4g}" if isinstance(value, (int, float)) else "–"


def _vs_baseline(r: dict[str, Any]) -> str:
    """A style's MST over its baseline's: "≥" when its own MST is a lower bound; none over a
    baseline whose MST is one (capacity.json says why)."""
    if r["baseline"] == r["style"]:
        return "–"
    if r.get("vs_baseline_note"):
        return "– (baseline ≥)"
    return f"{'≥ ' if r.get('vs_baseline_at_least') else ''}{r['vs_baseline']:.3f}" if r["vs_baseline"] else "–"


def cmd_run(args: argparse.Namespace) -> int:
    args.experiment = args.experiment or (APP_PROFILE if args.app else DEFAULT_PROFILE)
    return run_experiment(args, experiment.load(args.experiment))


def run_experiment(args: argparse.Namespace, exp: experiment.Experiment) -> int:
    if getattr(args, "profile", False):
        exp = exp.model_copy(update={"profile": True})
    settings, env = with_app_env(settings_from(args))
    if env is not None and env.server == "uvicorn":
        exp = experiment.served_by_uvicorn(exp)
    warn_if_exposed(settings)
    opened = exp.mode == "capacity" or exp.model == "open" or any(g.model == "open" for g in exp.groups)
    if getattr(args, "locustfile", None) and opened:
        raise UserError("--locustfile runs the closed model only: your locustfile's users set their own pace")
    if settings.app and (args.external_workers or args.target_url):
        raise UserError(
            "--app serves your app here with local Locust workers: not with --external-workers or --target-url"
        )
    with app_prepared(args, settings) as ready:
        return measure(args, exp, ready, env)


def measure(args: argparse.Namespace, exp: experiment.Experiment, settings: Settings, env: AppEnv | None) -> int:
    """The run itself, once your app (if any) is ready: its routes read, the matrix or the capacity
    searches measured, the summary printed and the report published."""
    planned = app_routes(args, settings, env)
    # Ports the user chose are checked before anything is written: each cell would need them.
    for field, what in (
        ("port", "target app"),
        ("upstream_port", "upstream service"),
        ("db_port", "embedded PostgreSQL"),
    ):
        # Your app's runs have no upstream, and their database (--postgres) already holds its port.
        if settings.app and field != "port":
            continue
        if getattr(settings, field):
            claim_port(settings.host, getattr(settings, field), what)
    results = Path(args.results)
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"results directory {results} is not writable: {exc.strerror}") from None
    if args.external_workers and args.master_host == "127.0.0.1":
        console.print(
            "[yellow]note:[/] the master listens on 127.0.0.1 only; workers on other machines "
            "need --master-host set to an address they can reach"
        )
    if args.master_host != "127.0.0.1":
        console.print(
            f"[yellow]warning:[/] the Locust master listens on {args.master_host} (ZeroMQ, no authentication)"
        )

    def show_worker_command(cmd: list[str]) -> None:
        console.print(f"waiting for {args.external_workers} worker(s); start each with:\n  {' '.join(cmd)}")

    master_port = args.master_port or (LOCUST_MASTER_PORT if args.external_workers else 0)
    runner = Runner(
        exp,
        settings,
        results_dir=results,
        external_workers=args.external_workers,
        master_host=args.master_host,
        master_port=master_port,
        target_url=args.target_url,
        console=console,
        on_worker_command=show_worker_command,
        source=args.experiment,
        app_routes=planned,
    )
    try:
        run_dir = runner.run()
    except KeyboardInterrupt:
        done = sum(1 for c in (runner.state.cells if runner.state else []) if c.status in MEASURED)
        if exp.mode == "capacity":
            console.print(
                f"[yellow]interrupted:[/] {done} probes finished and kept; a search not confirmed keeps its highest "
                f"passing rate as an unconfirmed lower bound of its MST (capacity.json); the run is marked incomplete: "
                f"{runner.run_dir}"
            )
        else:
            console.print(
                f"[yellow]interrupted:[/] {done} of {len(runner.cells)} cells finished and kept; "
                f"the run is marked incomplete: {runner.run_dir}"
            )
        if done:
            print_summary(runner.run_dir)
            publish_report(runner.run_dir, Path(args.reports))
        return 130
    assert runner.state is not None  # the run has run
    console.print(f"run finished in {runner.state.wall_s} s: {run_dir}")
    print_summary(run_dir)
    publish_report(run_dir, Path(args.reports))
    failed = [c for c in runner.state.cells if c.status not in (*MEASURED, "skipped")]
    if failed and exp.mode == "capacity":
        # A probe that measured nothing (overload: no request finished in its window) failed its rules.
        console.print(
            f"[yellow]{len(failed)} probe(s) failed and were judged failing:[/] "
            + "; ".join(f"{c.id}: {c.reason}" for c in failed)
        )
    elif failed:
        console.print(f"[red]{len(failed)} cell(s) failed:[/] " + "; ".join(f"{c.id}: {c.reason}" for c in failed))
        return 1
    return 0


def publish_report(run_dir: Path, reports_dir: Path, slo_args: list[str] | None = None) -> Path:
    page = report.publish(run_dir, reports_dir, slo_args)
    console.print(f"report: {page}  (all runs: {reports_dir / 'index.html'})")
    return page


def cmd_report(args: argparse.Namespace) -> int:
    run_dir = Path(args.run)
    print_summary(run_dir)
    publish_report(run_dir, Path(args.reports), args.slo)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if RunDir(Path(args.run)).capacity.is_file():  # a capacity run: judged on its MSTs, made afresh
        doc = report.capacity_document(load.load_run(Path(args.run)))
        if doc is not None:
            return check_capacity(args, doc)
    a = report.analyse(Path(args.run), args.slo)
    if a.slo.empty:
        raise UserError("no SLO thresholds: give --slo 'STYLE:p99<120ms' or an slo list in the experiment file")
    # What makes the run unfit to judge: it did not finish, a cell failed, or a cell is invalid.
    unfit = (
        [f"run {a.run.meta.get('status', 'unknown')}: not every cell ran"]
        if a.run.meta.get("status") != "complete"
        else []
    )
    unfit += [
        f"cell {c['id']} {c['status']}{': ' + c['reason'] if c.get('reason') else ''}"
        for c in a.run.cells
        if c.get("status") not in MEASURED
    ]
    validity = {c["id"]: summary.cell_validity(c, a.run.data[c["id"]]) for c in load.ok_cells(a.run)}
    judged = failed_expected = broken = 0
    for r in a.slo.itertuples():
        v = validity.get(r.cell) if r.cell else None
        if not r.judged:
            console.print(f"[yellow]not judged[/] {r.slo}  {r.cell}: {r.note}")
            unfit.append(f"{r.slo} in {r.cell}: only a lower bound")
            continue
        if v is not None and not v["valid"] and not args.include_invalid:
            console.print(f"[yellow]not judged[/] {r.slo}  {r.cell}: invalid: {'; '.join(v['reasons'])}")
            unfit.append(f"cell {r.cell} invalid ({', '.join(v['failed'])})")
            continue
        judged += 1
        mark = (
            "[green]pass[/]" if r.passed else "[yellow]FAIL, as expected[/]" if r.expected_failure else "[red]FAIL[/]"
        )
        where = f"{r.cell} (U={r.users})" if r.cell else r.note
        value = f"{'≥ ' if r.at_least else ''}{r.value:,.2f}" if r.value is not None else "–"
        why = f"  [dim]({r.note})[/]" if r.cell and r.note else ""
        console.print(f"{mark} {r.slo}  {where}: {value}{why}")
        # A cell that shares its workers with a loop-blocking style is there to show the damage:
        # its failure is the lesson, reported but not counted against the gate.
        if not r.passed:
            if r.expected_failure:
                failed_expected += 1
            else:
                broken += 1
    if failed_expected:
        console.print(f"[yellow]{failed_expected} check(s) failed as expected (neighbour damage), not counted[/]")
    hint = ", --include-invalid judges invalid cells too" if any("invalid" in u for u in unfit) else ""
    return check_exit(unfit, broken, judged, args.allow_incomplete, hint)


def check_exit(unfit: list[str], broken: int, judged: int, allow_incomplete: bool, hint: str = "") -> int:
    """``check``'s exit code, said: 3 when the run is not fit to judge (unless asked to judge what
    finished), 99 when a threshold broke, 3 when none could be judged, else 0."""
    if unfit and not allow_incomplete:
        for line in dict.fromkeys(unfit):
            console.print(f"[red]cannot judge:[/] {line}")
        console.print(
            f"[red]exit {UNFIT_EXIT_CODE}: the run is not fit to judge[/] (--allow-incomplete judges what finished"
            f"{hint})"
        )
        return UNFIT_EXIT_CODE
    if broken:
        console.print(f"[red]{broken} threshold check(s) failed[/]")
        return SLO_EXIT_CODE
    if not judged:
        console.print("[red]no threshold could be judged[/]")
        return UNFIT_EXIT_CODE
    return 0


def check_capacity(args: argparse.Namespace, doc: dict[str, Any]) -> int:
    """``check`` on a capacity run: ``STYLE:mst>=N`` thresholds against its capacity.json."""
    try:
        thresholds = [slo.parse(t) for t in args.slo]
    except slo.SloError as exc:
        raise UserError(str(exc)) from None
    if not thresholds:
        raise UserError("no threshold: give --slo 'STYLE:mst>=N' (a capacity run is judged on its MSTs)")
    other = [t.text for t in thresholds if t.metric != "mst_rps"]
    if other:
        raise UserError(f"{other[0]}: a capacity run is judged on mst only (STYLE:mst>=N)")
    unfit = [] if doc.get("complete") else ["the capacity run did not finish: not every search ran"]
    broken = judged = 0
    for r in capacity.evaluate(doc, thresholds):
        where = f" ({r['shape']})" if r.get("shape") else ""
        value = f"{r['value']:,.4g} req/s" if r["value"] is not None else "–"
        note = f"  [dim]({r['note']})[/]" if r["note"] else ""
        if not r["judged"]:
            console.print(f"[yellow]not judged[/] {r['slo']}{where}: {value}{note}")
            unfit.append(f"{r['slo']}{where}: {r['note']}")
            continue
        judged += 1
        broken += not r["passed"]
        console.print(f"{'[green]pass[/]' if r['passed'] else '[red]FAIL[/]'} {r['slo']}{where}: {value}{note}")
    return check_exit(unfit, broken, judged, args.allow_incomplete)


def cmd_compare(args: argparse.Namespace) -> int:
    page = report.publish_comparison(Path(args.run_a), Path(args.run_b), Path(args.reports), args.noise)
    console.print(f"comparison: {page}")
    return 0


UI_FAMILY = "sleep"  # ticked when the web UI's form opens: the family whose lesson is quickest to see
UI_USERS_PER_STYLE = 10


def cmd_ui(args: argparse.Namespace) -> int:
    settings, env = with_app_env(settings_from(args))
    warn_if_exposed(settings)
    # A taken port is one line before anything is written, not a session directory that says "failed".
    claim_port(settings.host, args.web_port, "Locust web UI")
    if settings.port:
        claim_port(settings.host, settings.port, "target app")
    with app_prepared(args, settings) as ready:
        return ui_session_of(args, ready, env)


def ui_session_of(args: argparse.Namespace, settings: Settings, env: AppEnv | None) -> int:
    """The web-UI session itself, once your app (if any) is ready."""
    planned = app_routes(args, settings, env)
    run_dir = Path(args.results).resolve() / new_run_id("ui")
    run_dir.mkdir(parents=True)
    files = RunDir(run_dir)
    if planned is not None:
        write_json(files.routes, planned)
    state = RunState(
        metadata.header(
            run_dir.name, {"name": "web-ui", "description": "a Locust web-UI session"}, settings, web_ui=True
        )
    )
    metadata.stamp(state.header, settings)
    state.header.app_environment = planned["app"].get("environment") if planned is not None else None
    files.write_state(state)
    # Your app: every route ticked; else the family whose lesson is quickest to see.
    ticked = (
        [r["class_name"] for r in planned["routes"]]
        if planned is not None
        else [s.class_name for s in catalogue.family(UI_FAMILY)]
    )
    # The form opens with the headless default's work sizes (d = 50 ms ...), so Start as it comes runs.
    spec = LoadSpec(
        target_url="",
        user_classes=[],
        users=UI_USERS_PER_STYLE * len(ticked),
        out_dir=run_dir,
        wait_ms=experiment.DEFAULTS.wait_ms,
        work=experiment.DEFAULTS.work,
        fanout=experiment.DEFAULTS.fanout,
        default_classes=ticked,
        routes_file=files.routes if planned is not None else None,
    )
    watch = Watch(run_dir, None)  # every process of the session, by its handle
    try:
        with Stack(settings, telemetry_dir=files.telemetry, with_db=not args.no_db) as stack:
            spec.target_url = stack.target_url
            login = ["--web-login"] if settings.ui_password is not None else []
            if not login and not settings.is_loopback:
                console.print(
                    "[yellow]warning:[/] the web UI is open to anyone who can reach it; set "
                    "ROUTEBENCH_UI_PASSWORD to require a login"
                )
            with LocustCluster(
                spec,
                args.locust_workers or default_worker_count(),
                web_port=args.web_port,
                bind_host=settings.host,
                extra_args=login,
            ) as cluster:
                url = cluster.wait_web_ui()
                console.print(f"[green]Locust web UI[/] {url}  (target {stack.target_url}); Ctrl-C stops everything")
                print(url, flush=True)
                while True:
                    for loss in watch.dead(cluster.local_workers, "locust worker"):
                        console.print(f"[yellow]lost:[/] {describe_loss(loss)}; the test goes on without it")
                        watch.tell_master()
                    ended = watch.dead(stack.processes, "target stack") + watch.dead(
                        cluster.processes()[:1], "locust master"
                    )
                    if ended:
                        console.print(f"[red]the session ended:[/] {describe_loss(ended[0])}")
                        break
                    time.sleep(TICK_S)
    except KeyboardInterrupt:
        pass
    finally:
        session = ui_session.cells(run_dir, settings, default_worker_count())
        state.cells = [CellRecord.from_json(c) for c in session["cells"]]
        state.header.experiment, state.header.reproduce = session["experiment"], session["reproduce"]
        state.status, state.ended_at = "complete", time.time()
        if watch.losses:
            state.losses = watch.losses
        files.write_state(state)
        tests = len(state.cells)
        console.print(f"web-UI session saved: {run_dir}, {tests} test(s) (report: routebench report {run_dir})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from routebench.bench import run_bench

    profiles = [p for p in args.overhead.split(",") if p]
    for p in profiles:
        experiment.resolve_path(p)  # a bad name stops here, not after the first benchmarks
    more = f", then {', '.join(profiles)} twice each" if profiles else ""
    console.print(f"benchmarking routebench itself (about 3 minutes{more}) ...")
    path, text = run_bench(Path(args.results), args.seconds, overhead_profiles=profiles)
    print(text)
    console.print(f"saved: {path}")
    return 0


def cmd_readme_tables(args: argparse.Namespace) -> int:
    from routebench import readme

    try:
        block = readme.tables(Path(args.run))
        if args.write:
            readme.write(Path(args.write), block)
            console.print(f"{args.write}: tables replaced with {Path(args.run).name}'s")
        else:
            print(block, end="")
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Become a Locust worker of a routebench master (on another machine, a container, a pod)."""
    argv = worker_argv(args.master_host, args.master_port)
    os.execv(argv[0], argv)
    return 0  # not reached: the process is Locust's now


def cmd_styles(_: argparse.Namespace) -> int:
    for s in catalogue.STYLES:
        print(f"{s.id:32} {s.description}")
    return 0
