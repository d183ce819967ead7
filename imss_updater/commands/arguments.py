"""The command line's arguments: subcommands, their options and their help (SPEC 5).

The parser is built in the CLI's language (``parse``): every help text goes through the
catalog (``tr``), argparse's own words too (commands/parser_language.py). Option names,
metavars and subcommand names are the contract and stay as they are in every language.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from imss_updater import i18n, logsetup
from imss_updater.catalog import DEFAULT_IDS
from imss_updater.commands import parser_language
from imss_updater.i18n import LANGUAGES

Translate = Callable[..., str]


def package_version() -> str:
    """The installed distribution's version (the checkout's when run from source)."""
    try:
        return importlib.metadata.version("imss-updater")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def language_given(argv: Sequence[str]) -> str | None:
    """The language ``--lang ja`` / ``--lang=ja`` asks for anywhere in ``argv`` (the last one,
    as in the parsed arguments; none after ``--``), known before the parser is built; None when
    not given or not a language (the parser then reports it)."""
    given: str | None = None
    for index, word in enumerate(argv):
        if word == "--":
            break
        if word == "--lang" and index + 1 < len(argv):
            given = argv[index + 1]
        elif word.startswith("--lang="):
            given = word.removeprefix("--lang=")
    return given if given in LANGUAGES else None


def parse(argv: Sequence[str], language: str) -> argparse.Namespace:
    """Parse ``argv`` with the parser in ``language``: its help, usage and errors (exit 2)
    are printed in that language while it parses."""
    with parser_language.speaking(language):
        return build_parser(language).parse_args(argv)


def build_parser(language: str = i18n.DEFAULT_LANGUAGE) -> argparse.ArgumentParser:
    """The parser with its help texts in ``language`` (argparse's headings in it too when
    built inside ``parser_language.speaking``, as ``parse`` does)."""
    def tr(msgid: str, **values: object) -> str:
        return i18n.gettext(language, msgid, **values)

    formatter: type[argparse.HelpFormatter] = (
        argparse.HelpFormatter if language == i18n.DEFAULT_LANGUAGE else parser_language.WideHelpFormatter)
    # The common options work before or after the subcommand: the subcommands' copies
    # default to "not given" so that they never overwrite a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(common, tr, given_before=None)
    parser = argparse.ArgumentParser(
        prog="imss-updater", description=tr("Keeps the gateway's scan engines and pattern files up to date."),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"imss-updater {package_version()}",
                        help=tr("show program's version number and exit"))
    _add_common_options(parser, tr, given_before=parser)
    commands = _Commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"), formatter)
    component_ids = tr("component id: %(ids)s", ids=", ".join(DEFAULT_IDS))

    db_parser = commands.add_parser("db", help=tr("database schema"))
    db_commands = _Commands(db_parser.add_subparsers(dest="db_command", required=True), formatter)
    db_commands.add_parser("init", parents=[common], help=tr("create or upgrade the schema and default rows"))

    config_parser = commands.add_parser("config", help=tr("read or change a setting"))
    config_commands = _Commands(config_parser.add_subparsers(dest="config_command", required=True),
                                formatter)
    listed = config_commands.add_parser("list", parents=[common],
                                        help=tr("print every setting (secrets as ***)"))
    listed.add_argument("section", nargs="?", help=tr("only this section"))
    get = config_commands.add_parser("get", parents=[common], help=tr("print a setting"))
    get.add_argument("section")
    get.add_argument("name")
    set_ = config_commands.add_parser("set", parents=[common], help=tr("change a setting"))
    set_.add_argument("section")
    set_.add_argument("name")
    set_.add_argument("value")

    admin_parser = commands.add_parser("admin", help=tr("status page administrator"))
    admin_commands = _Commands(admin_parser.add_subparsers(dest="admin_command", required=True), formatter)
    admin_commands.add_parser(
        "set-password", parents=[common],
        help=tr("set the status page password (asked twice on a terminal, else read from stdin)"),
    )
    notify_parser = commands.add_parser("notify", help=tr("mail and SNMP trap notifications"))
    notify_commands = _Commands(notify_parser.add_subparsers(dest="notify_command", required=True),
                                formatter)
    notify_test = notify_commands.add_parser("test", parents=[common],
                                             help=tr("send a test message on each configured channel"))
    notify_test.add_argument("--mail", action="store_true", help=tr("only mail"))
    notify_test.add_argument("--trap", action="store_true", help=tr("only SNMP traps"))
    notify_log = notify_commands.add_parser("log", parents=[common],
                                            help=tr("delivery attempts, newest first"))
    notify_log.add_argument("--limit", type=int, default=50)
    trust_parser = commands.add_parser("trust", help=tr("what signatures proved before (SPEC 3.1)"))
    # trust's subcommands have no description (their help line shows only in ``trust --help``)
    trust_commands = _Commands(trust_parser.add_subparsers(dest="trust_command", required=True), formatter,
                               describe=False)
    trust_reset = trust_commands.add_parser(
        "reset", parents=[common], help=tr("forget that a component was signed (accept unsigned again)"))
    trust_reset.add_argument("ids", nargs="+", metavar="ID")
    trust_index = trust_commands.add_parser(
        "reset-index", parents=[common],
        help=tr("forget that a source signed its index (and the signed index kept from it)"))
    trust_index.add_argument("base_url", metavar="URL")
    trust_commands.add_parser("show", parents=[common], help=tr("signed components and sources"))
    fleet_parser = commands.add_parser("fleet", help=tr("the gateways sharing this database (SPEC 7)"))
    fleet_commands = _Commands(fleet_parser.add_subparsers(dest="fleet_command", required=True), formatter)
    fleet_commands.add_parser("status", parents=[common],
                              help=tr("every node: role, heartbeat, mirror URL, installed versions"))
    commands.add_parser("check", parents=[common], help=tr("ask the update sources now"))
    update = commands.add_parser("update", parents=[common], help=tr("manual update"))
    update.add_argument("--all", action="store_true", help=tr("every component with a newer version"))
    update.add_argument("ids", nargs="*", metavar="ID", help=component_ids)
    rollback = commands.add_parser("rollback", parents=[common], help=tr("roll back one generation"))
    rollback.add_argument("ids", nargs="+", metavar="ID", help=component_ids)
    commands.add_parser("status", parents=[common], help=tr("current state, without contacting sources"))
    logs = commands.add_parser("logs", parents=[common], help=tr("the update event log, newest first"))
    logs.add_argument("--kind", choices=("scheduled", "manual", "rollback"))
    logs.add_argument("--component")
    logs.add_argument("--outcome", choices=("success", "failure"))
    logs.add_argument("--since", help=tr("ISO date or date-time"))
    logs.add_argument("--limit", type=int, default=50)
    diagnose = commands.add_parser("diagnose", parents=[common],
                                   help=tr("troubleshoot the connection to the update source step by step"))
    diagnose.add_argument("--address", action="append", default=[], metavar="HOST=IP",
                          help=tr("an IP address to try when HOST does not resolve"))
    package = commands.add_parser("import", parents=[common],
                                  help=tr("install a component package obtained separately"))
    package.add_argument("file", type=Path,
                         help=tr("<id>-<version>.zip, or a raw pattern file such as lpt$vpn.697"))
    package.add_argument("--component", metavar="ID", help=component_ids)
    package.add_argument("--version", metavar="V")
    package.add_argument("--force", action="store_true",
                         help=tr("install even if not newer than the installed version"))
    run = commands.add_parser("run", parents=[common], help=tr("the daemon (scheduler and status page)"))
    run.add_argument("--once", action="store_true", help=tr("one scheduled update, then exit"))
    commands.add_parser("psql", parents=[common],
                        help=tr("open psql on the configured database as sa (no password to type)"))
    return parser


class _Commands:
    """Subcommands whose ``help`` line is also their description in ``COMMAND --help``
    (unless ``describe`` is false), formatted by ``formatter``."""

    def __init__(self, actions: Any, formatter: type[argparse.HelpFormatter], describe: bool = True) -> None:
        self.actions = actions
        self.formatter = formatter
        self.describe = describe

    def add_parser(self, name: str, **options: Any) -> argparse.ArgumentParser:
        if self.describe:
            options.setdefault("description", options.get("help"))
        options.setdefault("formatter_class", self.formatter)
        parser: argparse.ArgumentParser = self.actions.add_parser(name, **options)
        return parser


def _add_common_options(parser: argparse.ArgumentParser, tr: Translate,
                        given_before: argparse.ArgumentParser | None) -> None:
    """The options every command takes. On the main parser (``given_before``) they have
    their defaults; on the subcommands' copies they default to "not given"."""
    keep: dict[str, Any] = {} if given_before is not None else {"default": argparse.SUPPRESS}
    parser.add_argument("--json", action="store_true", help=tr("machine-readable output on stdout"),
                        **keep)
    parser.add_argument("--dsn", help=tr("PostgreSQL DSN (default: $IMSS_DSN, else the embedded database)"),
                        **keep)
    parser.add_argument("--root", help=tr("install root (default: $IMSS_ROOT or /opt/trend/imss)"), **keep)
    parser.add_argument("--state", help=tr("state directory (default: $IMSS_STATE or /var/lib/imss-updater)"),
                        **keep)
    parser.add_argument("--db-port", help=tr("embedded database port (default: $IMSS_DB_PORT or 5432)"),
                        **keep)
    parser.add_argument("--web", help=tr("status page host:port (default: $IMSS_WEB or 127.0.0.1:8445)"),
                        **keep)
    parser.add_argument("--lang", choices=LANGUAGES,
                        help=tr("language of the output for people (default: from LANG, e.g. ja_JP.UTF-8)"),
                        **keep)
    parser.add_argument("--node", help=tr("this gateway's name in the fleet"
                        " (default: $IMSS_NODE or the host name)"), **keep)
    parser.add_argument("--mirror", help=tr("host:port where this gateway serves the fleet's mirror"
                        " when it leads (default: $IMSS_MIRROR, else none)"), **keep)
    parser.add_argument("-v", "--verbose", action="count", help=tr("log to stderr (-vv: debug)"),
                        **({"default": 0} if given_before is not None else keep))
    parser.add_argument("--log-level", choices=sorted(logsetup.LEVELS), type=str.lower,
                        help=tr("log level (default: $IMSS_LOG_LEVEL, else info for run, quiet otherwise)"),
                        **keep)
