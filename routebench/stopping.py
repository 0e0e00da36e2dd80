"""How Ctrl-C and SIGTERM stop a run: both become KeyboardInterrupt, and the request is remembered.

Python runs a signal handler between bytecodes, wherever the main thread is. Where that is inside a
callback whose exceptions CPython only reports (the fork handlers ``subprocess`` runs in the parent,
finalizers), the KeyboardInterrupt is swallowed and the run would go on as if nothing was asked.
So the handler also remembers the request, and every loop that waits for something to start
calls :func:`check`, which raises it again: a stop is never lost, only delayed to the next wait.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

_requested: str | None = None


def install() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt now and at every later :func:`check`."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)
    sys.unraisablehook = _quiet_if_requested


def requested() -> str | None:
    """The signal's name once a stop was asked for."""
    return _requested


def check() -> None:
    """Raise the stop again if one was asked for (it may have been swallowed where it landed)."""
    if _requested is not None:
        raise KeyboardInterrupt(_requested)


def leave(code: int) -> NoReturn:
    """Exit with ``code`` after a handled stop, when run as ``python -m routebench.cli``.

    CPython 3.11 remembers a KeyboardInterrupt that passed through ``exec`` of a string (as
    dataclasses and pydantic do when they build classes) and, under ``-m``, ends the process by
    SIGINT at exit even though it was caught: the caller would see -2 instead of 130. Everything
    the run started is stopped and its files written by now; only the streams need flushing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _on_signal(signum: int, _frame: object) -> None:
    global _requested
    _requested = signal.Signals(signum).name
    raise KeyboardInterrupt(_requested)


def _quiet_if_requested(unraisable: Any) -> None:
    # A swallowed stop is raised again at the next check(): no "Exception ignored" traceback for it.
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and _requested is not None:
        return
    sys.__unraisablehook__(unraisable)
