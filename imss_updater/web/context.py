"""What every view needs: the config, the connection pool, the job runner, the language."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import flask_babel
from flask import current_app, flash, g, request, session

from imss_updater.i18n import DEFAULT_LANGUAGE, LANGUAGES, Reason, Value, format_moment
from imss_updater.run.services import ServiceCache
from imss_updater.web.fleet_nav import FleetNav
from imss_updater.web.hosts import HostPolicy
from imss_updater.web.jobs import JobRunner
from imss_updater.web.metrics import RunMetrics
from imss_updater.web.pool import DatabasePool
from imss_updater.web.uploads import UploadTickets


def _always_ok() -> bool:
    return True


@dataclass(frozen=True)
class WebConfig:
    """What the daemon hands to ``create_app``.

    ``dsn``: PostgreSQL DSN; ``root``: install root; ``secret_key``: session signing key
    (persisted by the daemon); ``scheduler_ok``: whether the scheduler runs (``/healthz``);
    ``metrics``: counters the daemon may also feed from its scheduled runs; ``host``: the
    host of IMSS_WEB (the console answers to it, see ``hosts``); ``state``: the state
    directory, whose event spool keeps the failures of console runs the database refused;
    ``node``: this gateway's name in the fleet (None: the host name, SPEC 7).
    """

    dsn: str
    root: Path
    secret_key: bytes
    scheduler_ok: Callable[[], bool] = _always_ok
    metrics: RunMetrics = field(default_factory=RunMetrics)
    host: str = "127.0.0.1"
    state: Path | None = None
    node: str | None = None


@dataclass
class Console:
    config: WebConfig
    pool: DatabasePool
    runner: JobRunner
    hosts: HostPolicy
    services: ServiceCache = field(default_factory=ServiceCache)  # status commands, ~30 s
    uploads: UploadTickets = field(default_factory=UploadTickets)  # import forms shown
    fleet_nav: FleetNav = field(default_factory=FleetNav)  # the Fleet link, ~60 s


def console() -> Console:
    """Return the Console of the running app."""
    return cast(Console, current_app.extensions["imss_console"])


def language() -> str:
    """Return the request's language: the switch's choice, else the browser's preference
    (Flask-Babel's locale selector, see web/app.py)."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    if "lang" not in g:
        g.lang = request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)
    return str(g.lang)


def _(msgid: str, **values: object) -> str:
    """Return ``msgid`` in the request's language (Flask-Babel), ``%(name)s`` filled in."""
    return str(flask_babel.gettext(msgid, **values))


def ngettext(singular: str, plural: str, num: int, **values: object) -> str:
    """Return the plural form for ``num`` in the request's language (``%(num)d`` is ``num``)."""
    return str(flask_babel.ngettext(singular, plural, num, **values))


def notify(message: str | Reason, category: str = "info", **values: Value | Reason) -> None:
    """Flash ``message`` (a msgid, its ``values`` filled in), translated when shown so a
    language switch applies; a value that is a Reason is translated too."""
    reason = message if isinstance(message, Reason) else Reason(message, values)
    flash(json.dumps(reason.to_json()), category)


def flashed_text(message: str) -> str:
    try:
        data = json.loads(message)
    except ValueError:
        return message
    return Reason.from_json(data).render(language())


def when(moment: datetime.datetime | None) -> str:
    """Format a timestamp in the gateway's local time with its zone (Babel, the page's
    language), or "Never"."""
    if moment is None:
        return _("Never")
    return format_moment(moment, language())
