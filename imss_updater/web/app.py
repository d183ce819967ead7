"""The Flask application factory: the status page and its administration pages.

A request for a host name the console does not answer to is refused first (``hosts``).
Every route needs a logged-on administrator except ``/login``, ``/lang``, ``/healthz``,
``/metrics`` and static files; every POST needs the session's CSRF token; GET never
changes anything. Templates and static files live in the repository's top-level ``web/``.
"""

from __future__ import annotations

import importlib.resources
import logging
from functools import partial
from pathlib import Path

from flask import Flask, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import Babel
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from imss_updater import i18n
from imss_updater.database.db import Database, DatabaseError
from imss_updater.store.spool import EventSpool
from imss_updater.web import (
    accounts,
    auth,
    diagnose,
    fleet,
    history,
    imports,
    logs,
    ops,
    settings_pages,
    status,
)
from imss_updater.web.context import Console, WebConfig, _, console, flashed_text, language, when
from imss_updater.web.hosts import HostPolicy, host_name
from imss_updater.web.jobs import JobRunner
from imss_updater.web.labels import label
from imss_updater.web.markup import code_spans
from imss_updater.web.pool import DatabasePool
from imss_updater.web.uploads import ConsoleRequest

log = logging.getLogger(__name__)

# Templates and static files are package data (found the same way in a wheel and a checkout).
WEB_DIR = Path(str(importlib.resources.files("imss_updater.web")))
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.switch_language", "ops.healthz", "ops.metrics", "static"})
MAX_BODY_BYTES = 256 * 1024  # the largest form (notifications, all templates) is ~20 KB
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_app(config: WebConfig) -> Flask:
    """Given the daemon's WebConfig, return the console's Flask application."""
    app = Flask(
        __name__,
        template_folder=str(WEB_DIR / "templates"),
        static_folder=str(WEB_DIR / "static"),
        static_url_path="/static",
    )
    app.request_class = ConsoleRequest  # the import form's files go to the state directory
    app.config.update(
        SECRET_KEY=config.secret_key,
        SESSION_COOKIE_NAME="imss_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # The cookie's own expiry; the session ends server-side at accounts.SESSION_LIFETIME.
        PERMANENT_SESSION_LIFETIME=accounts.SESSION_LIFETIME,
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_AS_ASCII=False,
    )
    pool = DatabasePool(config.dsn, connect=partial(Database, node=config.node))
    app.extensions["imss_console"] = Console(
        config=config,
        pool=pool,
        runner=JobRunner(config.dsn, config.root, config.metrics,
                         spool=EventSpool(config.state) if config.state else None, node=config.node),
        hosts=HostPolicy(config.host, pool),
    )
    for blueprint in (auth.blueprint, status.blueprint, logs.blueprint, settings_pages.blueprint,
                      ops.blueprint, history.blueprint, diagnose.blueprint, imports.blueprint,
                      fleet.blueprint):
        app.register_blueprint(blueprint)
    app.before_request(_check_host)  # first: nothing else runs for a foreign host name
    app.before_request(_guard)
    app.after_request(_headers)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseError, _database_error)
    # One catalog for pages and the rest (imss_updater/i18n.py); `_`, `gettext` and `ngettext`
    # in templates come from Flask-Babel, in the request's language (session, then browser).
    i18n.ensure_compiled()
    Babel(app, locale_selector=language, default_translation_directories=str(i18n.TRANSLATIONS))
    app.jinja_env.globals.update(
        label=label, csrf_token=auth.csrf_token, lang=language, when=when, flashed_text=flashed_text,
        show_fleet=fleet.show_fleet,
    )
    app.jinja_env.filters["code_spans"] = code_spans
    return app


def _check_host() -> ResponseReturnValue | None:
    """Refuse a request whose Host header is not a name the console answers to."""
    header = request.headers.get("Host", "")
    name = host_name(header)
    if name is not None and console().hosts.allows(name):
        return None
    log.warning("refused %s %s: host name %r is not allowed (Web/AllowedHosts)",
                request.method, request.path, header[:100])
    return _error_page(400, _("This console does not answer to the name %(host)s. Use the name of IMSS_WEB, "
                              "localhost or 127.0.0.1, or add the name to Web/AllowedHosts.",
                              host=header[:100] or "(none)"))


def _guard() -> ResponseReturnValue | None:
    """Refuse a POST without the CSRF token, and any private route without a log-on."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and not auth.csrf_valid():
        log.warning("refused %s %s: bad or missing CSRF token", request.method, request.path)
        return _error_page(400, _("The form has expired or did not come from this console. Reload the page "
                                  "and try again."))
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    with console().pool.connection() as database:
        if auth.logged_in(database):
            return None
    if request.path.startswith("/jobs/"):
        return jsonify({"error": "not logged on"}), 401
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return _error_page(401, _("Please log on."))


def _headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype in ("text/html", "application/json"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(code: int, text: str) -> tuple[str, int]:
    return render_template("error.html", code=code, text=text), code


def _http_error(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    if code == 404:
        return _error_page(404, _("Page not found."))
    if code == 405:
        return _error_page(405, _("This action cannot be done with this request method."))
    if code == 400:
        return _error_page(400, _("Bad request: %(reason)s", reason=error.description or ""))
    return _error_page(code, error.description or error.name)


def _database_error(error: DatabaseError) -> ResponseReturnValue:
    log.error("%s", error)
    return _error_page(503, _("The database cannot be reached: %(reason)s", reason=str(error)))
