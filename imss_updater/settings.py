"""The typed settings object, and the one loader that builds it from ``tb_global_setting``.

Rows come in as plain ``(section, name) -> value`` data; ``load`` checks every value it
uses (with the parsers of ``settings_values``) and reports every bad one at once (section,
name, why) in a SettingsError, so an administrator who broke three rows with psql learns
about all three from one message.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from imss_updater.i18n import N_, Reason
from imss_updater.settings_values import (
    Invalid,
    Problem,
    parse_bool,
    parse_choice,
    parse_command,
    parse_components,
    parse_date_or_empty,
    parse_days_or_never,
    parse_host_list,
    parse_int,
    parse_minute,
    parse_optional_command,
    parse_optional_path,
    parse_seconds,
    parse_time,
    parse_url,
    proxy_host_problem,
    proxy_port_problem,
)

# What callers import from here (the value parsers and Problem live in settings_values).
__all__ = [
    "FREQUENCIES",
    "SECRET_NAMES",
    "SIGNATURE_MODES",
    "WEEKDAYS",
    "Invalid",
    "Problem",
    "ProxyConfig",
    "Rows",
    "Settings",
    "SettingsError",
    "load",
    "parse_bool",
    "parse_choice",
    "parse_command",
    "parse_components",
    "parse_date_or_empty",
    "parse_days_or_never",
    "parse_host_list",
    "parse_int",
    "parse_minute",
    "parse_optional_command",
    "parse_optional_path",
    "parse_seconds",
    "parse_time",
    "parse_url",
    "proxy_host_problem",
    "proxy_port_problem",
]

Rows = Mapping[tuple[str, str], str]
T = TypeVar("T")

FREQUENCIES = ("15min", "hourly", "daily", "weekly")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
SIGNATURE_MODES = ("yes", "auto", "no")
SECRET_NAMES = frozenset(
    {
        ("Proxy", "ProxyPassword"),
        ("Notification", "SMTPPassword"),
        ("Notification", "SNMPv3AuthPassword"),
        ("Notification", "SNMPv3PrivPassword"),
        ("Notification", "SNMPCommunity"),
        ("Admin", "PasswordHash"),
    }
)


class SettingsError(ValueError):
    """One or more settings rows are missing or invalid; ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("invalid settings: " + "; ".join(str(problem) for problem in problems))


@dataclass(frozen=True)
class ProxyConfig:
    host: str
    port: int
    user: str
    password: str

    def __repr__(self) -> str:  # never show the password, even in a debugging dump
        return f"ProxyConfig(host={self.host!r}, port={self.port}, user={self.user!r}, password=***)"


