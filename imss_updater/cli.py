"""Command line (SPEC section 5): parse, bootstrap, open the database, act, print.

Exit status: 0 success; 1 the command ran but something failed (a component, a restart,
a check that could not reach a source); 2 usage or configuration error; 3 another
process holds the download lock. On failure stderr gets one line with the reason.
"""

from __future__ import annotations

import argparse
import datetime
import getpass
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imss_updater import config, config_commands, diagnose, logsetup, notify, process, settings_check
from imss_updater.catalog import DEFAULT_IDS
from imss_updater.daemon import backlog
from imss_updater.database import psql
from imss_updater.database import trust as trust_db
from imss_updater.database.db import Database, DatabaseError
from imss_updater.database.embedded_db import EmbeddedDatabase, EmbeddedDbError
from imss_updater.notify import config as notify_config
from imss_updater.run import importer, trust
from imss_updater.run.planner import Mode
from imss_updater.run.updater import ComponentReport, RunError, RunReport, Updater
from imss_updater.settings import SettingsError, load
from imss_updater.settings_check import validate_value
from imss_updater.store import lock
from imss_updater.store.spool import EventSpool

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3


class CommandFailed(Exception):
    def __init__(self, reason: str, code: int = EXIT_FAILED) -> None:
        super().__init__(reason)
        self.code = code


def package_version() -> str:
    """The installed distribution's version (the checkout's when run from source)."""
    try:
        return importlib.metadata.version("imss-updater")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    # The common options work before or after the subcommand: the subcommands' copies
    # default to "not given" so that they never overwrite a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, given_before=None)
    parser = argparse.ArgumentParser(
        prog="imss-updater", description="Keeps the gateway's scan engines and pattern files up to date."
    )
    parser.add_argument("--version", action="version", version=f"imss-updater {package_version()}")
    _add_common_options(parser, given_before=parser)
    commands = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))

    db_parser = commands.add_parser("db", help="database schema")
    db_commands = _Commands(db_parser.add_subparsers(dest="db_command", required=True))
    db_commands.add_parser("init", parents=[common], help="create or upgrade the schema and default rows")

    config_parser = commands.add_parser("config", help="read or change a setting")
    config_commands = _Commands(config_parser.add_subparsers(dest="config_command", required=True))
    listed = config_commands.add_parser("list", parents=[common],
                                        help="print every setting (secrets as ***)")
    listed.add_argument("section", nargs="?", help="only this section")
    get = config_commands.add_parser("get", parents=[common], help="print a setting")
    get.add_argument("section")
    get.add_argument("name")
    set_ = config_commands.add_parser("set", parents=[common], help="change a setting")
    set_.add_argument("section")
    set_.add_argument("name")
    set_.add_argument("value")

    admin_parser = commands.add_parser("admin", help="status page administrator")
    admin_commands = _Commands(admin_parser.add_subparsers(dest="admin_command", required=True))
    admin_commands.add_parser(
        "set-password", parents=[common],
        help="set the status page password (asked twice on a terminal, else read from stdin)",
    )
    notify_parser = commands.add_parser("notify", help="mail and SNMP trap notifications")
    notify_commands = _Commands(notify_parser.add_subparsers(dest="notify_command", required=True))
    notify_test = notify_commands.add_parser("test", parents=[common],
                                             help="send a test message on each configured channel")
    notify_test.add_argument("--mail", action="store_true", help="only mail")
    notify_test.add_argument("--trap", action="store_true", help="only SNMP traps")
    notify_log = notify_commands.add_parser("log", parents=[common], help="delivery attempts, newest first")
    notify_log.add_argument("--limit", type=int, default=50)
    trust_parser = commands.add_parser("trust", help="what signatures proved before (SPEC 3.1)")
    trust_commands = trust_parser.add_subparsers(dest="trust_command", required=True)
    trust_reset = trust_commands.add_parser(
        "reset", parents=[common], help="forget that a component was signed (accept unsigned again)")
    trust_reset.add_argument("ids", nargs="+", metavar="ID")
    trust_index = trust_commands.add_parser(
        "reset-index", parents=[common],
        help="forget that a source signed its index (and the signed index kept from it)")
    trust_index.add_argument("base_url", metavar="URL")
    trust_commands.add_parser("show", parents=[common], help="signed components and sources")
    commands.add_parser("check", parents=[common], help="ask the update sources now")
    update = commands.add_parser("update", parents=[common], help="manual update")
    update.add_argument("--all", action="store_true", help="every component with a newer version")
    update.add_argument("ids", nargs="*", metavar="ID", help=COMPONENT_IDS_HELP)
    rollback = commands.add_parser("rollback", parents=[common], help="roll back one generation")
    rollback.add_argument("ids", nargs="+", metavar="ID", help=COMPONENT_IDS_HELP)
    commands.add_parser("status", parents=[common], help="current state, without contacting sources")
    logs = commands.add_parser("logs", parents=[common], help="the update event log, newest first")
    logs.add_argument("--kind", choices=("scheduled", "manual", "rollback"))
    logs.add_argument("--component")
    logs.add_argument("--outcome", choices=("success", "failure"))
    logs.add_argument("--since", help="ISO date or date-time")
    logs.add_argument("--limit", type=int, default=50)
    logs.add_argument("--lang", choices=("en", "ja"), default="en")
    diagnose = commands.add_parser("diagnose", parents=[common],
                                   help="troubleshoot the connection to the update source step by step")
    diagnose.add_argument("--address", action="append", default=[], metavar="HOST=IP",
                          help="an IP address to try when HOST does not resolve")
    package = commands.add_parser("import", parents=[common],
                                  help="install a component package obtained separately")
    package.add_argument("file", type=Path)
    package.add_argument("--component", metavar="ID", help=COMPONENT_IDS_HELP)
    package.add_argument("--version", metavar="V")
    package.add_argument("--force", action="store_true",
                         help="install even if not newer than the installed version")
    run = commands.add_parser("run", parents=[common], help="the daemon (scheduler and status page)")
    run.add_argument("--once", action="store_true", help="one scheduled update, then exit")
    commands.add_parser("psql", parents=[common],
                        help="open psql on the configured database as sa (no password to type)")
    return parser


