"""Command line (SPEC section 5): parse, bootstrap, open the database, act, print.

Exit status: 0 success; 1 the command ran but something failed (a component, a restart,
a check that could not reach a source); 2 usage or configuration error; 3 another
process holds the download lock. On failure stderr gets one line with the reason.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from imss_updater import (
    config,
    diagnose,
    fleet_view,
    i18n,
    logsetup,
    process,
    settings_check,
)
from imss_updater.commands import arguments as arguments_module
from imss_updater.commands import output, records
from imss_updater.commands.failures import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
)
from imss_updater.daemon import backlog
from imss_updater.database import psql
from imss_updater.database.db import DatabaseError
from imss_updater.database.embedded_db import EmbeddedDbError
from imss_updater.i18n import N_, Reason
from imss_updater.run import importer
from imss_updater.run.planner import Mode
from imss_updater.run.updater import RunError, RunReport, Updater
from imss_updater.settings import SettingsError
from imss_updater.store import lock
from imss_updater.store.spool import EventSpool

log = logging.getLogger(__name__)

def main(argv: Sequence[str] | None = None) -> int:
    # The language is decided before parsing (--lang in argv, else LC_ALL/LC_MESSAGES/LANG):
    # --help and usage errors are printed while parsing, in that language too.
    words = sys.argv[1:] if argv is None else list(argv)
    language = arguments_module.language_given(words) or i18n.environment_language()
    arguments = arguments_module.parse(words, language)
    output.use_language(getattr(arguments, "lang", None) or language)
    try:
        logsetup.configure(arguments.verbose, daemon=arguments.command == "run" and not arguments.once,
                           level_name=arguments.log_level)
    except ValueError as error:  # IMSS_LOG_LEVEL names no level
        return _fail(str(error), EXIT_USAGE)
    try:
        bootstrap = config.from_environment(
            os.environ,
            {"dsn": arguments.dsn, "root": arguments.root, "state": arguments.state,
             "db_port": arguments.db_port, "web": arguments.web, "node": arguments.node,
             "mirror": arguments.mirror},
        )
        return dispatch(arguments, bootstrap)
    except CommandFailed as failure:
        return _fail(failure.reason, failure.code)
    except SettingsError as error:
        return _fail(output.settings_error_text(error), EXIT_USAGE)
    except config.BootstrapError as error:
        return _fail(str(error), EXIT_USAGE)
    except (DatabaseError, EmbeddedDbError) as error:
        return _fail(str(error), EXIT_FAILED)
    except RunError as error:
        code = EXIT_LOCKED if str(error) == lock.LOCK_MESSAGE_EN else EXIT_FAILED
        text: str | Reason = error.args[0] if error.args and isinstance(error.args[0], Reason) else str(error)
        if code == EXIT_LOCKED:
            # SPEC 1.1's wording: both languages, or only the Japanese one with --lang ja
            text = (lock.LOCK_MESSAGE_JA if output.language() == "ja"
                    else f"{lock.LOCK_MESSAGE_EN} ({lock.LOCK_MESSAGE_JA})")
        return _fail(text, code)
    except lock.LockUnusable as error:
        return _fail(error.reason, EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail(output.tr(N_("interrupted")), EXIT_FAILED)
    except Exception as error:  # never a traceback: one line, the details with -vv
        log.debug("unexpected error", exc_info=True)
        return _fail(output.tr(N_("internal error: %(error)s"), error=f"{error.__class__.__name__}: {error}"),
                     EXIT_FAILED)


def _fail(reason: str | Reason, code: int) -> int:
    reason = i18n.render(reason, output.language())
    print(f"imss-updater: {reason.splitlines()[0] if reason else output.tr(N_('failed'))}", file=sys.stderr)
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
            database.record_mirror_address(bootstrap.mirror)
            output.emit(arguments, {"applied": applied, "schema_version": database.schema_version()},
                  output.tr(N_("schema up to date")) if not applied
                  else output.tr(N_("applied: %(migrations)s"), migrations=", ".join(applied)))
            return EXIT_OK
        config.require_schema(database)
        spool = EventSpool(bootstrap.state)
        backlog.flush_quietly(spool, database)  # kept by this or another process
        if command == "admin":
            return records.set_password(arguments, database)
        if command == "notify":
            return records.notify_command(arguments, database)
        if command == "config":
            return records.config_command(arguments, database)
        if command == "trust":
            return records.trust_command(arguments, database)
        if command == "fleet":
            view = database.fleet()
            found = fleet_view.rows(view, database.catalog())
            output.emit(arguments, fleet_view.as_json(view, found),
                        fleet_view.as_text(found, output.language()))
            return EXIT_OK
        updater = Updater(database, bootstrap.root, spool=spool)
        if command == "check":
            reports = updater.check()
            status = database.run_status()
            output.emit(arguments, {"components": [r.as_json() for r in reports],
                              "last_check": output.check_json(database)}, output.table(reports))
            if not status.last_check_ok:
                raise CommandFailed(output.tr("check failed: %(reason)s", reason=i18n.stored_text(
                    status.last_check_text, output.language()) or output.tr("no result recorded")))
            return EXIT_OK
        if command == "status":
            reports = updater.status()
            run_status = database.run_status()
            settings = output.settings_or_none(database)
            service_now = output.probe_services(settings)
            problems = settings_check.problems(database.settings_rows(), [c.id for c in database.catalog()])
            payload = {
                "components": [r.as_json() for r in reports],
                "last_check": output.check_json(database),
                "last_run": {
                    "time": output.iso(run_status.last_run_at), "kind": run_status.last_run_kind,
                    "ok": run_status.last_run_ok, "result": i18n.stored_text(run_status.last_run_text, "en"),
                },
                "services": {"scan": run_status.scan_service, "policy": run_status.policy_service,
                             **output.service_states(service_now)},
                "daemon": {
                    "pid": run_status.daemon_pid,
                    "heartbeat": output.iso(run_status.daemon_heartbeat),
                    "alive": output.daemon_alive(run_status),
                    "next_run": output.iso(run_status.next_run_at),
                    "scheduled_update": settings.scheduled_update if settings else None,
                    "schedule": output.schedule_words(settings),
                    "settings_problem": run_status.settings_problem,
                },
                "licenses": output.license_states(settings),
                "settings_problems": [str(problem) for problem in problems],
                "lock_holder": lock.lock_holder(bootstrap.root),
                "fleet": output.fleet_source(database, settings),
            }
            text = output.table(reports) + "\n" + output.status_lines(
                payload, status=run_status, settings=settings, current_problems=problems,
                fleet_line=output.fleet_line(database, settings), service_now=service_now)
            output.emit(arguments, payload, text)
            return EXIT_OK
        if command == "update":
            if arguments.all == bool(arguments.ids):
                raise CommandFailed(Reason(N_("give either --all or one or more component ids")), EXIT_USAGE)
            report = updater.update(Mode.MANUAL, None if arguments.all else arguments.ids)
            return _report(arguments, report)
        if command == "rollback":
            return _report(arguments, updater.rollback(arguments.ids))
        if command == "logs":
            return records.logs_command(arguments, database)
        if command == "import":
            try:
                report = importer.import_package(
                    database, bootstrap.root, arguments.file, component_id=arguments.component,
                    version=arguments.version, force=arguments.force,
                )
            except importer.PackageError as error:
                raise CommandFailed(i18n.render(error.reason, output.language()), EXIT_USAGE) from error
            return _report(arguments, report)
    raise CommandFailed(Reason(N_("unknown command %(command)s"), {"command": command}), EXIT_USAGE)


def _diagnose(arguments: argparse.Namespace, bootstrap: config.Bootstrap) -> int:
    known: dict[str, str] = {}
    for pair in arguments.address:
        host, equals, address = pair.partition("=")
        if not equals or not host or not address:
            raise CommandFailed(output.tr(N_("--address must be HOST=IP, got %(pair)s"), pair=repr(pair)),
                                EXIT_USAGE)
        known[host] = address
    try:
        with config.open_database(bootstrap) as database:
            steps = diagnose.run_diagnosis(database, None, bootstrap.root, known_addresses=known)
    except (DatabaseError, EmbeddedDbError) as error:
        steps = diagnose.run_diagnosis(None, str(error), bootstrap.root, known_addresses=known)
    language = output.language()  # --lang, else LANG (SPEC 1.1)
    output.emit(arguments, diagnose.to_json(steps, language), diagnose.to_text(steps, language))
    if not diagnose.passed(steps):
        first = next(step for step in steps if step.ok is False)
        name, detail, _ = first.texts(language)
        raise CommandFailed(f"{name}: {detail}")
    return EXIT_OK


def _psql(bootstrap: config.Bootstrap) -> int:
    """psql on the configured database; the embedded cluster is started for it if needed
    (and stopped again afterwards)."""
    try:
        client = psql.find_psql()
    except psql.PsqlNotFound as error:
        raise CommandFailed(str(error)) from error
    with config.database_dsn(bootstrap) as dsn:
        argv, environment = psql.invocation(dsn, client)
        try:
            return process.interactive(argv, env=environment)
        except process.CommandError as error:
            raise CommandFailed(error.why) from error


def _report(arguments: argparse.Namespace, report: RunReport) -> int:
    language = output.language()
    lines = [("OK    " if o.ok else "FAIL  ") + o.message_in(language) for o in report.outcomes]
    if report.restart_error:
        lines.append("FAIL  " + i18n.render(report.restart_error, language))
    lines.append(report.summary_reason().render(language))
    output.emit(arguments, report.as_json(), "\n".join(lines))
    if not report.ok:
        if report.problem is not None:
            code = EXIT_USAGE if report.problem.step == "settings" else EXIT_FAILED
            raise CommandFailed(report.problem.reason_in(language), code)
        raise CommandFailed(report.failure_reason(language) or report.summary_reason().render(language))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
