"""How command results are printed: tables and status lines for people, JSON for tools."""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from typing import Any

from imss_updater import overview
from imss_updater.daemon.schedule import schedule_for
from imss_updater.database.db import Database, RunStatus
from imss_updater.run import fleet_member, services
from imss_updater.run.updater import ComponentReport
from imss_updater.settings import Settings, SettingsError, load


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
        if report.signed_before:
            flags.append("signed before: unsigned refused")
        if report.last_success_at is not None:
            age = datetime.datetime.now(datetime.UTC) - report.last_success_at
            flags.append(f"{'stale, ' if report.stale else ''}last success {overview.age_words(age)} ago")
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
        f"scan service:   {services['scan_state']} (last restart: {services['scan'] or 'none yet'})",
        f"policy service: {services['policy_state']} (last restart: {services['policy'] or 'none yet'})",
        f"download lock: {'held by PID ' + str(holder) if holder else 'free'}",
        f"updater: {daemon_text(payload['daemon'])}",
        f"schedule: {payload['daemon']['schedule'] or 'unknown (settings invalid)'}",
        f"next scheduled run: {next_run_text(payload['daemon'])}",
        *[f"license {entry['name']}: {license_text(entry)}" for entry in payload["licenses"]],
        *([f"settings problem: {payload['daemon']['settings_problem']}"]
          if payload["daemon"]["settings_problem"] else []),
        *[f"settings problem: {problem}" for problem in payload["settings_problems"]
          if problem not in (payload["daemon"]["settings_problem"] or "")],
        *([f"update source (fleet): {payload['fleet']['text']}"] if payload.get("fleet") else []),
    ])


def fleet_source(database: Database, settings: Settings | None) -> dict[str, Any] | None:
    """Where this node takes its updates in a fleet (None outside one)."""
    source, enabled = fleet_member.source_of(database, settings)
    text = fleet_member.source_line(source, enabled=enabled)
    if text is None:
        return None
    return {"source_mode": source.mode, "mirror_url": source.mirror_url,
            "mirror_unreachable_since": iso(source.unreachable_since), "text": text}


def settings_or_none(database: Database) -> Settings | None:
    """Return the settings, or None while they are invalid (``status`` says which rows)."""
    try:
        return load(database.settings_rows(), [component.id for component in database.catalog()])
    except SettingsError:
        return None  # unknown: show what the daemon planned


def service_states(settings: Settings | None) -> dict[str, Any]:
    """Run the services' status commands: ``scan_running`` / ``policy_running`` are True,
    False or None (unknown), ``*_state`` says it in words."""
    states: dict[str, Any] = {}
    for name in ("scan", "policy"):
        if settings is None:
            state = services.ServiceState(None, "the settings are invalid")
        else:
            state = services.probe(settings.scan_status if name == "scan" else settings.policy_status)
        states[f"{name}_running"] = state.running
        states[f"{name}_state"] = state.word
    return states


def daemon_alive(status: RunStatus) -> bool:
    return overview.daemon_alive(status.daemon_heartbeat, datetime.datetime.now(datetime.UTC))


def daemon_text(daemon: dict[str, Any]) -> str:
    if daemon["alive"]:
        return f"running (PID {daemon['pid']}, last heartbeat {daemon['heartbeat']})"
    return f"the updater is not running (last heartbeat {daemon['heartbeat'] or 'never'})"


def schedule_words(settings: Settings | None) -> str | None:
    """The schedule in words, its time in the gateway's local time zone (named)."""
    if settings is None:
        return None
    schedule = schedule_for(settings)
    if schedule is None:
        return "off"
    zone = datetime.datetime.now().astimezone().strftime("%Z")
    local = "" if schedule.frequency in ("15min", "hourly") else f" (gateway local time, {zone})"
    return schedule.describe() + local


def license_states(settings: Settings | None) -> list[dict[str, Any]]:
    if settings is None:
        return []
    return [
        {"name": state.name, "expiry": state.expiry.isoformat() if state.expiry else None,
         "days_left": state.days_left, "state": state.state}
        for state in overview.licenses(settings.licenses, datetime.date.today())
    ]


def license_text(entry: dict[str, Any]) -> str:
    if entry["state"] == "inactive":
        return "not activated"
    if entry["state"] == "expired":
        return f"expired on {entry['expiry']}"
    warning = " (WARNING: renew it)" if entry["state"] == "expiring" else ""
    return f"valid until {entry['expiry']}, {entry['days_left']} days left{warning}"


def next_run_text(daemon: dict[str, Any]) -> str:
    if daemon["scheduled_update"] is False:
        return "scheduled updates are off (Update/ScheduledUpdate=no)"
    if not daemon["alive"] or not daemon["next_run"]:
        return "not planned (is the daemon running?)"
    return str(daemon["next_run"])


def emit(arguments: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if arguments.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        print(text)
