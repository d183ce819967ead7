"""How command results are printed: tables and status lines for people, JSON for tools."""

from __future__ import annotations

import argparse
import datetime
import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from imss_updater import i18n, overview
from imss_updater.daemon.schedule import schedule_for
from imss_updater.database.db import Database, RunStatus
from imss_updater.i18n import N_, Reason
from imss_updater.run import fleet_member, services
from imss_updater.run.updater import ComponentReport
from imss_updater.settings import Problem, Settings, SettingsError, load

_language = ["en"]  # the CLI's output language, set once by cli.main (--lang, else LANG)


LICENSE_NAMES = {"Antivirus": N_("Antivirus"), "Antispam": N_("Antispam")}
# tb_update_status.last_run_kind (English in --json), in words
RUN_KINDS = {"manual": N_("manual"), "scheduled": N_("scheduled"), "rollback": N_("rollback"),
             "import": N_("import")}


def use_language(language: str) -> None:
    _language[0] = language


def language() -> str:
    return _language[0]


def tr(msgid: str, **values: object) -> str:
    """Return ``msgid`` in the CLI's output language, ``%(name)s`` filled in."""
    return i18n.gettext(_language[0], msgid, **values)


def trn(singular: str, plural: str, count: int) -> str:
    """Return the form for ``count`` in the CLI's output language (``%(num)d`` is ``count``)."""
    return i18n.ngettext(_language[0], singular, plural, count)


EVENT_OUTCOMES = {"success": N_("success"), "failure": N_("failure")}


def event_words(kind: str, outcome: str) -> str:
    """An event's kind and outcome as ``logs`` shows them: the stored words (the values of
    ``--kind`` / ``--outcome``) in English, the catalog's in other languages; padded to columns."""
    if _language[0] == i18n.DEFAULT_LANGUAGE:
        return f"{kind:<9}  {outcome:<7}"
    kind_word = tr(RUN_KINDS[kind]) if kind in RUN_KINDS else kind
    outcome_word = tr(EVENT_OUTCOMES[outcome]) if outcome in EVENT_OUTCOMES else outcome
    return f"{_pad(kind_word, 9)}  {_pad(outcome_word, 7)}"


def _pad(text: str, width: int) -> str:
    """``text`` padded to ``width`` terminal columns (a CJK character takes two)."""
    return text + " " * max(0, width - _columns(text))


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in text)


def check_json(database: Database) -> dict[str, Any]:
    status = database.run_status()
    return {"time": iso(status.last_check_at), "ok": status.last_check_ok,
            "result": i18n.stored_text(status.last_check_text, "en") or None}


def iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def when(iso_moment: str | None) -> str:
    """An ``--json`` time (ISO 8601) as people read it: the gateway's local time in the
    CLI's language, with its zone ("" for none)."""
    if not iso_moment:
        return ""
    return i18n.format_moment(datetime.datetime.fromisoformat(iso_moment), _language[0])


def table(reports: Sequence[ComponentReport]) -> str:
    titles = tr("NAME"), tr("CURRENT"), tr("AVAILABLE"), tr("UPDATE")
    names = [report.name_ja if _language[0] == "ja" else report.name for report in reports]
    width = max([31, *(_columns(name) + 1 for name in names)])  # Japanese names are wider
    header = f"{'ID':<22} {_pad(titles[0], width)} {_pad(titles[1], 12)} {_pad(titles[2], 12)} {titles[3]}"
    yes, no = tr("yes"), tr("no")
    rows = [header]
    for report, name in zip(reports, names, strict=True):
        available = report.available if report.available is not None else tr("Unknown")
        flags = []
        if not report.licensed:
            flags.append(tr("unlicensed"))
        if not report.enabled:
            flags.append(tr("disabled"))
        if not report.scheduled:
            flags.append(tr("not scheduled"))
        if report.unsigned:
            flags.append(tr("unsigned"))
        if report.available is not None and not report.authenticated:
            flags.append(tr("versions not authenticated"))
        if report.signed_before:
            flags.append(tr("signed before: unsigned refused"))
        if report.last_success_at is not None:
            age = overview.age_words(datetime.datetime.now(datetime.UTC) - report.last_success_at)
            flags.append(tr("stale, last success %(age)s ago", age=age) if report.stale
                         else tr("last success %(age)s ago", age=age))
        rows.append(
            f"{report.id:<22} {_pad(name, width)} {report.current or '-':<12} {_pad(available, 12)} "
            f"{yes if report.update_available else no}"
            + (f"  ({', '.join(flags)})" if flags else "")
        )
    return "\n".join(rows)


