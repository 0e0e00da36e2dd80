"""A password on the web UI: Locust's ``--web-login`` with a password check (any user name).

The password is ``ROUTEBENCH_UI_PASSWORD`` (target_app.settings), for a web UI bound beyond this
machine; Locust's login page posts to our ``/rb_login``, compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from locust.env import Environment


class _UiUser:
    """The one web-UI user, for Flask-Login."""

    is_authenticated = is_active = True
    is_anonymous = False

    def __init__(self, name: str) -> None:
        self.name = name

    def get_id(self) -> str:
        return self.name


def password() -> str:
    """The web UI's password, or SystemExit: ``--web-login`` needs one."""
    from target_app.settings import Settings  # pydantic: only a master with --web-login needs it

    secret = Settings().ui_password
    if secret is None:
        raise SystemExit("--web-login needs ROUTEBENCH_UI_PASSWORD")
    return secret.get_secret_value()


def require_login(environment: Environment, password: str) -> None:
    """Locust's --web-login with a password check (ROUTEBENCH_UI_PASSWORD, any user name)."""
    from flask import Blueprint, redirect, request, session, url_for
    from flask_login import login_user

    web_ui = environment.web_ui
    assert web_ui is not None and web_ui.app is not None
    web_ui.app.secret_key = secrets.token_hex(32)  # sessions live as long as this master
    web_ui.login_manager.user_loader(_UiUser)
    # Locust's login page reads "title" though its AuthArgs type does not declare it.
    web_ui.auth_args = {"username_password_callback": "/rb_login", "title": "routebench"}  # type: ignore[typeddict-unknown-key]
    auth = Blueprint("rb_auth", __name__)

    @auth.route("/rb_login", methods=["POST"])
    def rb_login() -> Any:
        given = request.form.get("password", "")
        if hmac.compare_digest(given.encode(), password.encode()):
            login_user(_UiUser(request.form.get("username") or "user"))
            session.pop("auth_error", None)
            return redirect(url_for("locust.index"))
        session["auth_error"] = "Wrong password"
        return redirect(url_for("locust.login"))

    web_ui.app.register_blueprint(auth)
