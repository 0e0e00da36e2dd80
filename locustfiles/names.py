"""Locust user-class names for catalogue ids, without importing Locust (which patches with gevent)."""

from __future__ import annotations


def user_class_name(style_id: str) -> str:
    """``sleep/async-await`` -> ``SleepAsyncAwait``."""
    return "".join(part.capitalize() for part in style_id.replace("/", "-").split("-"))
