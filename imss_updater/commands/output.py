"""How command results are printed: tables and status lines for people, JSON for tools."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from typing import Any

from imss_updater.database.db import Database
from imss_updater.run.updater import ComponentReport
from imss_updater.settings import SettingsError, load


def check_json(database: Database) -> dict[str, Any]:
    status = database.run_status()
    return {"time": iso(status.last_check_at), "ok": status.last_check_ok, "result": status.last_check_text}


def iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def table(reports: Sequence[ComponentReport]) -> str:
    header = f"{'ID':<22} {'NAME':<31} {'CURRENT':<12} {'AVAILABLE':<12} UPDATE"
    rows = [header]
    for report in reports:
        available = report.available if report.available is not None else "Unknown"
        flags = []
        if not report.licensed:
            flags.append("unlicensed")
        if not report.enabled:
            flags.append("disabled")
        if not report.scheduled:
            flags.append("not scheduled")
        if report.unsigned:
            flags.append("unsigned")
        if report.available is not None and not report.authenticated:
            flags.append("versions not authenticated")
        rows.append(
            f"{report.id:<22} {report.name:<31} {report.current or '-':<12} {available:<12} "
            f"{'yes' if report.update_available else 'no'}"
            + (f"  ({', '.join(flags)})" if flags else "")
        )
    return "\n".join(rows)


def status_lines(payload: dict[str, Any]) -> str:
    check = payload["last_check"]
    run = payload["last_run"]
    services = payload["services"]
    holder = payload["lock_holder"]
    return "\n".join([
        f"last check: {check['time'] or 'never'} ({check['result'] or '-'})",
        f"last run:   {run['time'] or 'never'} {run['kind'] or ''} ({run['result'] or '-'})",
        f"services:   scan {services['scan'] or 'not restarted yet'}; "
        f"policy {services['policy'] or 'not restarted yet'}",
        f"download lock: {'held by PID ' + str(holder) if holder else 'free'}",
        f"next scheduled run: {next_run_text(payload['daemon'])}",
        *([f"settings problem: {payload['daemon']['settings_problem']}"]
          if payload["daemon"]["settings_problem"] else []),
        *[f"settings problem: {problem}" for problem in payload["settings_problems"]
          if problem not in (payload["daemon"]["settings_problem"] or "")],
    ])


def scheduled_update(database: Database) -> bool | None:
    """Return whether Update/ScheduledUpdate is on, or None while the settings are invalid."""
    try:
        settings = load(database.settings_rows(), [component.id for component in database.catalog()])
    except SettingsError:
        return None  # unknown: show what the daemon planned
    return settings.scheduled_update


def next_run_text(daemon: dict[str, Any]) -> str:
    if daemon["scheduled_update"] is False:
        return "scheduled updates are off (Update/ScheduledUpdate=no)"
    return str(daemon["next_run"] or "not planned (is the daemon running?)")


def emit(arguments: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if arguments.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        print(text)