def status_lines(payload: dict[str, Any], *, status: RunStatus, settings: Settings | None,
                 current_problems: Sequence[Problem], fleet_line: Reason | None,
                 service_now: dict[str, services.ServiceState]) -> str:
    """The ``status`` lines under the table, in the CLI's language (``payload`` is the
    ``--json`` object; the stored texts of ``status`` are rendered in the language here)."""
    run = payload["last_run"]
    stored = payload["services"]  # the stored restart columns
    holder = payload["lock_holder"]
    never = tr("never")
    kind = run["kind"] or ""
    problems = [problem_text(problem) for problem in current_problems]
    if not problems and status.settings_problem:  # what the daemon last saw (stored in English)
        problems = [i18n.stored_text(status.settings_problem, _language[0])]
    return "\n".join([
        tr("last check: %(time)s (%(result)s)", time=when(payload["last_check"]["time"]) or never,
           result=i18n.stored_text(status.last_check_text, _language[0]) or "-"),
        tr("last run:   %(time)s %(kind)s (%(result)s)", time=when(run["time"]),
           kind=tr(RUN_KINDS[kind]) if kind in RUN_KINDS else kind,
           result=i18n.stored_text(status.last_run_text, _language[0]) or "-")
        if run["time"] else tr("last run:   never"),
        tr("scan service:   %(state)s (last restart: %(restart)s)", state=service_text(service_now["scan"]),
           restart=restart_text(stored["scan"])),
        tr("policy service: %(state)s (last restart: %(restart)s)", state=service_text(service_now["policy"]),
           restart=restart_text(stored["policy"])),
        tr("download lock: held by PID %(pid)s", pid=holder) if holder else tr("download lock: free"),
        tr("updater: %(text)s", text=daemon_text(payload["daemon"])),
        tr("schedule: %(text)s", text=schedule_text(settings)),
        tr("next scheduled run: %(text)s", text=next_run_text(payload["daemon"])),
        *[tr("license %(name)s: %(text)s", name=tr(LICENSE_NAMES.get(entry["name"], entry["name"])),
             text=license_text(entry))
          for entry in payload["licenses"]],
        *[tr("settings problem: %(problem)s", problem=problem) for problem in problems],
        *([tr("update source (fleet): %(text)s", text=fleet_line.render(_language[0]))]
          if fleet_line is not None else []),
    ])


def problem_text(problem: Problem) -> str:
    """A settings problem in the CLI's language: its row, then why (SPEC names the rows);
    in English exactly ``str(problem)``, as the logs and events say it."""
    if _language[0] == i18n.DEFAULT_LANGUAGE:
        return str(problem)
    if problem.cause is not None:
        why = tr("not accepted, it would leave %(cause)s", cause=problem_text(problem.cause))
    elif problem.key is not None:
        why = tr(problem.key, **dict(problem.values))
    elif problem.reason is not None:
        why = problem.reason.render(_language[0])
    else:
        why = problem.why
    return tr("%(row)s: %(why)s", row=f"{problem.section}/{problem.name}", why=why)


def settings_error_text(error: SettingsError) -> str:
    """``invalid settings: <row>: <why>; ...`` in the CLI's language."""
    return tr("invalid settings: %(problems)s", problems="; ".join(problem_text(p) for p in error.problems))


def service_text(state: services.ServiceState) -> str:
    """A service's state in the CLI's language (``--json`` keeps the English ``*_state``)."""
    if state.running is None:
        return tr("unknown (%(reason)s)", reason=state.reason_in(_language[0]))
    return tr("running") if state.running else tr("stopped")


SETTINGS_INVALID = N_("the settings are invalid")


