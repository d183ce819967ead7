"""Operations endpoints: ``/healthz`` (JSON) and ``/metrics`` (Prometheus text format).

Both are open without a log-on (a monitoring system scrapes them; the console listens on
127.0.0.1 by default) and show no setting values and no reason texts (a reason may name
the source or the proxy), only states, versions and run results.
"""

from __future__ import annotations

import datetime
import logging

from flask import Blueprint, Response, jsonify
from flask.typing import ResponseReturnValue

from imss_updater import settings_check
from imss_updater.database.db import Database, DatabaseError
from imss_updater.store import lock
from imss_updater.web import queries
from imss_updater.web.context import console

log = logging.getLogger(__name__)

blueprint = Blueprint("ops", __name__)

NOTIFICATION_CHANNELS = ("mail", "trap")


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
            settings_valid = _settings_ok(connection)  # unusable files count as invalid
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


def _settings_ok(database: Database) -> bool:
    return not settings_check.problems(database.settings_rows(), [c.id for c in database.catalog()])


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _seconds(moment: datetime.datetime | None) -> str | None:
    return f"{moment.timestamp():.3f}" if moment else None


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: object, **labels: str) -> None:
        if value is None:
            return
        shown = ",".join(f'{key}="{_label(text)}"' for key, text in labels.items())
        self.lines.append(f"{name}{{{shown}}} {value}" if shown else f"{name} {value}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@blueprint.route("/metrics")
def metrics() -> ResponseReturnValue:
    context = console()
    with context.pool.connection() as database:
        catalog = database.catalog()
        states = database.component_states()
        run = database.run_status()
        failures = queries.failure_counts(database)
        notification_failures = queries.notification_failure_counts(database)
        settings_ok = _settings_ok(database)
    out = _Exposition()
    out.family("imss_component_info", "gauge",
               "Installed and available version per component (available: Unknown or 0.0 too).")
    for component in catalog:
        state = states.get(component.id)
        current = state.current_version if state and state.current_version else ""
        if state is None or state.available_status == "unknown":
            available = "Unknown"
        elif state.available_status == "absent":
            available = "0.0"
        else:
            available = state.available_version or ""
        out.sample("imss_component_info", 1, component=component.id, current=current, available=available)
    out.family("imss_component_last_success_timestamp_seconds", "gauge",
               "Time of the last successful update of the component.")
    for component in catalog:
        state = states.get(component.id)
        out.sample("imss_component_last_success_timestamp_seconds",
                   _seconds(state.last_success_at if state else None), component=component.id)
    out.family("imss_update_failures_total", "counter", "Failed update or rollback events per component.")
    for component in catalog:
        out.sample("imss_update_failures_total", failures.get(component.id, 0), component=component.id)
    out.family("imss_notification_failures_total", "counter",
               "Failed notification delivery attempts per channel; outcome retry: tried again later,"
               " failed: given up.")
    for channel in NOTIFICATION_CHANNELS:
        for outcome in ("retry", "failed"):
            out.sample("imss_notification_failures_total", notification_failures.get((channel, outcome), 0),
                       channel=channel, outcome=outcome)
    out.family("imss_last_check_timestamp_seconds", "gauge", "Time of the last check of the sources.")
    out.sample("imss_last_check_timestamp_seconds", _seconds(run.last_check_at))
    out.family("imss_last_check_success", "gauge", "1 if the last check reached every source.")
    out.sample("imss_last_check_success", None if run.last_check_ok is None else int(run.last_check_ok))
    out.family("imss_last_run_timestamp_seconds", "gauge", "Time of the last update or rollback run.")
    out.sample("imss_last_run_timestamp_seconds", _seconds(run.last_run_at))
    out.family("imss_last_run_success", "gauge", "1 if the last run succeeded.")
    out.sample("imss_last_run_success", None if run.last_run_ok is None else int(run.last_run_ok))
    out.family("imss_settings_valid", "gauge",
               "1 if the settings are valid and usable (the files they name are readable PEM).")
    out.sample("imss_settings_valid", int(settings_ok))
    counters = context.config.metrics
    with counters.lock:
        check_seconds = counters.last_check_seconds
        downloaded = counters.bytes_downloaded
    out.family("imss_check_duration_seconds", "gauge", "Duration of the last check run by this process.")
    out.sample("imss_check_duration_seconds", None if check_seconds is None else f"{check_seconds:.3f}")
    out.family("imss_downloaded_bytes_total", "counter", "Bytes of components downloaded by this process.")
    out.sample("imss_downloaded_bytes_total", downloaded)
    out.family("imss_download_lock_held", "gauge", "1 while a process holds the download lock.")
    out.sample("imss_download_lock_held", int(lock.lock_holder(context.config.root) is not None))
    return Response(out.text(), content_type="text/plain; version=0.0.4; charset=utf-8")