@dataclass(frozen=True)
class Settings:
    update_server: str
    tmase_server: str
    proxy: ProxyConfig | None  # set only when UseProxySetting=yes
    scheduled_update: bool
    schedule_frequency: str
    schedule_minute: int
    schedule_time: datetime.time
    schedule_weekday: str
    random_delay_seconds: int  # each scheduled run waits a random 0..N s (spreads gateways)
    scheduled_components: tuple[str, ...]
    licenses: Mapping[str, datetime.date | None]  # license name -> expiry (None: not activated)
    features: Mapping[str, bool]  # Scan/<name> switches
    ca_file: str | None
    verify_signature: str
    signature_ca_file: str | None
    max_download_bytes: int
    connect_timeout: float
    read_timeout: float
    retry_count: int
    retry_backoff: float
    scan_restart: tuple[str, ...]
    policy_restart: tuple[str, ...]
    restart_timeout: float
    stale_after_days: Mapping[str, int | None]  # component id -> days (None: never stale)
    # Rows added after the first release (a database not yet upgraded by `db init` gets
    # these defaults instead of failing validation):
    verify_index_signature: str = "auto"  # SPEC 3.1: yes / auto / no
    low_speed_bytes: int = 1024  # fail a transfer when fewer bytes than this arrive ...
    low_speed_seconds: float = 60.0  # ... in this many seconds (curl --speed-limit/--speed-time)
    index_deadline: float = 120.0  # total time allowed for one server.ini fetch
    download_deadline: float = 3600.0  # total time allowed for one package download
    scan_status: tuple[str, ...] = ()  # exit 0 = the scan service is running
    policy_status: tuple[str, ...] = ()
    retention_days: int = 180  # events, notifications and attempts older than this are deleted
    allowed_hosts: tuple[str, ...] = ()  # extra host names the status page answers to
    fleet_enabled: bool = False
    fleet_stagger_seconds: int = 900
    fleet_failover_seconds: int = 60
    fleet_fallback_minutes: int = 60

    def license_active(self, license_name: str, today: datetime.date) -> bool:
        """Return True when ``license_name`` is activated and not expired on ``today``."""
        expiry = self.licenses.get(license_name)
        return expiry is not None and expiry >= today

    def feature_enabled(self, feature: str | None) -> bool:
        return feature is None or self.features.get(feature, False)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line."""
        return (self.proxy.password,) if self.proxy and self.proxy.password else ()


class _Reader:
    """Reads typed values from rows, collecting every problem instead of stopping."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.problems: list[Problem] = []

    def raw(self, section: str, name: str) -> str | None:
        value = self.rows.get((section, name))
        if value is None:
            self.problems.append(Problem(section, name, "missing row (run `imss-updater db init`)",
                                         reason=Reason(N_("missing row (run `imss-updater db init`)"))))
        return value

    def typed(
        self,
        section: str,
        name: str,
        convert: Callable[[str], T],
        fallback: T,
        *,
        default_when_missing: bool = False,
    ) -> T:
        """Return the converted value of a row; record a problem and return ``fallback`` when
        it is invalid or missing (a missing row is no problem with ``default_when_missing``)."""
        if default_when_missing and (section, name) not in self.rows:
            return fallback
        value = self.raw(section, name)
        if value is None:
            return fallback
        try:
            return convert(value.strip())
        except ValueError as error:
            shown = _shown(section, name, value)
            why = error.reason if isinstance(error, Invalid) else str(error)
            self.problems.append(Problem(section, name, f"{error} (value {shown})", reason=Reason(
                N_("%(why)s (value %(value)s)"), {"why": why, "value": shown})))
            return fallback


def _shown(section: str, name: str, value: str) -> str:
    return "***" if (section, name) in SECRET_NAMES else repr(value)