def restart_text(value: str | None) -> str:
    """The stored restart column (``restarted <time>`` / ``failed: <reason>``, English: a
    contract) in the CLI's language: the words around it from the catalog."""
    if not value:
        return tr("none yet")
    if value.startswith("restarted "):
        return tr("Restarted %(time)s", time=_moment_or_text(value.removeprefix("restarted ")))
    if value.startswith("failed: "):
        return tr("Restart failed: %(reason)s", reason=value.removeprefix("failed: "))
    return value


def _moment_or_text(text: str) -> str:
    """A stored ISO time as ``when`` shows it; any other text as it is."""
    try:
        return when(text)
    except ValueError:
        return text


def fleet_line(database: Database, settings: Settings | None) -> Reason | None:
    """Where this node takes its updates in a fleet, in words (None outside one)."""
    source, enabled = fleet_member.source_of(database, settings)
    return fleet_member.source_line(source, enabled=enabled)


def fleet_source(database: Database, settings: Settings | None) -> dict[str, Any] | None:
    """Where this node takes its updates in a fleet (None outside one), for ``--json``."""
    source, enabled = fleet_member.source_of(database, settings)
    line = fleet_member.source_line(source, enabled=enabled)
    if line is None:
        return None
    return {"source_mode": source.mode, "mirror_url": source.mirror_url,
            "mirror_unreachable_since": iso(source.unreachable_since), "text": str(line)}


def settings_or_none(database: Database) -> Settings | None:
    """Return the settings, or None while they are invalid (``status`` says which rows)."""
    try:
        return load(database.settings_rows(), [component.id for component in database.catalog()])
    except SettingsError:
        return None  # unknown: show what the daemon planned


def probe_services(settings: Settings | None) -> dict[str, services.ServiceState]:
    """Run the services' status commands: the state of ``scan`` and ``policy``."""
    if settings is None:
        return {name: services.ServiceState(None, SETTINGS_INVALID) for name in ("scan", "policy")}
    return {"scan": services.probe(settings.scan_status), "policy": services.probe(settings.policy_status)}


def service_states(states: dict[str, services.ServiceState]) -> dict[str, Any]:
    """For ``--json``: ``scan_running`` / ``policy_running`` are True, False or None
    (unknown), ``*_state`` says it in (English) words."""
    found: dict[str, Any] = {}
    for name, state in states.items():
        found[f"{name}_running"] = state.running
        found[f"{name}_state"] = state.word
    return found


def daemon_alive(status: RunStatus) -> bool:
    return overview.daemon_alive(status.daemon_heartbeat, datetime.datetime.now(datetime.UTC))


def daemon_text(daemon: dict[str, Any]) -> str:
    if daemon["alive"]:
        return tr("running (PID %(pid)s, last heartbeat %(time)s)", pid=daemon["pid"],
                  time=when(daemon["heartbeat"]))
    return tr("the updater is not running (last heartbeat %(time)s)",
              time=when(daemon["heartbeat"]) or tr("never"))


def schedule_text(settings: Settings | None) -> str:
    """The schedule in the CLI's language, its time in the gateway's local time zone (named)."""
    if settings is None:
        return tr("unknown (settings invalid)")
    schedule = schedule_for(settings)
    if schedule is None:
        return tr("off")
    return schedule.words(datetime.datetime.now().astimezone().strftime("%Z")).render(_language[0])


def schedule_words(settings: Settings | None) -> str | None:
    """The schedule in English words for ``--json`` (as the log says it), its time in the
    gateway's local time zone (named)."""
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
        return tr("not activated")
    if entry["state"] == "expired":
        return tr("expired on %(date)s", date=entry["expiry"])
    left = trn("%(num)d day left", "%(num)d days left", entry["days_left"])
    if entry["state"] == "expiring":
        return tr("valid until %(date)s, %(left)s (WARNING: renew it)", date=entry["expiry"], left=left)
    return tr("valid until %(date)s, %(left)s", date=entry["expiry"], left=left)


def next_run_text(daemon: dict[str, Any]) -> str:
    if daemon["scheduled_update"] is False:
        return tr("scheduled updates are off (Update/ScheduledUpdate=no)")
    if not daemon["alive"] or not daemon["next_run"]:
        return tr("not planned (is the daemon running?)")
    return when(daemon["next_run"])


def emit(arguments: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if arguments.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        print(text)
