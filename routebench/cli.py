"""The ``routebench`` command: its parser, and the one place where an error the user can act on
becomes one line and exit code 2. Flags map onto the one settings object; every flag can also be
given as a ROUTEBENCH_* environment variable. What each subcommand does is in
:mod:`routebench.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rich.markup import escape

from analysis.load import BadInput
from routebench import stopping
from routebench.commands import (
    LOCUST_MASTER_PORT,
    SLO_EXIT_CODE,
    UNFIT_EXIT_CODE,
    UserError,
    add_server_flags,
    cmd_bench,
    cmd_capacity,
    cmd_check,
    cmd_compare,
    cmd_readme_tables,
    cmd_report,
    cmd_run,
    cmd_serve,
    cmd_styles,
    cmd_ui,
    cmd_worker,
    console,
)
from routebench.experiment import ExperimentError
from routebench.launcher import StackError
from routebench.routes import RoutesError

__all__ = ["LOCUST_MASTER_PORT", "build_parser", "main"]

# What the user can act on, from whichever layer noticed it: one line and exit 2, here only.
USER_ERRORS = (UserError, StackError, BadInput, ExperimentError, RoutesError)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """What ``run`` and ``capacity`` share: where results go, the Locust master, the target."""
    p.add_argument("--results", default="results", help="where run directories go (default results/)")
    p.add_argument(
        "--external-workers",
        type=int,
        default=0,
        help="start no local Locust workers; wait for N started on other machines",
    )
    p.add_argument("--master-host", default="127.0.0.1", help="address the Locust master binds")
    p.add_argument(
        "--master-port",
        type=int,
        default=0,
        help=f"the Locust master's port (default: free, or {LOCUST_MASTER_PORT} with --external-workers)",
    )
    p.add_argument(
        "--target-url",
        default=None,
        help="measure a target already running at this URL (e.g. routebench serve on another host)",
    )
    p.add_argument("--reports", default="reports", help="where the report is published (default reports/)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="profile every server worker with py-spy over each cell's window (a flame graph per cell)",
    )
    # W, T, P and the rest come from the experiment file, cell by cell.
    add_server_flags(
        p, only=("--host", "--port", "--upstream-latency", "--stall-threshold", "--app", "--app-dir", "--python")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the target stack in the foreground and print its URLs")
    add_server_flags(serve)
    serve.set_defaults(func=cmd_serve)
    run = sub.add_parser("run", help="run an experiment matrix headless into results/<run-id>/")
    run.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help="profile name (smoke, default, full; probe for --app, its default) or path to a TOML experiment file",
    )
    add_run_flags(run)
    run.set_defaults(func=cmd_run)
    cap = sub.add_parser(
        "capacity",
        help="per style, the highest offered rate that holds the SLO (search, then a confirmation) into results/",
    )
    cap.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help="profile name or TOML file (default: capacity; app-capacity for --app); its groups are searched in "
        "capacity mode",
    )
    add_run_flags(cap)
    cap.set_defaults(func=cmd_capacity)
    rep = sub.add_parser("report", help="analyse a run and publish reports/<run-id>/index.html")
    rep.add_argument("run", help="results/<run-id>")
    rep.add_argument("--reports", default="reports", help="where reports are published (default reports/)")
    rep.add_argument("--slo", action="append", default=[], help="extra threshold, e.g. 'sleep/async-await:p99<120ms'")
    rep.set_defaults(func=cmd_report)
    check = sub.add_parser(
        "check",
        help=f"check SLO thresholds; exit {SLO_EXIT_CODE} when one is broken, {UNFIT_EXIT_CODE} when the run is "
        "incomplete, a cell failed, or a judged cell is invalid",
    )
    check.add_argument("run", help="results/<run-id>")
    check.add_argument("--slo", action="append", default=[], help="threshold, e.g. 'sleep/async-await:p99<120ms'")
    check.add_argument(
        "--allow-incomplete",
        action="store_true",
        help=f"judge what finished instead of exiting {UNFIT_EXIT_CODE} on an incomplete run or failed cell",
    )
    check.add_argument(
        "--include-invalid", action="store_true", help="judge cells that broke a validity rule too (they are shown)"
    )
    check.set_defaults(func=cmd_check)
    cmp_ = sub.add_parser(
        "compare",
        help="HTML comparison of two runs, cell by cell: Welch's t-test with 3+ repeats a side, else a t-test "
        "against the repeats' pooled noise; Benjamini-Hochberg at 0.05 over the whole compare",
    )
    cmp_.add_argument("run_a")
    cmp_.add_argument("run_b")
    cmp_.add_argument(
        "--noise",
        type=float,
        default=None,
        help="used only when neither run repeated any cell: matrix runs take it as the relative sd of one "
        "measurement (e.g. 0.10) to test against; capacity runs as the relative change in an MST that counts; "
        "default: none, so such cells are inconclusive",
    )
    cmp_.add_argument("--reports", default="reports")
    cmp_.set_defaults(func=cmd_compare)
    ui = sub.add_parser("ui", help="the target stack plus Locust's web UI (127.0.0.1:8089)")
    ui.add_argument("--web-port", type=int, default=8089)
    ui.add_argument("--locust-workers", type=int, default=0)
    ui.add_argument("--results", default="results")
    add_server_flags(ui)
    ui.set_defaults(func=cmd_ui)
    bench = sub.add_parser("bench", help="what routebench costs and how accurate it is (needs wrk)")
    bench.add_argument("--seconds", type=int, default=10, help="length of each load measurement")
    bench.add_argument("--results", default="results", help="where to find the latest default run (model fit)")
    bench.add_argument(
        "--overhead",
        default="default,full",
        help="profiles run twice each, reusing and as before (a fresh stack and Locust per cell), for the "
        "overhead ratio side by side; empty: skip (default: default,full, about two hours)",
    )
    bench.set_defaults(func=cmd_bench)
    tables = sub.add_parser("readme-tables", help="the README's measured tables, made from a run (markdown)")
    tables.add_argument("run", help="results/<run-id>")
    tables.add_argument(
        "--write",
        metavar="README",
        default=None,
        help="replace the tables between the readme-tables markers of this file",
    )
    tables.set_defaults(func=cmd_readme_tables)
    worker = sub.add_parser("worker", help="run a Locust worker that joins a routebench master")
    worker.add_argument("--master-host", required=True, help="the master's address (routebench run --master-host)")
    worker.add_argument(
        "--master-port", type=int, default=LOCUST_MASTER_PORT, help=f"the master's port (default {LOCUST_MASTER_PORT})"
    )
    worker.set_defaults(func=cmd_worker)
    styles = sub.add_parser("styles", help="list the route-style catalogue")
    styles.set_defaults(func=cmd_styles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stopping.install()
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args) or 0
    except USER_ERRORS as exc:
        console.print(f"[red]routebench: error:[/] {escape(str(exc))}")  # its text is not markup
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; everything started was stopped")
        return 130


if __name__ == "__main__":
    code = main()
    if stopping.requested():
        stopping.leave(code)  # ``python -m`` would turn a handled stop into death by SIGINT
    sys.exit(code)
