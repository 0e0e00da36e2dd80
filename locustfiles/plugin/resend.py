"""Lost requests are failures: geventhttpclient silently resends an idempotent request whose
connection died (a server worker killed under it), which would turn a lost request into a slow
one. That resend is off unless ``--rb-retry-lost``.
"""

from __future__ import annotations

from collections.abc import Callable

import geventhttpclient.client

from locustfiles.plugin.state import ProcessState


def install(process: ProcessState) -> None:
    """Replace geventhttpclient's test for resending (GET: yes) by one that asks the options first.
    Done once, before any user sends (Locust's ``init``); the options are read at each decision, so
    a test's form can change them."""
    client = geventhttpclient.client
    theirs: Callable[[str], bool] = client._may_retry_after_send_error
    if getattr(theirs, "routebench", False):
        return

    def may_resend(method: str) -> bool:
        return process.options.retry_lost and theirs(method)

    may_resend.routebench = True  # type: ignore[attr-defined]
    client._may_retry_after_send_error = may_resend
