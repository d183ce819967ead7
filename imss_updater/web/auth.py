"""Log-on, log-off, the language switch, CSRF tokens and the administrator password.

The password hash (werkzeug scrypt) is the ``tb_global_setting`` row ``Admin/PasswordHash``;
there is no default password. Sessions are recorded server-side (``accounts``): the session
cookie carries a random token whose hash is the session's id, log-off deletes the session,
a password change ends every session, and a session ends 8 hours after log-on whatever
the activity. Failed log-ons slow the next attempt down per account (``accounts``), never
lock the administrator out, and ``imss-updater admin set-password`` lifts the delay.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from itsdangerous import BadSignature, URLSafeSerializer
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from imss_updater.database.db import Database
from imss_updater.i18n import LANGUAGES, N_, Reason
from imss_updater.web import accounts, queries
from imss_updater.web.context import console, notify

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
SET_PASSWORD_COMMAND = "imss-updater admin set-password"  # noqa: S105 - a command, not a secret
DEVICE_COOKIE = "imss_device"
DEVICE_DAYS = 180

blueprint = Blueprint("auth", __name__)


def set_admin_password(database: Database, password: str) -> None:
    """Store a hash of ``password`` as the administrator's password, end every session and
    lift every log-on delay.

    Raise ValueError if the password is shorter than MIN_PASSWORD_LENGTH characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(Reason(N_("the password must have at least %(count)s characters"),
                                {"count": MIN_PASSWORD_LENGTH}))
    accounts.reset(database, generate_password_hash(password))
    log.info("administrator password set; every session ended, log-on delay lifted")


def password_hash(database: Database) -> str | None:
    value = database.get_setting(*accounts.PASSWORD_SECTION)
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
    """Return True when the session cookie names a live server-side session."""
    token = session.get("sid")
    return isinstance(token, str) and accounts.session_valid(database, token)


def _safe_next(target: str | None) -> str:
    """Only a local path may be a redirect target after log-on."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("status.page")


# -- the device cookie: a browser that logged on before has its own log-on delay -------------------

def _devices() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key or b"", salt="imss-device")


def _known_device(database: Database) -> str | None:
    """Return the id of this browser when it carries a device cookie of the current
    password generation, else None."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    try:
        data = _devices().loads(cookie)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("d"), str):
        return None
    return data["d"] if data.get("g") == accounts.generation(database) else None


def _remember_device(response: Response, database: Database, device: str | None) -> None:
    value = _devices().dumps({"d": device or secrets.token_urlsafe(16), "g": accounts.generation(database)})
    response.set_cookie(DEVICE_COOKIE, value, max_age=DEVICE_DAYS * 86400, httponly=True, samesite="Strict",
                        secure=request.is_secure, path=url_for("auth.login"))


# -- views --------------------------------------------------------------------------------------

def _login_page(code: int, stored: str | None, error: tuple[str, dict[str, object]] | None = None,
                wait: int = 0) -> ResponseReturnValue:
    page = render_template("login.html", no_password=stored is None, command=SET_PASSWORD_COMMAND,
                           error=error, wait=wait,
                           next=request.form.get("next", "") if request.method == "POST"
                           else request.args.get("next", ""))
    headers = {"Retry-After": str(wait)} if code == 429 else {}
    return page, code, headers


@blueprint.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    with console().pool.connection() as database:
        stored = password_hash(database)
        if request.method == "GET":
            return _login_page(200, stored)
        address = request.remote_addr or "unknown"
        device = _known_device(database)
        key = accounts.device_key(device) if device else accounts.ACCOUNT
        claim = accounts.claim_attempt(database, key)
        if claim.wait:
            log.warning("log-on from %s refused: %s failed attempts, next one allowed in %s s",
                        address, claim.failures, claim.wait)
            return _login_page(429, stored, (N_("Too many failed log-on attempts. Try again in %(seconds)s "
                                                "s."), {"seconds": claim.wait}), claim.wait)
        if stored is None or not check_password_hash(stored, request.form.get("password", "")):
            queries.record_login(database, address, False)
            wait = accounts.delay_after(claim.failures)
            log.warning("failed log-on from %s (%s failed attempts in a row)", address, claim.failures)
            return _login_page(401, stored, (N_("Incorrect password."), {}), wait)
        accounts.attempt_succeeded(database, key)
        queries.record_login(database, address, True)
        token = accounts.open_session(database, address)
        language = session.get("lang")
        session.clear()  # a new session on log-on: no fixation of a token planted before
        if language in LANGUAGES:
            session["lang"] = language
        session.permanent = True
        session["sid"] = token
        csrf_token()
        console().fleet_nav.refresh(database)  # the navigation's Fleet link, read once per log-on
        log.info("administrator logged on from %s", address)
        response = redirect(_safe_next(request.form.get("next")))
        _remember_device(response, database, device)
    return response


@blueprint.route("/logout", methods=["POST"])
def logout() -> ResponseReturnValue:
    token = session.get("sid")
    if isinstance(token, str):
        with console().pool.connection() as database:
            accounts.end_session(database, token)
    language = session.get("lang")
    session.clear()
    if language in LANGUAGES:
        session["lang"] = language
    notify(N_("You have logged off."))
    log.info("administrator logged off")
    return redirect(url_for("auth.login"))


@blueprint.route("/lang", methods=["POST"])
def switch_language() -> ResponseReturnValue:
    chosen = request.form.get("lang", "")
    if chosen not in LANGUAGES:
        abort(400, description="unknown language")
    session["lang"] = chosen
    return redirect(_safe_next(request.form.get("next")))