COMPONENT_IDS_HELP = "component id: " + ", ".join(DEFAULT_IDS)


class _Commands:
    """Subcommands whose ``help`` line is also their description in ``COMMAND --help``."""

    def __init__(self, actions: Any) -> None:
        self.actions = actions

    def add_parser(self, name: str, **options: Any) -> argparse.ArgumentParser:
        options.setdefault("description", options.get("help"))
        parser: argparse.ArgumentParser = self.actions.add_parser(name, **options)
        return parser


def _add_common_options(parser: argparse.ArgumentParser,
                        given_before: argparse.ArgumentParser | None) -> None:
    """The options every command takes. On the main parser (``given_before``) they have
    their defaults; on the subcommands' copies they default to "not given"."""
    keep: dict[str, Any] = {} if given_before is not None else {"default": argparse.SUPPRESS}
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout",
                        **keep)
    parser.add_argument("--dsn", help="PostgreSQL DSN (default: $IMSS_DSN, else the embedded database)",
                        **keep)
    parser.add_argument("--root", help="install root (default: $IMSS_ROOT or /opt/trend/imss)", **keep)
    parser.add_argument("--state", help="state directory (default: $IMSS_STATE or /var/lib/imss-updater)",
                        **keep)
    parser.add_argument("--db-port", help="embedded database port (default: $IMSS_DB_PORT or 5432)",
                        **keep)
    parser.add_argument("--web", help="status page host:port (default: $IMSS_WEB or 127.0.0.1:8445)",
                        **keep)
    parser.add_argument("-v", "--verbose", action="count", help="log to stderr (-vv: debug)",
                        **({"default": 0} if given_before is not None else keep))
    parser.add_argument("--log-level", choices=sorted(logsetup.LEVELS), type=str.lower,
                        help="log level (default: $IMSS_LOG_LEVEL, else info for run, quiet otherwise)",
                        **keep)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    try:
        logsetup.configure(arguments.verbose, daemon=arguments.command == "run" and not arguments.once,
                           level_name=arguments.log_level)
    except ValueError as error:  # IMSS_LOG_LEVEL names no level
        return _fail(str(error), EXIT_USAGE)
    try:
        bootstrap = config.from_environment(
            os.environ,
            {"dsn": arguments.dsn, "root": arguments.root, "state": arguments.state,
             "db_port": arguments.db_port, "web": arguments.web},
        )
        return dispatch(arguments, bootstrap)
    except CommandFailed as failure:
        return _fail(str(failure), failure.code)
    except (config.BootstrapError, SettingsError) as error:
        return _fail(str(error), EXIT_USAGE)
    except (DatabaseError, EmbeddedDbError) as error:
        return _fail(str(error), EXIT_FAILED)
    except RunError as error:
        code = EXIT_LOCKED if str(error) == lock.LOCK_MESSAGE_EN else EXIT_FAILED
        text = str(error)
        if code == EXIT_LOCKED:
            text = f"{lock.LOCK_MESSAGE_EN} ({lock.LOCK_MESSAGE_JA})"
        return _fail(text, code)
    except lock.LockUnusable as error:
        return _fail(error.reason, EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_FAILED)
    except Exception as error:  # never a traceback: one line, the details with -vv
        log.debug("unexpected error", exc_info=True)
        return _fail(f"internal error: {error.__class__.__name__}: {error}", EXIT_FAILED)


