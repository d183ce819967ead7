"""``/metrics``: the Prometheus exposition of one console, built with prometheus_client.

Each app has a registry of its own (never the process-wide default, so two consoles in one
process never mix): the state read from the database at scrape time (StateCollector, one
pooled connection per scrape), the daemon's in-process RunMetrics (durations, bytes,
restart failures), and the process and platform collectors. The names are stable: the
README lists each with its labels. No setting value or reason text is shown (the page is
open without a log-on), only states, versions, times and counts; a source is named by its
base URL without any user name or password in it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from imss_updater import settings_check
from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import ComponentState, Database, DatabaseError, RunStatus
from imss_updater.settings import SettingsError, load
from imss_updater.settings_values import parse_date_or_empty, parse_url
from imss_updater.store import lock
from imss_updater.versions import ABSENT_DISPLAY, Version, VersionError
from imss_updater.web import queries
from imss_updater.web.context import Console

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
NOTIFICATION_CHANNELS = ("mail", "trap")
NOTIFICATION_FAILURES = ("retry", "failed")
UPDATE_OUTCOMES = ("success", "failure")
LICENSES = ("Antivirus", "Antispam")
SOURCE_ROWS = {SourceRole.UPDATE: "UpdateServer", SourceRole.TMASE: "TMASEServerurl"}
REGISTRY_KEY = "imss_metrics_registry"
_registry_lock = threading.Lock()


def settings_valid(database: Database) -> bool:
    """True when the settings are valid and usable (unusable files count as invalid)."""
    return not settings_check.problems(database.settings_rows(), [c.id for c in database.catalog()])


def exposition(context: Console, extensions: dict[str, object]) -> bytes:
    """Return the text exposition of the app whose ``extensions`` dict holds its registry."""
    with _registry_lock:
        registry = extensions.get(REGISTRY_KEY)
        if not isinstance(registry, CollectorRegistry):
            registry = registry_for(context)
            extensions[REGISTRY_KEY] = registry
    return generate_latest(registry)


def registry_for(context: Console) -> CollectorRegistry:
    """A registry of this console's own: database state, run metrics, process, platform."""
    registry = CollectorRegistry(auto_describe=False)  # never scrape the database to register
    registry.register(StateCollector(context))
    registry.register(context.config.metrics)
    ProcessCollector(namespace="", registry=registry)
    PlatformCollector(registry=registry)
    return registry


def display(raw: str | None) -> str:
    """A version as people read it (15.697.00, 21.0.1008); empty when there is none."""
    if not raw:
        return ""
    try:
        return Version.parse(raw).display
    except VersionError:
        return raw


