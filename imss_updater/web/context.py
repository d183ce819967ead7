"""What every view needs: the config, the connection pool, the job runner, the language."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from flask import current_app, flash, g, request, session

from imss_updater.run.services import ServiceCache
from imss_updater.web.hosts import HostPolicy
from imss_updater.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, translate
from imss_updater.web.jobs import JobRunner
from imss_updater.web.metrics import RunMetrics
from imss_updater.web.pool import DatabasePool


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


def console() -> Console:
    """Return the Console of the running app."""
    return cast(Console, current_app.extensions["imss_console"])


def language() -> str:
    """Return the request's language: the switch's choice, else the browser's preference."""
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    if "lang" not in g:
        g.lang = request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE)
    return str(g.lang)


def t(key: str, **values: object) -> str:
    """Translate ``key`` into the request's language."""
    return translate(language(), key, **values)


def notify(key: str, category: str = "info", **values: object) -> None:
    """Flash a message by key, translated when shown (so a language switch applies)."""
    flash(json.dumps({"key": key, "values": values}), category)


# Flashed values that are text keys themselves (translated when shown, like the message).
TRANSLATED_VALUES = ("job.kind.", "channel.")


def flashed_text(message: str) -> str:
    try:
        data = json.loads(message)
    except ValueError:
        return message
    values = {
        name: t(value) if isinstance(value, str) and value.startswith(TRANSLATED_VALUES) else value
        for name, value in data.get("values", {}).items()
    }
    return t(str(data["key"]), **values)


def when(moment: datetime.datetime | None) -> str:
    """Format a timestamp in the gateway's local time with its zone, or "Never"."""
    if moment is None:
        return t("status.never")
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
