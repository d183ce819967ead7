"""The command line's arguments: subcommands, their options and their help (SPEC 5)."""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path
from typing import Any

from imss_updater import logsetup
from imss_updater.catalog import DEFAULT_IDS
from imss_updater.i18n import LANGUAGES


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
    fleet_parser = commands.add_parser("fleet", help="the gateways sharing this database (SPEC 7)")
    fleet_commands = _Commands(fleet_parser.add_subparsers(dest="fleet_command", required=True))
    fleet_commands.add_parser("status", parents=[common],
                              help="every node: role, heartbeat, mirror URL, installed versions")
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
    diagnose = commands.add_parser("diagnose", parents=[common],
                                   help="troubleshoot the connection to the update source step by step")
    diagnose.add_argument("--address", action="append", default=[], metavar="HOST=IP",
                          help="an IP address to try when HOST does not resolve")
    package = commands.add_parser("import", parents=[common],
                                  help="install a component package obtained separately")
    package.add_argument("file", type=Path,
                         help="<id>-<version>.zip, or a raw pattern file such as lpt$vpn.697")
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
    parser.add_argument("--lang", choices=LANGUAGES,
                        help="language of the output for people (default: from LANG, e.g. ja_JP.UTF-8)",
                        **keep)
    parser.add_argument("--node", help="this gateway's name in the fleet"
                        " (default: $IMSS_NODE or the host name)", **keep)
    parser.add_argument("--mirror", help="host:port where this gateway serves the fleet's mirror"
                        " when it leads (default: $IMSS_MIRROR, else none)", **keep)
    parser.add_argument("-v", "--verbose", action="count", help="log to stderr (-vv: debug)",
                        **({"default": 0} if given_before is not None else keep))
    parser.add_argument("--log-level", choices=sorted(logsetup.LEVELS), type=str.lower,
                        help="log level (default: $IMSS_LOG_LEVEL, else info for run, quiet otherwise)",
                        **keep)