def _fail(reason: str, code: int) -> int:
    print(f"imss-updater: {reason.splitlines()[0] if reason else 'failed'}", file=sys.stderr)
    return code


# The commands that change the install root; with the embedded database every command
# writes in the state directory, and the daemon always does (its session key).
_CHANGES_ROOT = frozenset({"run", "update", "rollback", "import"})


def dispatch(arguments: argparse.Namespace, bootstrap: config.Bootstrap) -> int:
    command = arguments.command
    config.require_private_directories(
        bootstrap, state=bootstrap.embedded or command == "run", root=command in _CHANGES_ROOT
    )
    if command == "run":
        from imss_updater.daemon import loop as daemon  # the scheduler is loaded only for the daemon

        return daemon.main(bootstrap, once=arguments.once, as_json=arguments.json)
    if command == "diagnose":
        return _diagnose(arguments, bootstrap)
    if command == "psql":
        return _psql(bootstrap)
    with config.open_database(bootstrap) as database:
        if command == "db":
            applied = database.init()
            _emit(arguments, {"applied": applied, "schema_version": database.schema_version()},
                  "schema up to date" if not applied else "applied: " + ", ".join(applied))
            return EXIT_OK
        config.require_schema(database)
        spool = EventSpool(bootstrap.state)
        backlog.flush_quietly(spool, database)  # kept by this or another process
        if command == "admin":
            return _set_password(arguments, database)
        if command == "notify":
            return _notify(arguments, database)
        if command == "config":
            return _config(arguments, database)
        if command == "trust":
            return _trust(arguments, database)
        updater = Updater(database, bootstrap.root, spool=spool)
        if command == "check":
            reports = updater.check()
            status = database.run_status()
            _emit(arguments, {"components": [r.as_json() for r in reports],
                              "last_check": _check_json(database)}, _table(reports))
            if not status.last_check_ok:
                raise CommandFailed(f"check failed: {status.last_check_text or 'no result recorded'}")
            return EXIT_OK
        if command == "status":
            reports = updater.status()
            run_status = database.run_status()
            payload = {
                "components": [r.as_json() for r in reports],
                "last_check": _check_json(database),
                "last_run": {
                    "time": _iso(run_status.last_run_at), "kind": run_status.last_run_kind,
                    "ok": run_status.last_run_ok, "result": run_status.last_run_text,
                },
                "services": {"scan": run_status.scan_service, "policy": run_status.policy_service},
                "daemon": {
                    "pid": run_status.daemon_pid,
                    "heartbeat": _iso(run_status.daemon_heartbeat),
                    "next_run": _iso(run_status.next_run_at),
                    "scheduled_update": _scheduled_update(database),
                    "settings_problem": run_status.settings_problem,
                },
                "settings_problems": [str(problem) for problem in settings_check.problems(
                    database.settings_rows(), [c.id for c in database.catalog()])],
                "lock_holder": lock.lock_holder(bootstrap.root),
            }
            text = _table(reports) + "\n" + _status_lines(payload)
            _emit(arguments, payload, text)
            return EXIT_OK
        if command == "update":
            if arguments.all == bool(arguments.ids):
                raise CommandFailed("give either --all or one or more component ids", EXIT_USAGE)
            report = updater.update(Mode.MANUAL, None if arguments.all else arguments.ids)
            return _report(arguments, report)
        if command == "rollback":
            return _report(arguments, updater.rollback(arguments.ids))
        if command == "logs":
            return _logs(arguments, database)
        if command == "import":
            try:
                report = importer.import_package(
                    database, bootstrap.root, arguments.file, component_id=arguments.component,
                    version=arguments.version, force=arguments.force,
                )
            except importer.PackageError as error:
                raise CommandFailed(str(error), EXIT_USAGE) from error
            return _report(arguments, report)
    raise CommandFailed(f"unknown command {command}", EXIT_USAGE)


