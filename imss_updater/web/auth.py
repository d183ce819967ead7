"""Log-on, log-off, the language switch, CSRF tokens and the administrator password.

The password hash (werkzeug scrypt) is the ``tb_global_setting`` row ``Admin/PasswordHash``;
there is no default password. A session carries a fingerprint of that hash, so setting a
new password ends every session. Failed log-ons are recorded per address and, after
``MAX_LOGIN_FAILURES`` within ``LOGIN_WINDOW``, refused until the window has passed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.security import check_password_hash, generate_password_hash

from imss_updater.database.db import Database
from imss_updater.web import queries
from imss_updater.web.context import console, notify
from imss_updater.web.i18n import LANGUAGES

log = logging.getLogger(__name__)

PASSWORD_SECTION = ("Admin", "PasswordHash")
MIN_PASSWORD_LENGTH = 8
SET_PASSWORD_COMMAND = "imss-updater admin set-password"  # noqa: S105 - a command, not a secret

blueprint = Blueprint("auth", __name__)


def set_admin_password(database: Database, password: str) -> None:
    """Store a hash of ``password`` as the administrator's password (ends all sessions).

    Raise ValueError if the password is shorter than MIN_PASSWORD_LENGTH characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    database.set_setting(*PASSWORD_SECTION, generate_password_hash(password))
    log.info("administrator password set")


def fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


def password_hash(database: Database) -> str | None:
    value = database.get_setting(*PASSWORD_SECTION)
    return value or None


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_valid() -> bool:
    """Return True when the request carries this session's CSRF token (form or header)."""
    expected = session.get("csrf")
    given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


def logged_in(database: Database) -> bool:
    """Return True when the session belongs to the administrator of the current password."""
    marker = session.get("admin")
    if not isinstance(marker, str):
        return False
    current = password_hash(database)
    return current is not None and hmac.compare_digest(marker, fingerprint(current))


def _safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target after log-on."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("status.page")


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    with console().pool.connection() as database:
        stored = password_hash(database)
        if request.method == "GET":
            return render_template("login.html", no_password=stored is None,
                                   command=SET_PASSWORD_COMMAND, next=request.args.get("next", ""))
        address = request.remote_addr or "unknown"
        if queries.login_throttled(database, address):
            log.warning("log-on refused for %s: too many failures", address)
            return render_template(
                "login.html", no_password=stored is None, command=SET_PASSWORD_COMMAND,
                error=("login.throttled", {"minutes": int(queries.LOGIN_WINDOW.total_seconds() // 60)}),
                next=request.form.get("next", ""),
            ), 429
        password = request.form.get("password", "")
        if stored is None or not check_password_hash(stored, password):
            queries.record_login(database, address, False)
            log.warning("failed log-on from %s", address)
            return render_template(
                "login.html", no_password=stored is None, command=SET_PASSWORD_COMMAND,
                error=("login.failed", {}), next=request.form.get("next", ""),
            ), 401
        queries.record_login(database, address, True)
    language = session.get("lang")
    session.clear()  # a new session on log-on: no fixation of a token planted before
    if language in LANGUAGES:
        session["lang"] = language
    session.permanent = True
    session["admin"] = fingerprint(stored)
    csrf_token()
    log.info("administrator logged on from %s", address)
    return redirect(_safe_next(request.form.get("next")))


@blueprint.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    language = session.get("lang")
    session.clear()
    if language in LANGUAGES:
        session["lang"] = language
    notify("logout.done")
    return redirect(url_for("auth.login"))


@blueprint.route("/lang", methods=["POST"])
def switch_language() -> ResponseReturnValue:
    chosen = request.form.get("lang", "")
    if chosen not in LANGUAGES:
        abort(400, description="unknown language")
    session["lang"] = chosen
    return redirect(_safe_next(request.form.get("next")))
