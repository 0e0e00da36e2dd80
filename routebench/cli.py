"""The ``routebench`` command. Flags map onto the one settings object; every flag can also be
given as a ROUTEBENCH_* environment variable. Errors the user can act on are one line, exit 2."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from target_app import catalogue
from target_app.launcher import Stack, StackError
from target_app.settings import Settings

console = Console(stderr=True, highlight=False, soft_wrap=True)


class UserError(Exception):
    """Bad input or an environment problem: printed as one line, never a traceback."""


# CLI flag -> Settings field. The flag's default is the setting's (env var, then built-in).
SERVER_FLAGS: dict[str, tuple[str, type, str]] = {
    "--host": ("host", str, "address every listener binds (default 127.0.0.1)"),
    "--port": ("port", int, "target app port (0: pick a free one)"),
    "--workers": ("workers", int, "server worker processes W (default: CPU count)"),
    "--worker-class": ("worker_class", str, "uvicorn-worker | gunicorn-asgi | uvicorn"),
    "--threadpool": ("threadpool_tokens", int, "threadpool tokens T per worker (default 40)"),
    "--db-pool": ("db_pool_size", int, "database pool size P per worker (default 10)"),
    "--upstream-latency": ("upstream_latency_ms", int, "upstream service default latency in ms"),
}


def add_server_flags(p: argparse.ArgumentParser) -> None:
    for flag, (_, kind, help_text) in SERVER_FLAGS.items():
        p.add_argument(flag, type=kind, default=None, help=help_text)
    p.add_argument("--no-db", action="store_true", help="run without PostgreSQL (db routes answer 503)")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for flag, (field, _, _) in SERVER_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            overrides[field] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise UserError(one_line(exc)) from None


def one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = ".".join(str(x) for x in err["loc"]) or "settings"
        parts.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "invalid setting: " + "; ".join(parts)


def warn_if_exposed(settings: Settings) -> None:
    if not settings.is_loopback:
        console.print(f"[yellow]warning:[/] listening on {settings.host}, reachable from other machines; "
                      "the target app has no authentication")


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    warn_if_exposed(settings)
    console.print("starting the target stack ...")
    with Stack(settings, with_db=not args.no_db) as stack:
        urls = stack.describe()
        console.print(f"[green]target[/]   {urls['target']}  (W={settings.workers}, "
                      f"{settings.worker_class}, T={settings.threadpool_tokens})")
        console.print(f"[green]upstream[/] {urls['upstream']}")
        console.print(f"[green]database[/] {urls['database'] or 'disabled'}")
        console.print(f"styles: {urls['target']}/styles   telemetry: {urls['target']}/telemetry")
        console.print("Ctrl-C stops everything.")
        print(urls["target"], flush=True)
        while all(m.alive() for m in stack.processes):
            time.sleep(0.5)
        dead = [m for m in stack.processes if not m.alive()]
        raise UserError(f"{dead[0].name} exited unexpectedly (code {dead[0].proc.returncode})")


def cmd_styles(_: argparse.Namespace) -> int:
    for s in catalogue.STYLES:
        print(f"{s.id:32} {s.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="routebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the target stack in the foreground and print its URLs")
    add_server_flags(serve)
    serve.set_defaults(func=cmd_serve)
    styles = sub.add_parser("styles", help="list the route-style catalogue")
    styles.set_defaults(func=cmd_styles)
    return parser


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args) or 0
    except (UserError, StackError) as exc:
        console.print(f"[red]routebench: error:[/] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted; everything started was stopped")
        return 130


if __name__ == "__main__":
    sys.exit(main())