def _notify(arguments: argparse.Namespace, database: Database) -> int:
    if arguments.notify_command == "log":
        rows = notify.deliveries(database, limit=arguments.limit)
        lines = [
            f"{row.time.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  {row.channel:<4}  "
            f"{row.outcome:<6}  {row.recipient}  {row.event}" + (f"  ({row.error})" if row.error else "")
            for row in rows
        ]
        _emit(arguments, {"deliveries": [row.as_json() for row in rows]},
              "\n".join(lines) if lines else "no deliveries")
        return EXIT_OK
    both = not arguments.mail and not arguments.trap
    results = notify.send_test(database, mail=arguments.mail or both, trap=arguments.trap or both)
    lines = [f"{'OK  ' if result.outcome == 'sent' else 'FAIL'}  {result.channel}  {result.recipient}"
             + (f"  {result.error}" if result.error else "") for result in results]
    _emit(arguments, {"results": [result.as_json() for result in results]},
          "\n".join(lines) if lines else "no channel is configured")
    if not results:
        raise CommandFailed("no notification channel is configured (Notification rows)")
    failed = [result for result in results if result.outcome != "sent"]
    if failed:
        raise CommandFailed(f"{failed[0].channel} to {failed[0].recipient}: {failed[0].error}")
    return EXIT_OK


def _trust(arguments: argparse.Namespace, database: Database) -> int:
    if arguments.trust_command == "reset":
        try:
            cleared = trust.reset(database, arguments.ids)
        except ValueError as error:
            raise CommandFailed(str(error), EXIT_USAGE) from error
        _emit(arguments, {"cleared": cleared}, trust.reset_text(arguments.ids, cleared))
        return EXIT_OK
    if arguments.trust_command == "reset-index":
        found = trust_db.clear_index_pin(database, arguments.base_url)
        _emit(arguments, {"cleared": found}, trust.reset_index_text(arguments.base_url, found))
        return EXIT_OK
    payload = trust.show(database)
    _emit(arguments, payload, trust.show_text(payload))
    return EXIT_OK


def _set_password(arguments: argparse.Namespace, database: Database) -> int:
    from imss_updater.web import set_admin_password  # Flask is loaded only for this command

    if sys.stdin.isatty():
        password = getpass.getpass("New status page password: ")
        if getpass.getpass("Again: ") != password:
            raise CommandFailed("the passwords differ", EXIT_USAGE)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        set_admin_password(database, password)
    except ValueError as error:
        raise CommandFailed(str(error), EXIT_USAGE) from error
    _emit(arguments, {"ok": True}, "status page password set")
    return EXIT_OK


def _diagnose(arguments: argparse.Namespace, bootstrap: config.Bootstrap) -> int:
    known: dict[str, str] = {}
    for pair in arguments.address:
        host, equals, address = pair.partition("=")
        if not equals or not host or not address:
            raise CommandFailed(f"--address must be HOST=IP, got {pair!r}", EXIT_USAGE)
        known[host] = address
    try:
        with config.open_database(bootstrap) as database:
            steps = diagnose.run_diagnosis(database, None, bootstrap.root, known_addresses=known)
    except (DatabaseError, EmbeddedDbError) as error:
        steps = diagnose.run_diagnosis(None, str(error), bootstrap.root, known_addresses=known)
    _emit(arguments, diagnose.to_json(steps), diagnose.to_text(steps))
    if not diagnose.passed(steps):
        first = next(step for step in steps if step.ok is False)
        raise CommandFailed(f"{first.name}: {first.detail}")
    return EXIT_OK


def _config(arguments: argparse.Namespace, database: Database) -> int:
    rows = database.settings_rows()
    if arguments.config_command == "list":
        section = arguments.section
        if section and not any(row_section.lower() == section.lower() for row_section, _n in rows):
            raise CommandFailed(config_commands.unknown_section(section, rows), EXIT_USAGE)
        items = config_commands.listing(rows, section)
        _emit(arguments, {"settings": items},
              "\n".join(f"{item['section']}/{item['name']} = {item['value']}" for item in items))
        return EXIT_OK
    section, name = arguments.section, arguments.name
    if (section, name) not in rows:  # exit 1 for get (nothing to print), 2 for set (as before)
        code = EXIT_FAILED if arguments.config_command == "get" else EXIT_USAGE
        raise CommandFailed(config_commands.unknown_row(section, name, rows), code)
    if arguments.config_command == "get":
        value = rows[(section, name)]
        _emit(arguments, {"section": section, "name": name, "value": value}, value)
        return EXIT_OK
    validate_value(section, name, arguments.value, rows, [c.id for c in database.catalog()])
    notify_config.validate_value(section, name, arguments.value, rows)
    database.set_setting(section, name, arguments.value)
    shown = config_commands.shown(section, name, arguments.value)
    _emit(arguments, {"section": section, "name": name, "value": shown}, f"{section}/{name} = {shown}")
    return EXIT_OK


