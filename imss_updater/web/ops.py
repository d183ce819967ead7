"""Operations endpoints: ``/healthz`` (JSON) and ``/metrics`` (Prometheus text format,
built in ``web.prometheus``).

Both are open without a log-on (a monitoring system scrapes them; the console listens on
127.0.0.1 by default) and show no setting values and no reason texts (a reason may name
the source or the proxy), only states, versions and run results.
"""

from __future__ import annotations

import datetime
import logging

from flask import Blueprint, Response, current_app, jsonify
from flask.typing import ResponseReturnValue

from imss_updater.database.db import DatabaseError
from imss_updater.store import lock
from imss_updater.web import prometheus
from imss_updater.web.context import console

log = logging.getLogger(__name__)

blueprint = Blueprint("ops", __name__)


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@blueprint.route("/healthz")
def healthz() -> ResponseReturnValue:
    """States only, never a setting value or a reason text (it is open without a log-on):
    ``fail`` (503) when the database or the scheduler is down, ``degraded`` when the last
    run or check failed or the settings are invalid, else ``ok``."""
    context = console()
    database_ok = True
    settings_valid: bool | None = None
    last_run: dict[str, object] | None = None
    last_check: dict[str, object] | None = None
    try:
        with context.pool.connection() as connection:
            run = connection.run_status()
            settings_valid = prometheus.settings_valid(connection)  # unusable files count as invalid
        last_run = {"time": _iso(run.last_run_at), "kind": run.last_run_kind, "ok": run.last_run_ok}
        last_check = {"time": _iso(run.last_check_at), "ok": run.last_check_ok}
    except DatabaseError as error:
        log.warning("/healthz: %s", error)
        database_ok = False
    try:
        scheduler_ok = bool(context.config.scheduler_ok())
    except Exception as error:  # a broken probe is an unhealthy scheduler, not a crash
        log.warning("scheduler probe failed: %s", error)
        scheduler_ok = False
    failed = (last_run or {}).get("ok") is False or (last_check or {}).get("ok") is False
    if not (database_ok and scheduler_ok):
        state = "fail"
    elif failed or settings_valid is False:
        state = "degraded"
    else:
        state = "ok"
    body = {
        "status": state,
        "database": {"ok": database_ok},
        "scheduler": {"ok": scheduler_ok},
        "settings": {"valid": settings_valid},
        "last_run": last_run,
        "last_check": last_check,
        "lock": {"held": lock.lock_holder(context.config.root) is not None},
    }
    return jsonify(body), 503 if state == "fail" else 200


@blueprint.route("/metrics")
def metrics() -> ResponseReturnValue:
    """The Prometheus text exposition (``web.prometheus``; the README lists the names)."""
    body = prometheus.exposition(console(), current_app.extensions)
    return Response(body, content_type=prometheus.CONTENT_TYPE)
