"""Children that die with their parent: nothing this project starts outlives what started it."""

from __future__ import annotations

import ctypes

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux).

    Used as ``preexec_fn`` for the servers the launcher starts and as the process pool's
    ``initializer`` (with its argument) for the pool's children."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
