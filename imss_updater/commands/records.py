"""The commands that read and change the records: ``config``, ``admin set-password``,
``notify test|log``, ``trust show|reset|reset-index`` and ``logs`` (SPEC 5), each printing
for people in the CLI's language and ``--json`` in English."""

from __future__ import annotations

import argparse
import datetime
import getpass
import sys

from imss_updater import config_commands, i18n, notify
from imss_updater.commands import output
from imss_updater.commands.failures import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandFailed
from imss_updater.database import trust as trust_db
from imss_updater.database.db import Database
from imss_updater.i18n import N_, Reason
from imss_updater.notify import config as notify_config
from imss_updater.notify import reasons as notify_reasons
from imss_updater.run import trust
from imss_updater.settings_check import validate_value


def notify_command(arguments: argparse.Namespace, database: Database) -> int:
    language = output.language()
    if arguments.notify_command == "log":
        rows = notify.deliveries(database, limit=arguments.limit)
        lines = [
            f"{row.time.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  "
            f"{notify_reasons.channel_cell(row.channel, language)}  "
            f"{notify_reasons.outcome_cell(row.outcome, language)}  {row.recipient}  {row.event}"
            + (f"  ({row.error_in(language)})" if row.stored_error else "")
            for row in rows
        ]
        output.emit(arguments, {"deliveries": [row.as_json() for row in rows]},
              "\n".join(lines) if lines else output.tr(N_("no deliveries")))
        return EXIT_OK
    both = not arguments.mail and not arguments.trap
    results = notify.send_test(database, mail=arguments.mail or both, trap=arguments.trap or both)
    ok, fail = output.tr(N_("OK")), output.tr(N_("FAIL"))
    lines = [f"{notify_reasons.cell(ok if result.outcome == 'sent' else fail, (ok, fail))}  "
             f"{notify_reasons.channel_word(result.channel, language)}  {result.recipient}"
             + (f"  {result.reason.render(language)}" if result.reason is not None else "")
             for result in results]
    output.emit(arguments, {"results": [result.as_json() for result in results]},
          "\n".join(lines) if lines else output.tr(N_("no channel is configured")))
    if not results:
        raise CommandFailed(output.tr(N_("no notification channel is configured (Notification rows)")))
    failed = [result for result in results if result.outcome != "sent"]
    if failed:
        first = failed[0]
        raise CommandFailed(output.tr(N_("%(channel)s to %(recipient)s: %(error)s"),
                                      channel=notify_reasons.channel_word(first.channel, language),
                                      recipient=first.recipient,
                                      error=notify_reasons.shown(first.reason, language) or ""))
    return EXIT_OK


def trust_command(arguments: argparse.Namespace, database: Database) -> int:
    if arguments.trust_command == "reset":
        try:
            cleared = trust.reset(database, arguments.ids)
        except ValueError as error:
            raise CommandFailed(i18n.render(error.args[0], output.language()), EXIT_USAGE) from error
        output.emit(arguments, {"cleared": cleared},
                    trust.reset_text(arguments.ids, cleared, output.language()))
        return EXIT_OK
    if arguments.trust_command == "reset-index":
        found = trust_db.clear_index_pin(database, arguments.base_url)
        output.emit(arguments, {"cleared": found},
                    trust.reset_index_text(arguments.base_url, found, output.language()))
        return EXIT_OK
    payload = trust.show(database)
    output.emit(arguments, payload, trust.show_text(payload, output.language()))
    return EXIT_OK


def set_password(arguments: argparse.Namespace, database: Database) -> int:
    from imss_updater.web import set_admin_password  # Flask is loaded only for this command

    if sys.stdin.isatty():
        password = getpass.getpass(output.tr(N_("New status page password: ")))
        if getpass.getpass(output.tr(N_("Again: "))) != password:
            raise CommandFailed(output.tr(N_("the passwords differ")), EXIT_USAGE)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        set_admin_password(database, password)
    except ValueError as error:
        raise CommandFailed(error.args[0] if error.args and isinstance(error.args[0], Reason)
                            else str(error), EXIT_USAGE) from error
    output.emit(arguments, {"ok": True}, output.tr(N_("status page password set")))
    return EXIT_OK


def config_command(arguments: argparse.Namespace, database: Database) -> int:
    rows = database.settings_rows()
    if arguments.config_command == "list":
        section = arguments.section
        if section and not any(row_section.lower() == section.lower() for row_section, _n in rows):
            raise CommandFailed(config_commands.unknown_section(section, rows, output.language()), EXIT_USAGE)
        items = config_commands.listing(rows, section)
        output.emit(arguments, {"settings": items},
              "\n".join(f"{item['section']}/{item['name']} = {item['value']}" for item in items))
        return EXIT_OK
    section, name = arguments.section, arguments.name
    if (section, name) not in rows:  # exit 1 for get (nothing to print), 2 for set (as before)
        code = EXIT_FAILED if arguments.config_command == "get" else EXIT_USAGE
        raise CommandFailed(config_commands.unknown_row(section, name, rows, output.language()), code)
    if arguments.config_command == "get":
        value = rows[(section, name)]
        output.emit(arguments, {"section": section, "name": name, "value": value}, value)
        return EXIT_OK
    validate_value(section, name, arguments.value, rows, [c.id for c in database.catalog()])
    notify_config.validate_value(section, name, arguments.value, rows)
    database.set_setting(section, name, arguments.value)
    shown = config_commands.shown(section, name, arguments.value)
    output.emit(arguments, {"section": section, "name": name, "value": shown}, f"{section}/{name} = {shown}")
    return EXIT_OK


def logs_command(arguments: argparse.Namespace, database: Database) -> int:
    since = None
    if arguments.since:
        try:
            since = datetime.datetime.fromisoformat(arguments.since)
        except ValueError:
            raise CommandFailed(Reason(N_("--since must be an ISO date or date-time, got %(value)s"),
                                       {"value": repr(arguments.since)}), EXIT_USAGE) from None
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
                "node": event.node,
            }
            for event in events
        ]
    }
    lines = [
        f"{event.time.astimezone().strftime('%Y-%m-%d %H:%M:%S')}  "
        f"{output.event_words(event.kind, event.outcome)}  "
        + (event.message_ja if output.language() == "ja" else event.message)
        for event in events
    ]
    output.emit(arguments, payload, "\n".join(lines) if lines else output.tr(N_("no events")))
    return EXIT_OK