def shown_source(url: str) -> str:
    """The base URL without user name, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def build_version() -> str:
    try:
        return importlib.metadata.version("imss-updater")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class _Snapshot:
    catalog: list[Component]
    states: dict[str, ComponentState]
    run: RunStatus
    rows: dict[tuple[str, str], str]
    failures: dict[str, int]
    updates: dict[tuple[str, str], int]
    notification_failures: dict[tuple[str, str], int]


def _read(database: Database) -> _Snapshot:
    catalog = database.catalog()
    return _Snapshot(
        catalog=catalog,
        states=database.component_states(),
        run=database.run_status(),
        rows=database.settings_rows(),
        failures=queries.failure_counts(database),
        updates=queries.update_counts(database),
        notification_failures=queries.notification_failure_counts(database),
    )


def _seconds(moment: datetime.datetime | None) -> float | None:
    return moment.timestamp() if moment else None


def _gauge(name: str, help_text: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text)
    if value is not None:
        family.add_metric([], value)
    return family


class StateCollector(Collector):
    """What the database says at scrape time (and whether the download lock is held)."""

    def __init__(self, context: Console) -> None:
        self.context = context

    def collect(self) -> Iterable[Metric]:
        build = GaugeMetricFamily("imss_build_info", "The version of imss-updater serving this page.",
                                  labels=["version"])
        build.add_metric([build_version()], 1)
        yield build
        held = lock.lock_holder(self.context.config.root) is not None
        yield _gauge("imss_download_lock_held", "1 while a process holds the download lock.", int(held))
        try:
            with self.context.pool.connection() as database:
                snapshot = _read(database)
                valid = settings_valid(database)
        except DatabaseError:
            yield _gauge("imss_database_up", "1 if the database answered this scrape.", 0)
            return
        yield _gauge("imss_database_up", "1 if the database answered this scrape.", 1)
        yield from _components(snapshot)
        yield from _counts(snapshot)
        yield from _run(snapshot.run, valid)
        yield from _licenses(snapshot.rows)
        yield from _sources(snapshot)
        yield _services(self.context, snapshot)


def _components(snapshot: _Snapshot) -> Iterable[Metric]:
    info = GaugeMetricFamily(
        "imss_component_info",
        "Installed (current) and available version per component, as displayed"
        " (available: Unknown when the source could not say, 0.0 when it does not carry it).",
        labels=["component", "current", "available"])
    pending = GaugeMetricFamily(
        "imss_update_available",
        "1 when the source offers a version newer than the installed one.", labels=["component"])
    stale = GaugeMetricFamily(
        "imss_stale", "1 when the component has not been updated for longer than its Staleness row.",
        labels=["component"])
    success = GaugeMetricFamily(
        "imss_component_last_success_timestamp_seconds",
        "Time of the last successful update of the component.", labels=["component"])
    for component in snapshot.catalog:
        state = snapshot.states.get(component.id)
        current = display(state.current_version if state else None)
        if state is None or state.available_status == "unknown":
            available = "Unknown"
        elif state.available_status == "absent":
            available = ABSENT_DISPLAY
        else:
            available = display(state.available_version)
        info.add_metric([component.id, current, available], 1)
        pending.add_metric([component.id], int(_newer(state)))
        stale.add_metric([component.id], int(bool(state and state.stale)))
        if state is not None and state.last_success_at is not None:
            success.add_metric([component.id], state.last_success_at.timestamp())
    yield from (info, pending, stale, success)


def _newer(state: ComponentState | None) -> bool:
    if state is None or state.available_status != "known" or not state.available_version:
        return False
    try:
        offered = Version.parse(state.available_version)
        return not state.current_version or offered > Version.parse(state.current_version)
    except VersionError:
        return False


def _counts(snapshot: _Snapshot) -> Iterable[Metric]:
    updates = CounterMetricFamily(
        "imss_updates",
        "Scheduled and manual update events per component and outcome (success, failure), from"
        " the event log (older events leave it with Log/RetentionDays).",
        labels=["component", "outcome"])
    failures = CounterMetricFamily(
        "imss_update_failures", "Failed update or rollback events per component, from the event log.",
        labels=["component"])
    for component in snapshot.catalog:
        for outcome in UPDATE_OUTCOMES:
            updates.add_metric([component.id, outcome], snapshot.updates.get((component.id, outcome), 0))
        failures.add_metric([component.id], snapshot.failures.get(component.id, 0))
    notifications = CounterMetricFamily(
        "imss_notification_failures",
        "Failed notification delivery attempts per channel; outcome retry: tried again later,"
        " failed: given up.", labels=["channel", "outcome"])
    for channel in NOTIFICATION_CHANNELS:
        for outcome in NOTIFICATION_FAILURES:
            count = snapshot.notification_failures.get((channel, outcome), 0)
            notifications.add_metric([channel, outcome], count)
    yield from (updates, failures, notifications)


def _flag(value: bool | None) -> float | None:
    return None if value is None else int(value)


def _run(run: RunStatus, valid: bool) -> Iterable[Metric]:
    yield _gauge("imss_last_check_timestamp_seconds", "Time of the last check of the sources.",
                 _seconds(run.last_check_at))
    yield _gauge("imss_last_check_success", "1 if the last check reached every source.",
                 _flag(run.last_check_ok))
    yield _gauge("imss_last_run_timestamp_seconds", "Time of the last update or rollback run.",
                 _seconds(run.last_run_at))
    yield _gauge("imss_last_run_success", "1 if the last run succeeded.", _flag(run.last_run_ok))
    yield _gauge("imss_settings_valid",
                 "1 if the settings are valid and usable (the files they name are readable PEM).", int(valid))
    yield _gauge("imss_next_run_timestamp_seconds",
                 "When the daemon plans the next scheduled run (absent: the schedule is off).",
                 _seconds(run.next_run_at))
    yield _gauge("imss_heartbeat_timestamp_seconds",
                 "The daemon's last heartbeat (its loop writes one at least every 30 seconds).",
                 _seconds(run.daemon_heartbeat))


def _licenses(rows: Mapping[tuple[str, str], str]) -> Iterable[Metric]:
    family = GaugeMetricFamily(
        "imss_license_expiry_timestamp_seconds",
        "When the licence stops being active: local midnight after its expiry date (absent: not"
        " activated).", labels=["license"])
    for name in LICENSES:
        try:
            expiry = parse_date_or_empty(rows.get(("License", name), "").strip())
        except ValueError:
            continue  # imss_settings_valid says so
        if expiry is not None:
            end = datetime.datetime.combine(expiry + datetime.timedelta(days=1), datetime.time())
            family.add_metric([name], end.astimezone().timestamp())
    yield family


def _sources(snapshot: _Snapshot) -> Iterable[Metric]:
    """Per configured base URL: 1 when its last check had its server.ini (some component of
    it known or absent), 0 when it did not; absent before its first check."""
    family = GaugeMetricFamily(
        "imss_source_up", "1 if the last check of the update source had its server.ini.", labels=["source"])
    by_source: dict[str, list[ComponentState]] = {}
    for component in snapshot.catalog:
        try:
            base = parse_url(snapshot.rows.get(("Update", SOURCE_ROWS[component.source]), "").strip())
        except ValueError:
            continue
        state = snapshot.states.get(component.id)
        checked = by_source.setdefault(shown_source(base), [])
        if state is not None and state.checked_at is not None:
            checked.append(state)
    for source, states in by_source.items():
        if states:
            family.add_metric([source], int(any(s.available_status != "unknown" for s in states)))
    yield family


def _services(context: Console, snapshot: _Snapshot) -> GaugeMetricFamily:
    """Per service: 1 running, 0 stopped (its status command exited non-zero); absent when
    unknown (no command set, it cannot run, or the settings are invalid). Answers are the
    console's cached ones (ServiceCache), so a scrape runs a status script at most every 30 s."""
    family = GaugeMetricFamily(
        "imss_service_running", "1 if the service's status command says it runs, 0 if not "
        "(absent: unknown).", labels=["service"])
    try:
        settings = load(snapshot.rows, [component.id for component in snapshot.catalog])
    except SettingsError:
        return family  # imss_settings_valid says so
    for service, command in (("scan", settings.scan_status), ("policy", settings.policy_status)):
        running = context.services.state(command).running if command else None
        if running is not None:
            family.add_metric([service], int(running))
    return family