def _psql(bootstrap: config.Bootstrap) -> int:
    """psql on the configured database; the embedded cluster is started for it if needed
    (and stopped again afterwards)."""
    try:
        client = psql.find_psql()
    except psql.PsqlNotFound as error:
        raise CommandFailed(str(error)) from error
    embedded = None if bootstrap.dsn else EmbeddedDatabase(bootstrap.state, port=bootstrap.db_port)
    started = False
    if embedded is not None:
        embedded.ensure_initialized()
        if not embedded.is_running():
            embedded.start()
            started = True
    try:
        argv, environment = psql.invocation(bootstrap.dsn or embedded.dsn(), client)  # type: ignore[union-attr]
        try:
            return process.interactive(argv, env=environment)
        except process.CommandError as error:
            raise CommandFailed(error.reason) from error
    finally:
        if started and embedded is not None:
            embedded.stop()


def _logs(arguments: argparse.Namespace, database: Database) -> int:
    since = None
    if arguments.since:
        try:
            since = datetime.datetime.fromisoformat(arguments.since)
        except ValueError:
            raise CommandFailed(f"--since must be an ISO date or date-time, got {arguments.since!r}",
                                EXIT_USAGE) from None
        if since.tzinfo is None:
            since = since.astimezone()
    events = database.events(kind=arguments.kind, component=arguments.component,
                             outcome=arguments.outcome, since=since, limit=arguments.limit)
    payload = {
        "events": [
            {
                "id": event.id, "time": event.time.isoformat(), "kind": event.kind,
                "component": event.component, "version": event.version, "outcome": event.outcome,
                "message": event.message, "message_ja": event.message_ja, "reason": event.reason,
            }
            for event in events
        ]
    }
    lines = [
        f"{event.time.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  {event.kind:<9}  {event.outcome:<7}  "
        + (event.message_ja if arguments.lang == "ja" else event.message)
        for event in events
    ]
    _emit(arguments, payload, "\n".join(lines) if lines else "no events")
    return EXIT_OK


def _report(arguments: argparse.Namespace, report: RunReport) -> int:
    lines = [("OK    " if o.ok else "FAIL  ") + o.message for o in report.outcomes]
    if report.restart_error:
        lines.append("FAIL  " + report.restart_error)
    lines.append(report.summary())
    _emit(arguments, report.as_json(), "\n".join(lines))
    if not report.ok:
        if report.problem is not None:
            code = EXIT_USAGE if report.problem.step == "settings" else EXIT_FAILED
            raise CommandFailed(report.problem.reason, code)
        raise CommandFailed(report.failure_reason() or report.summary())
    return EXIT_OK


def _check_json(database: Database) -> dict[str, Any]:
    status = database.run_status()
    return {"time": _iso(status.last_check_at), "ok": status.last_check_ok, "result": status.last_check_text}


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _table(reports: Sequence[ComponentReport]) -> str:
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


def _status_lines(payload: dict[str, Any]) -> str:
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
        f"next scheduled run: {_next_run_text(payload['daemon'])}",
        *([f"settings problem: {payload['daemon']['settings_problem']}"]
          if payload["daemon"]["settings_problem"] else []),
        *[f"settings problem: {problem}" for problem in payload["settings_problems"]
          if problem not in (payload["daemon"]["settings_problem"] or "")],
    ])


def _scheduled_update(database: Database) -> bool | None:
    """Return whether Update/ScheduledUpdate is on, or None while the settings are invalid."""
    try:
        settings = load(database.settings_rows(), [component.id for component in database.catalog()])
    except SettingsError:
        return None  # unknown: show what the daemon planned
    return settings.scheduled_update


def _next_run_text(daemon: dict[str, Any]) -> str:
    if daemon["scheduled_update"] is False:
        return "scheduled updates are off (Update/ScheduledUpdate=no)"
    return str(daemon["next_run"] or "not planned (is the daemon running?)")


def _emit(arguments: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    if arguments.json:
        print(json.dumps(payload, ensure_ascii=False, indent=2, default=str))
    else:
        print(text)


if __name__ == "__main__":
    sys.exit(main())
