"""The one renderer: a Jinja2 template and a context in, HTML out. Autoescaping is on, so anything
that came from a run (names, error messages, exception text) is shown as text, never as markup."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _num(value: Any, digits: int = 1) -> str:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "–"
    if f != f:  # NaN
        return "–"
    return f"{f:,.{digits}f}"


def _pct(value: Any) -> str:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "–"
    return "–" if f != f else f"{f:.0%}"


def _clock(value: Any) -> str:
    try:
        return time.strftime("%H:%M:%S UTC", time.gmtime(float(value)))
    except (TypeError, ValueError):
        return "–"


_env.filters["num"] = _num
_env.filters["clock"] = _clock
_env.filters["pct"] = _pct


def render(template: str, context: dict[str, Any]) -> str:
    return _env.get_template(template).render(**context)