def load(rows: Rows, known_components: Iterable[str]) -> Settings:
    """Given the rows of ``tb_global_setting`` and the catalog's component ids, return Settings.

    Raise SettingsError listing every missing or invalid row the updater uses.
    """
    known_components = tuple(known_components)
    read = _Reader(rows)
    update_server = read.typed("Update", "UpdateServer", parse_url, "")
    tmase_server = read.typed("Update", "TMASEServerurl", parse_url, "")
    use_proxy = read.typed("Update", "UseProxySetting", parse_bool, False)
    proxy = None
    proxy_host = (read.raw("Proxy", "ProxyHost") or "").strip()
    proxy_port_text = (read.raw("Proxy", "ProxyPort") or "").strip()
    proxy_user = read.raw("Proxy", "ProxyUser") or ""
    proxy_password = read.raw("Proxy", "ProxyPassword") or ""
    if use_proxy:
        host_problem = proxy_host_problem(proxy_host)
        if host_problem is not None:
            read.problems.append(host_problem)
        port_problem = proxy_port_problem(proxy_port_text)
        if port_problem is not None:
            read.problems.append(port_problem)
        proxy_port = int(proxy_port_text) if port_problem is None else 0
        proxy = ProxyConfig(proxy_host, proxy_port, proxy_user, proxy_password)
    licenses = {
        name: read.typed("License", name, parse_date_or_empty, None)
        for name in ("Antivirus", "Antispam")
    }
    features = {
        name: read.typed("Scan", name, parse_bool, False) for name in ("ATSEEnabled", "SmartScanEnabled")
    }
    max_megabytes = read.typed("Update", "MaxDownloadMB", parse_int(1, 1024 * 1024), 1024)
    settings = Settings(
        update_server=update_server,
        tmase_server=tmase_server,
        proxy=proxy,
        scheduled_update=read.typed("Update", "ScheduledUpdate", parse_bool, True),
        schedule_frequency=read.typed("Update", "ScheduleFrequency", parse_choice(FREQUENCIES), "15min"),
        schedule_minute=read.typed("Update", "ScheduleMinute", parse_minute, 0),
        schedule_time=read.typed("Update", "ScheduleTime", parse_time, datetime.time(3, 0)),
        schedule_weekday=read.typed("Update", "ScheduleWeekday", parse_choice(WEEKDAYS), "sun"),
        random_delay_seconds=read.typed("Update", "RandomDelaySeconds", parse_int(0, 900), 120),
        scheduled_components=read.typed(
            "Update", "ScheduledComponents", parse_components(known_components), ()
        ),
        licenses=licenses,
        features=features,
        ca_file=read.typed("Update", "CAFile", parse_optional_path, None),
        verify_signature=read.typed("Update", "VerifySignature", parse_choice(SIGNATURE_MODES), "yes"),
        signature_ca_file=read.typed("Update", "SignatureCAFile", parse_optional_path, None),
        max_download_bytes=max_megabytes * 1024 * 1024,
        connect_timeout=read.typed("Update", "ConnectTimeout", parse_seconds, 15.0),
        read_timeout=read.typed("Update", "ReadTimeout", parse_seconds, 60.0),
        retry_count=read.typed("Update", "RetryCount", parse_int(0, 10), 2),
        retry_backoff=read.typed("Update", "RetryBackoff", parse_seconds, 2.0),
        scan_restart=read.typed("Service", "ScanServiceRestart", parse_command, ()),
        policy_restart=read.typed("Service", "PolicyServiceRestart", parse_command, ()),
        restart_timeout=read.typed("Service", "RestartTimeout", parse_seconds, 120.0),
        stale_after_days={
            # A component added to the catalog later has no row yet: never stale until set.
            component_id: read.typed("Staleness", component_id, parse_days_or_never, None)
            if ("Staleness", component_id) in rows
            else None
            for component_id in known_components
        },
        # Rows added after the first release: their defaults when a database lacks them.
        verify_index_signature=read.typed("Update", "VerifyIndexSignature", parse_choice(SIGNATURE_MODES),
                                          "auto", default_when_missing=True),
        low_speed_bytes=read.typed("Update", "LowSpeedBytes", parse_int(0, 1 << 30), 1024,
                                   default_when_missing=True),
        low_speed_seconds=read.typed("Update", "LowSpeedSeconds", parse_seconds, 60.0,
                                     default_when_missing=True),
        index_deadline=read.typed("Update", "IndexDeadlineSeconds", parse_seconds, 120.0,
                                  default_when_missing=True),
        download_deadline=read.typed("Update", "DownloadDeadlineSeconds", parse_seconds, 3600.0,
                                     default_when_missing=True),
        scan_status=read.typed("Service", "ScanServiceStatus", parse_optional_command, (),
                               default_when_missing=True),
        policy_status=read.typed("Service", "PolicyServiceStatus", parse_optional_command, (),
                                 default_when_missing=True),
        retention_days=read.typed("Log", "RetentionDays", parse_int(1, 36500), 180,
                                  default_when_missing=True),
        allowed_hosts=read.typed("Web", "AllowedHosts", parse_host_list, (), default_when_missing=True),
        fleet_enabled=read.typed("Fleet", "Enabled", parse_bool, False, default_when_missing=True),
        fleet_stagger_seconds=read.typed("Fleet", "StaggerSeconds", parse_int(0, 86400), 900,
                                         default_when_missing=True),
        fleet_failover_seconds=read.typed("Fleet", "FailoverSeconds", parse_int(5, 3600), 60,
                                          default_when_missing=True),
        fleet_fallback_minutes=read.typed("Fleet", "FallbackMinutes", parse_int(1, 10080), 60,
                                          default_when_missing=True),
    )
    if read.problems:
        raise SettingsError(read.problems)
    return settings
