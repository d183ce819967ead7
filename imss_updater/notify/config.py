"""The typed notification settings, and the one loader that builds them from the
``Notification`` rows of ``tb_global_setting`` (SPEC section 4).

Like ``imss_updater.settings``, every bad value is reported at once. ``load`` also returns
usable settings when some rows are bad (each bad row falls back to its default), so that a
broken row never stops a failure notification from being queued; ``load_strict`` raises.
Rows beyond the SPEC (retry policy, timeouts, CA file, language, engine id) are optional,
and so are the flood-control rows (RepeatFailureHours, NotifyRecovery) of a database not yet
upgraded.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from imss_updater.i18n import N_, Reason
from imss_updater.notify import templates
from imss_updater.settings import SECRET_NAMES, SettingsError
from imss_updater.settings_values import (
    Invalid,
    Problem,
    parse_bool,
    parse_choice,
    parse_int,
    parse_optional_path,
    parse_seconds,
)

Rows = Mapping[tuple[str, str], str]
T = TypeVar("T")
SECTION = "Notification"
GROUPS = ("pattern", "engine", "spam")
OUTCOMES = ("success", "failure")
LANGUAGES = ("en", "ja")
SECURITY = ("none", "starttls", "ssl")
# IANA enterprise number reserved for documentation (RFC 5612); see imss_updater/data/IMSS-UPDATER-MIB.txt.
ENTERPRISE_NUMBER = 32473
DEFAULT_SNMP_PORT = 162


def row_prefix(group: str, outcome: str) -> str:
    """Given ("pattern", "failure"), return "PatternUpdateFailure" (the rows' name prefix)."""
    return f"{group.capitalize()}Update{outcome.capitalize()}"


@dataclass(frozen=True)
class MailConfig:
    host: str
    port: int
    security: str  # none, starttls, ssl
    user: str  # empty: no login
    password: str
    sender: str
    recipients: tuple[str, ...]
    timeout: float
    ca_file: str | None  # None: the system trust store

    def __repr__(self) -> str:  # never show the password
        return (
            f"MailConfig(host={self.host!r}, port={self.port}, security={self.security!r},"
            f" user={self.user!r}, password=***, sender={self.sender!r},"
            f" recipients={self.recipients!r})"
        )


@dataclass(frozen=True)
class Receiver:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TrapConfig:
    receivers: tuple[Receiver, ...]
    version: str  # 2c or 3
    community: str
    user: str
    auth_password: str
    priv_password: str
    engine_id: bytes  # our snmpEngineID: receivers of v3 traps configure it for the user
    notify_type: str  # trap or inform (inform: acknowledged, so a dead receiver is noticed)
    timeout: float
    retries: int

    def __repr__(self) -> str:  # never show the community or the passwords
        return (
            f"TrapConfig(receivers={self.receivers!r}, version={self.version!r}, community=***,"
            f" user={self.user!r}, auth_password=***, priv_password=***,"
            f" engine_id={self.engine_id.hex()}, notify_type={self.notify_type!r})"
        )


@dataclass(frozen=True)
class Rule:
    mail: bool
    trap: bool
    subject: str
    message: str


@dataclass(frozen=True)
class NotifySettings:
    mail: MailConfig | None  # None: no relay configured (SMTPServer empty) or it is unusable
    trap: TrapConfig | None  # None: no receiver configured (SNMPServer empty) or unusable
    rules: Mapping[tuple[str, str], Rule]  # (group, outcome) -> what to send
    language: str  # en or ja: names, result words, and defaults for empty templates
    max_attempts: int
    retry_backoff: float  # seconds before the 2nd attempt; doubled each time, at most 1 hour
    host: str
    mail_problems: tuple[Problem, ...] = field(default=())
    trap_problems: tuple[Problem, ...] = field(default=())
    repeat_failure_hours: int = 24  # the same failure is sent again after this long; 0: every run
    notify_recovery: bool = True  # the first success after a notified failure is notified

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line or in the attempt log."""
        found: list[str] = []
        if self.mail is not None and self.mail.password:
            found.append(self.mail.password)
        if self.trap is not None:
            found += [self.trap.community, self.trap.auth_password, self.trap.priv_password]
        return tuple(secret for secret in found if secret)


class _Reader:
    """Reads typed values of one section, collecting every problem instead of stopping."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.problems: list[Problem] = []

    def raw(self, name: str, default: str | None = None) -> str:
        """Return the row's value; a missing row is a problem unless ``default`` is given."""
        value = self.rows.get((SECTION, name))
        if value is None:
            if default is None:
                self.problems.append(Problem(SECTION, name, "missing row (run `imss-updater db init`)",
                                             reason=Reason(N_("missing row (run `imss-updater db init`)"))))
                return ""
            return default
        return value

    def typed(self, name: str, convert: Callable[[str], T], fallback: T, default: str | None = None) -> T:
        """Return the converted value; on a problem record it and return ``fallback``."""
        if (SECTION, name) not in self.rows and default is None:
            self.raw(name)  # records the missing row
            return fallback
        value = self.raw(name, default)
        try:
            return convert(value.strip())
        except ValueError as error:
            shown = "***" if (SECTION, name) in SECRET_NAMES else repr(value)
            why = error.reason if isinstance(error, Invalid) else str(error)
            self.problems.append(Problem(SECTION, name, f"{error} (value {shown})", reason=Reason(
                N_("%(why)s (value %(value)s)"), {"why": why, "value": shown})))
            return fallback

    def take(self) -> list[Problem]:
        taken, self.problems = self.problems, []
        return taken


def _reason_of(error: ValueError) -> Reason | None:
    return error.reason if isinstance(error, Invalid) else None


def parse_address(text: str) -> str:
    """Return ``text`` if it looks like a mail address (one @, no spaces), else raise ValueError."""
    local, at, domain = text.partition("@")
    if not at or not local or not domain or any(ch.isspace() or ch in ",;<>" for ch in text):
        raise Invalid(N_("not a mail address: %(text)s"), text=repr(text))
    return text


def parse_addresses(text: str) -> tuple[str, ...]:
    addresses = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not addresses:
        raise Invalid(N_("no recipient"))
    return tuple(parse_address(address) for address in addresses)


def parse_receivers(text: str) -> tuple[Receiver, ...]:
    """Given ``host[:port], [v6addr]:port, ...``, return the receivers (port 162 by default)."""
    receivers: list[Receiver] = []
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        host, port_text = part, ""
        if part.startswith("["):
            host, _bracket, rest = part[1:].partition("]")
            port_text = rest[1:] if rest.startswith(":") else ""
        elif part.count(":") == 1:
            host, _colon, port_text = part.partition(":")
        port = parse_int(1, 65535)(port_text) if port_text else DEFAULT_SNMP_PORT
        if not host or any(ch.isspace() for ch in host):
            raise Invalid(N_("not a host[:port]: %(text)s"), text=repr(part))
        receivers.append(Receiver(host, port))
    if not receivers:
        raise Invalid(N_("no receiver"))
    return tuple(dict.fromkeys(receivers))


def parse_engine_id(text: str) -> bytes:
    cleaned = text.lower().removeprefix("0x").replace(":", "")
    try:
        value = bytes.fromhex(cleaned)
    except ValueError:
        raise Invalid(N_("must be hexadecimal (5 to 32 octets)")) from None
    if not 5 <= len(value) <= 32:
        raise Invalid(N_("must be 5 to 32 octets"))
    return value


def default_engine_id(host: str) -> bytes:
    """Return a stable RFC 3411 snmpEngineID for ``host``: enterprise number, format 5
    (octets), and 8 octets of SHA-256 of the host name."""
    prefix = (0x80000000 | ENTERPRISE_NUMBER).to_bytes(4, "big")
    return prefix + b"\x05" + hashlib.sha256(host.encode("utf-8")).digest()[:8]


def load(rows: Rows, *, host: str | None = None) -> tuple[NotifySettings, list[Problem]]:
    """Given the rows of ``tb_global_setting``, return the notification settings and every
    problem found. A bad rule row falls back to its SPEC default (failure: yes, success: no);
    a bad mail or trap row makes that channel unusable (``mail``/``trap`` None, with its
    problems in ``mail_problems``/``trap_problems``)."""
    read = _Reader(rows)
    host_name = host or read.raw("HostName", "").strip() or socket.gethostname()
    language = read.typed("Language", parse_choice(LANGUAGES), "en", default="en")
    general = read.take()

    rules: dict[tuple[str, str], Rule] = {}
    for group in GROUPS:
        for outcome in OUTCOMES:
            prefix = row_prefix(group, outcome)
            wanted = outcome == "failure"
            subject = read.raw(f"{prefix}Subject")
            message = read.raw(f"{prefix}Message")
            defaults = templates.default_templates(language)[(group, outcome)]
            # A row left at the English default (sql/defaults.sql) follows Notification/Language.
            english_subject, english_message = templates.is_english_default(group, outcome, subject, message)
            rules[(group, outcome)] = Rule(
                mail=read.typed(f"{prefix}Mail", parse_bool, wanted),
                trap=read.typed(f"{prefix}Trap", parse_bool, wanted),
                subject=defaults[0] if english_subject or not subject.strip() else subject.strip(),
                message=defaults[1] if english_message or not message.strip() else message,
            )
    max_attempts = read.typed("MaxAttempts", parse_int(1, 100), 8, default="8")
    retry_backoff = read.typed("RetryBackoff", parse_seconds, 60.0, default="60")
    repeat_failure_hours = read.typed("RepeatFailureHours", parse_int(0, 8760), 24, default="24")
    notify_recovery = read.typed("NotifyRecovery", parse_bool, True, default="yes")
    general += read.take()

    mail: MailConfig | None = None
    server = read.raw("SMTPServer").strip()
    mail_config = MailConfig(
        host=server,
        port=read.typed("SMTPPort", parse_int(1, 65535), 25),
        security=read.typed("SMTPSecurity", parse_choice(SECURITY), "none"),
        user=read.raw("SMTPUser").strip(),
        password=read.raw("SMTPPassword"),  # verbatim: spaces may be part of it
        sender=read.raw("MailFrom").strip(),
        recipients=(),
        timeout=read.typed("SMTPTimeout", parse_seconds, 30.0, default="30"),
        ca_file=read.typed("SMTPCAFile", parse_optional_path, None, default=""),
    )
    recipients_text = read.raw("MailTo")
    mail_problems: list[Problem] = []
    if server:
        try:
            parse_address(mail_config.sender)
        except ValueError as error:
            read.problems.append(Problem(SECTION, "MailFrom", str(error), reason=_reason_of(error)))
        try:
            recipients = parse_addresses(recipients_text)
        except ValueError as error:
            read.problems.append(Problem(SECTION, "MailTo", str(error), reason=_reason_of(error)))
            recipients = ()
        mail_problems = read.take()
        if not mail_problems:
            mail = replace(mail_config, recipients=recipients)
    else:
        general += read.take()  # bad values of an unused channel: reported, harmless

    trap: TrapConfig | None = None
    receivers_text = read.raw("SNMPServer").strip()
    version = read.typed("SNMPVersion", parse_choice(("2c", "3")), "2c")
    community = read.raw("SNMPCommunity")
    user = read.raw("SNMPv3User").strip()
    auth_password = read.raw("SNMPv3AuthPassword")
    priv_password = read.raw("SNMPv3PrivPassword")
    engine_id = b""
    if read.raw("SNMPv3EngineID", "").strip():
        engine_id = read.typed("SNMPv3EngineID", parse_engine_id, b"", default="")
    notify_type = read.typed("SNMPNotifyType", parse_choice(("trap", "inform")), "trap", default="trap")
    timeout = read.typed("SNMPTimeout", parse_seconds, 5.0, default="5")
    retries = read.typed("SNMPRetries", parse_int(0, 10), 1, default="1")
    trap_problems: list[Problem] = []
    if receivers_text:
        try:
            receivers = parse_receivers(receivers_text)
        except ValueError as error:
            read.problems.append(Problem(SECTION, "SNMPServer", str(error), reason=_reason_of(error)))
            receivers = ()
        if version == "2c" and not community:
            read.problems.append(Problem(SECTION, "SNMPCommunity", "empty while SNMPVersion=2c",
                                         reason=Reason(N_("empty while SNMPVersion=2c"))))
        if version == "3":
            if not user:
                read.problems.append(Problem(SECTION, "SNMPv3User", "empty while SNMPVersion=3",
                                             reason=Reason(N_("empty while SNMPVersion=3"))))
            secrets = (("SNMPv3AuthPassword", auth_password), ("SNMPv3PrivPassword", priv_password))
            for name, secret in secrets:
                if len(secret) < 8:
                    short = N_("must be at least 8 characters (SNMPv3 USM)")
                    read.problems.append(Problem(SECTION, name, short, reason=Reason(short)))
        trap_problems = read.take()
        if not trap_problems:
            trap = TrapConfig(
                receivers=receivers, version=version, community=community, user=user,
                auth_password=auth_password, priv_password=priv_password,
                engine_id=engine_id or default_engine_id(host_name), notify_type=notify_type,
                timeout=timeout, retries=retries,
            )
    else:
        general += read.take()

    settings = NotifySettings(
        mail=mail, trap=trap, rules=rules, language=language, max_attempts=max_attempts,
        retry_backoff=retry_backoff, host=host_name, mail_problems=tuple(mail_problems),
        trap_problems=tuple(trap_problems), repeat_failure_hours=repeat_failure_hours,
        notify_recovery=notify_recovery,
    )
    return settings, [*general, *mail_problems, *trap_problems]


def load_strict(rows: Rows, *, host: str | None = None) -> NotifySettings:
    """Given the rows of ``tb_global_setting``, return NotifySettings.

    Raise SettingsError listing every missing or invalid notification row.
    """
    settings, problems = load(rows, host=host)
    if problems:
        raise SettingsError(problems)
    return settings


def validate_value(section: str, name: str, value: str, rows: Rows) -> None:
    """Raise SettingsError if setting ``section/name`` to ``value`` would break the
    notification settings (for ``config set``; only that row's own problems count)."""
    if section != SECTION:
        return
    changed = dict(rows)
    changed[(section, name)] = value
    _settings, problems = load(changed, host="localhost")
    own = [problem for problem in problems if problem.name == name]
    if own:
        raise SettingsError(own)
