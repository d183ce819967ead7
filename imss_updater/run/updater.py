"""The update run: check -> plan -> lock -> fetch and verify -> install -> restart -> record.

This module orders the steps and isolates each component's failure; the decisions are
in ``planner``, and every external effect goes through its own module (``http``,
``signature``, ``install``, ``lock``, ``process``, ``db``).
"""

from __future__ import annotations

import datetime
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imss_updater import messages, process
from imss_updater.catalog import Component, SourceRole
from imss_updater.database.db import ComponentState, Database, DatabaseError, NewEvent
from imss_updater.run.planner import (
    Availability,
    Decision,
    Mode,
    Offer,
    Restarts,
    decide,
    is_stale,
    is_update_available,
    offers_from_indexes,
    restarts_for,
)
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.source import serverini, signature
from imss_updater.source.http import FetchError, HttpClient, HttpOptions, ProxySettings
from imss_updater.store import install, lock
from imss_updater.versions import Version, VersionError

log = logging.getLogger(__name__)

INDEX_NAME = "server.ini"
MAX_INDEX_BYTES = 4 << 20
MAX_SIGNATURE_BYTES = 1 << 20
UNPACKED_FACTOR = 4  # an archive may unpack to at most this many times MaxDownloadMB

Progress = Callable[[str, str, int, int], None]
"""progress(component_id, phase, done, total): phases downloading, verifying, installing,
restarting, done, failed."""


class RunError(Exception):
    """A run could not start at all (settings invalid, lock busy); the message says why."""


class RunCancelled(RunError):
    """The daemon is stopping: the run stopped at a safe point and cleaned up after itself."""

    def __init__(self) -> None:
        super().__init__("the update was interrupted because the updater is stopping")


@dataclass(frozen=True)
class ComponentReport:
    """One component as ``check`` and ``status`` show it."""

    id: str
    name: str
    name_ja: str
    kind: str
    current: str | None
    previous: str | None
    available: str | None  # display text, "0.0" when not offered, None when Unknown
    update_available: bool
    licensed: bool
    enabled: bool
    scheduled: bool
    unsigned: bool
    available_reason: str | None
    checked_at: datetime.datetime | None
    last_success_at: datetime.datetime | None
    stale: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "name_ja": self.name_ja,
            "kind": self.kind,
            "current": self.current,
            "previous": self.previous,
            "available": self.available,
            "update_available": self.update_available,
            "licensed": self.licensed,
            "enabled": self.enabled,
            "scheduled": self.scheduled,
            "unsigned": self.unsigned,
            "available_reason": self.available_reason,
            "checked_at": _iso(self.checked_at),
            "last_success_at": _iso(self.last_success_at),
            "stale": self.stale,
        }


@dataclass(frozen=True)
class Outcome:
    component: str
    version: str | None
    ok: bool
    message: str
    reason: str | None = None


@dataclass
class RunReport:
    kind: str
    outcomes: list[Outcome] = field(default_factory=list)
    restarts: Restarts = field(default_factory=lambda: Restarts(False, False))
    restart_error: str | None = None
    up_to_date: bool = False

    @property
    def ok(self) -> bool:
        return self.restart_error is None and all(outcome.ok for outcome in self.outcomes)

    def summary(self) -> str:
        if self.up_to_date and not self.outcomes:
            return "All components are up to date."
        done = sum(1 for outcome in self.outcomes if outcome.ok)
        failed = len(self.outcomes) - done
        text = f"{done} succeeded, {failed} failed"
        if self.restart_error:
            text += f"; restart failed: {self.restart_error}"
        return text

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "summary": self.summary(),
            "restarted": {"scan": self.restarts.scan, "policy": self.restarts.policy},
            "restart_error": self.restart_error,
            "results": [
                {
                    "component": outcome.component,
                    "version": outcome.version,
                    "outcome": "success" if outcome.ok else "failure",
                    "message": outcome.message,
                    "reason": outcome.reason,
                }
                for outcome in self.outcomes
            ],
        }


class ComponentFailure(Exception):
    """One component could not be updated; ``reason`` is the one-line cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def is_control_manager(base_url: str) -> bool:
    """Return True for a Control Manager source (``.../TvcsDownload/ActiveUpdate``)."""
    return "/tvcsdownload/" in base_url.lower() + "/"


def http_options(settings: Settings) -> HttpOptions:
    proxy = None
    if settings.proxy is not None:
        proxy = ProxySettings(
            settings.proxy.host, settings.proxy.port, settings.proxy.user, settings.proxy.password
        )
    return HttpOptions(
        ca_file=settings.ca_file,
        proxy=proxy,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=settings.retry_count,
        backoff=settings.retry_backoff,
    )


class Updater:
    """Runs checks, updates and rollbacks for one install root against one database."""

    def __init__(
        self,
        database: Database,
        root: Path,
        *,
        progress: Progress | None = None,
        today: Callable[[], datetime.date] = datetime.date.today,
        cancel: threading.Event | None = None,
        fallback_settings: Settings | None = None,
        unrecorded: list[NewEvent] | None = None,
    ) -> None:
        """``cancel``, when set, stops a run at the next safe point (between download chunks,
        between components, before restarting) with RunCancelled. ``fallback_settings`` are
        used when the rows fail validation (the daemon's last good settings); the problem is
        kept in ``settings_problem``. Failure events that cannot be written because the
        database is down are appended to ``unrecorded`` for the caller to write later.
        """
        self.database = database
        self.root = root
        self._progress = progress or (lambda *_args: None)
        self.today = today
        self.cancel = cancel or threading.Event()
        self.fallback_settings = fallback_settings
        self.settings_problem: str | None = None
        self.unrecorded = unrecorded if unrecorded is not None else []

    def progress(self, component_id: str, phase: str, done: int, total: int) -> None:
        """Report progress, and stop here if the daemon is stopping."""
        self._progress(component_id, phase, done, total)
        if self.cancel.is_set() and phase not in ("done", "failed"):
            raise RunCancelled()

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> tuple[list[Component], Settings]:
        """Return the catalog and the settings, read fresh from the database.

        Raise SettingsError (every bad row at once) if the settings are invalid.
        """
        catalog = self.database.catalog()
        try:
            settings = load(self.database.settings_rows(), [component.id for component in catalog])
        except SettingsError as error:
            if self.fallback_settings is None:
                raise
            self.settings_problem = str(error)
            log.warning("using the last good settings: %s", error)
            return catalog, self.fallback_settings
        self.settings_problem = None
        return catalog, settings

    def store(self, component: Component) -> install.ComponentStore:
        return install.ComponentStore(self.root, component.id, component.live_path)

    def installed_versions(self, catalog: Sequence[Component]) -> dict[str, Version | None]:
        """Return what is on disk for each component (disk is the truth)."""
        versions: dict[str, Version | None] = {}
        for component in catalog:
            current = self.store(component).state().current
            versions[component.id] = _parse_or_none(current.version if current else None)
        return versions

    def status(self) -> list[ComponentReport]:
        """Return the components as last known, without contacting any source."""
        catalog = self.database.catalog()
        try:
            settings: Settings | None = load(
                self.database.settings_rows(), [component.id for component in catalog]
            )
        except ValueError as error:
            log.warning("%s", error)
            settings = None
        states = self.database.component_states()
        return [self._report(component, settings, states.get(component.id)) for component in catalog]

    def _report(
        self, component: Component, settings: Settings | None, state: ComponentState | None
    ) -> ComponentReport:
        current = _parse_or_none(state.current_version if state else None)
        previous = _parse_or_none(state.previous_version if state else None)
        available: str | None = None
        update_available = False
        if state is not None and state.available_status == Availability.ABSENT:
            available = "0.0"
        elif state is not None and state.available_status == Availability.KNOWN:
            offered = _parse_or_none(state.available_version)
            available = offered.display if offered else None
            update_available = offered is not None and (current is None or offered > current)
        today = self.today()
        return ComponentReport(
            id=component.id,
            name=component.name_en,
            name_ja=component.name_ja,
            kind=component.kind.value,
            current=current.display if current else None,
            previous=previous.display if previous else None,
            available=available,
            update_available=update_available,
            licensed=settings.license_active(component.license, today) if settings else False,
            enabled=settings.feature_enabled(component.feature) if settings else False,
            scheduled=component.id in settings.scheduled_components if settings else False,
            unsigned=state.unsigned if state else False,
            available_reason=state.available_reason if state else None,
            checked_at=state.checked_at if state else None,
            last_success_at=state.last_success_at if state else None,
            stale=state.stale if state else False,
        )

    def refresh_staleness(
        self, now: datetime.datetime
    ) -> list[tuple[Component, bool, datetime.datetime | None]]:
        """Flag components whose last successful update is older than their Staleness row
        (only those in use: licensed and enabled). Return (component, stale, last success)
        for each flag that changed, so the caller notifies once per change."""
        catalog, settings = self.load()
        states = self.database.component_states()
        today = self.today()
        changes = []
        for component in catalog:
            state = states.get(component.id)
            last_success = state.last_success_at if state else None
            stale = (
                settings.license_active(component.license, today)
                and settings.feature_enabled(component.feature)
                and is_stale(last_success, settings.stale_after_days.get(component.id), now)
            )
            if self.database.set_stale(component.id, stale):
                changes.append((component, stale, last_success))
                if stale:
                    log.warning("%s has not been updated since %s", component.name_en,
                                last_success.isoformat() if last_success else "never")
                else:
                    log.info("%s is current again", component.name_en)
        return changes

    # -- check -----------------------------------------------------------------------------

    def check(self) -> list[ComponentReport]:
        """Ask the update sources now, record what they offer, and return every component."""
        catalog, settings = self.load()
        with HttpClient(http_options(settings)) as client:
            self.fetch_offers(catalog, settings, client)
        return self.status()

    def base_url(self, component: Component, settings: Settings) -> str:
        if component.source is SourceRole.TMASE:
            return settings.tmase_server
        return settings.update_server

    def fetch_offers(
        self, catalog: Sequence[Component], settings: Settings, client: HttpClient
    ) -> dict[str, Offer]:
        """Fetch each distinct source's server.ini once (conditionally), record and return
        each component's Offer. An unreachable source makes its components Unknown."""
        base_urls = {component.id: self.base_url(component, settings) for component in catalog}
        indexes: dict[str, object] = {}
        for base in dict.fromkeys(base_urls.values()):
            indexes[base] = self._fetch_index(base, client)
        offers = offers_from_indexes(catalog, base_urls, indexes)
        for component in catalog:
            offer = offers[component.id]
            if offer.base_url and is_control_manager(offer.base_url) and not component.on_control_manager:
                # Control Manager never offers this component, whatever its server.ini says.
                offers[component.id] = Offer(Availability.ABSENT, base_url=offer.base_url)
        failures = sorted({str(index) for index in indexes.values() if isinstance(index, str)})
        self.database.record_availability(
            [
                (
                    component.id,
                    offers[component.id].entry.version.raw if offers[component.id].entry else None,  # type: ignore[union-attr]
                    offers[component.id].availability.value,
                    offers[component.id].reason,
                )
                for component in catalog
            ],
            ok=not failures,
            text="; ".join(failures) if failures else "update source reachable",
        )
        return offers

    def _fetch_index(self, base: str, client: HttpClient) -> serverini.SourceIndex | str:
        url = f"{base}/{INDEX_NAME}"
        cached = self.database.cached_index(url)
        try:
            result = client.fetch_index(
                url,
                etag=cached.etag if cached else None,
                last_modified=cached.last_modified if cached else None,
                max_bytes=MAX_INDEX_BYTES,
            )
        except FetchError as error:
            log.error("cannot read %s: %s", url, error.reason)
            return error.reason
        if result.not_modified and cached is not None:
            body = cached.body
        elif result.body is not None:
            body = result.body
        else:
            return f"{url}: empty answer"
        try:
            index = serverini.parse(body.decode("utf-8", errors="replace"))
        except serverini.ServerIniError as error:
            log.error("%s: %s", url, error)
            return f"{url}: {error}"
        if not result.not_modified:
            self.database.store_index(url, result.etag, result.last_modified, body)
        return index

    # -- update ----------------------------------------------------------------------------

    def update(self, mode: Mode, requested: Iterable[str] | None) -> RunReport:
        """Update what is newer: every scheduled component (``Mode.SCHEDULED``, requested
        None), or the requested ones (None: all) for a manual update.

        Raise RunError if the run cannot start (lock busy); SettingsError if the settings
        are invalid. Each component's failure is recorded and the others go on.
        """
        catalog, settings = self.load()
        known = {component.id for component in catalog}
        requested_ids = None if requested is None else list(dict.fromkeys(requested))
        unknown = [component_id for component_id in requested_ids or [] if component_id not in known]
        if unknown:
            raise RunError("unknown component(s): " + ", ".join(unknown))
        report = RunReport(kind=mode.value)
        with HttpClient(http_options(settings)) as client:
            offers = self.fetch_offers(catalog, settings, client)
            decisions = decide(
                catalog, settings, self.installed_versions(catalog), offers, mode,
                requested_ids, self.today(),
            )
            todo = [decision for decision in decisions if decision.update]
            pending = self.needs_reconcile(catalog)
            for decision in decisions:
                if decision.refused:
                    self._record_failure(report, mode.value, decision.component,
                                         offers[decision.component.id].version, decision.reason)
            if not todo and not pending:
                report.up_to_date = not report.outcomes
                self.database.record_run(mode.value, report.ok, report.summary())
                return report
            try:
                with lock.download_lock(self.root):
                    self._run_locked(report, mode, catalog, settings, client, offers, todo)
            except lock.LockBusy as error:
                log.warning("%s", error)
                self.database.record_run(mode.value, False, str(error))
                raise RunError(str(error)) from error
        self.database.record_run(mode.value, report.ok, report.summary())
        return report

    def needs_reconcile(self, catalog: Sequence[Component]) -> bool:
        """Return True when an earlier run left work behind: a restart still owed, or a disk
        state the database does not know (a crash between switching and recording)."""
        states = self.database.component_states()
        for component in catalog:
            state = states.get(component.id)
            if state is None or state.restart_pending:
                return True
            on_disk = self.store(component).state()
            current = on_disk.current_version
            previous = on_disk.previous_version
            if (current, previous) != (state.current_version, state.previous_version):
                return True
        return any(install.staging_root(self.root).glob("*"))

    def _run_locked(
        self,
        report: RunReport,
        mode: Mode,
        catalog: Sequence[Component],
        settings: Settings,
        client: HttpClient,
        offers: dict[str, Offer],
        todo: Sequence[Decision],
    ) -> None:
        pending = self.reconcile(catalog, mode.value)
        installed_now: list[Component] = []
        current = self.installed_versions(catalog)
        for decision in todo:
            component = decision.component
            offer = offers[component.id]
            if self.cancel.is_set():
                break  # what is installed so far still gets its restart below, or the next run's
            # Another process may have installed it between the plan and the lock.
            if not is_update_available(current.get(component.id), offer):
                continue
            try:
                self._fetch_verify_install(component, offer, settings, client, mode.value)
            except ComponentFailure as failure:
                self._record_failure(report, mode.value, component, offer.version, failure.reason)
                self.progress(component.id, "failed", 0, 0)
                continue
            except (RunCancelled, DatabaseError):
                raise
            except Exception as error:  # one component's bug must not stop the others
                log.debug("unexpected failure updating %s", component.id, exc_info=True)
                self._record_failure(report, mode.value, component, offer.version,
                                     f"internal error: {error}")
                continue
            installed_now.append(component)
            version = offer.version.display if offer.version else None
            report.outcomes.append(Outcome(component.id, version, True,
                                           messages.downloaded(component, version or "").en))
            self.progress(component.id, "done", 0, 0)
        if self.cancel.is_set():
            # Stopping: the installs are recorded with restart_pending; the next run restarts.
            raise RunCancelled()
        self.restart_and_settle(report, settings, catalog, installed_now, pending, mode.value)

    def _fetch_verify_install(
        self, component: Component, offer: Offer, settings: Settings, client: HttpClient, kind: str
    ) -> None:
        entry = offer.entry
        if entry is None or offer.base_url is None:
            raise ComponentFailure("nothing offered")
        if entry.size > settings.max_download_bytes:
            raise ComponentFailure(
                f"too large: {entry.size} bytes exceeds the limit of "
                f"{settings.max_download_bytes // (1024 * 1024)} MB (Update/MaxDownloadMB)"
            )
        try:
            url = serverini.payload_url(offer.base_url, entry.path)
            signature_url = serverini.payload_url(offer.base_url, serverini.signature_path(entry.path))
        except serverini.PathEscapeError as error:
            raise ComponentFailure(str(error)) from error
        staging = install.staging_root(self.root)
        token = uuid.uuid4().hex[:12]
        archive = staging / f"download-{component.id}-{token}.zip"
        signature_file = staging / f"download-{component.id}-{token}.sig"
        try:
            log.info("downloading %s %s from %s", component.id, entry.version.display, url)
            self.progress(component.id, "downloading", 0, entry.size)
            try:
                client.download(
                    url, archive, expected_size=entry.size, max_bytes=settings.max_download_bytes,
                    progress=lambda done, total: self.progress(component.id, "downloading", done, total),
                )
            except FetchError as error:
                raise ComponentFailure(error.reason) from error
            self.progress(component.id, "verifying", 0, 0)
            unsigned = self._verify(component, settings, client, archive, signature_file, signature_url)
            self.progress(component.id, "installing", 0, 0)
            self.install_archive(component, settings, archive, entry.version, unsigned=unsigned,
                                 kind=kind)
        finally:
            archive.unlink(missing_ok=True)
            signature_file.unlink(missing_ok=True)

    def install_archive(
        self,
        component: Component,
        settings: Settings,
        archive: Path,
        version: Version,
        *,
        unsigned: bool,
        kind: str,
        note: str | None = None,
    ) -> None:
        """Install a verified archive as the component's new generation and record it (state
        and success event in one transaction, restart still owed). Must run under the lock.
        Raise ComponentFailure with the reason if the install is refused or fails."""
        try:
            state = self.store(component).install(
                archive, version.raw, max_unpacked_bytes=settings.max_download_bytes * UNPACKED_FACTOR
            )
        except install.InstallError as error:
            raise ComponentFailure(error.reason) from error
        text = messages.downloaded(component, version.display)
        self.database.record_installed(
            component.id,
            state.current_version,
            state.previous_version,
            success=True,
            unsigned=unsigned,
            restart_pending=True,
            event=NewEvent(kind, component.id, version.display, "success", text.en, text.ja, note),
        )
        log.info("%s%s", text.en, f" ({note})" if note else "")

    def _verify(
        self,
        component: Component,
        settings: Settings,
        client: HttpClient,
        archive: Path,
        signature_file: Path,
        signature_url: str,
    ) -> bool:
        """Verify the archive's signature as VerifySignature asks; return True if unsigned."""
        if settings.verify_signature == "no":
            return True
        try:
            published = client.fetch_optional(signature_url, max_bytes=MAX_SIGNATURE_BYTES)
        except FetchError as error:
            raise ComponentFailure(f"cannot fetch the signature: {error.reason}") from error
        if published is None:
            if settings.verify_signature == "yes":
                raise ComponentFailure(
                    f"no signature published ({signature_url}) and Update/VerifySignature=yes"
                )
            log.warning("%s: no signature published; accepted unsigned (VerifySignature=auto)",
                        component.id)
            return True
        signature_file.write_bytes(published)
        trust = Path(settings.signature_ca_file) if settings.signature_ca_file else None
        try:
            signature.verify_detached(archive, signature_file, trust)
        except signature.SignatureError as error:
            raise ComponentFailure(error.reason) from error
        return False

    def restart_and_settle(
        self,
        report: RunReport,
        settings: Settings,
        catalog: Sequence[Component],
        installed_now: Sequence[Component],
        pending: Sequence[Component],
        kind: str,
    ) -> None:
        """Restart the services the changes need; if a restart fails, roll back this run's
        installs, restart again, and record the failure against each of them."""
        changed = list({component.id: component for component in [*pending, *installed_now]}.values())
        if not changed:
            return
        report.restarts = restarts_for(changed)
        error = self.restart(settings, report.restarts, [component.id for component in changed])
        if error is None:
            return
        report.restart_error = error
        for component in installed_now:
            store = self.store(component)
            try:
                state = store.rollback()
            except install.InstallError as rollback_error:
                reason = f"{error}; automatic rollback failed: {rollback_error.reason}"
                self._record_failure(report, kind, component, None, reason, replace=True)
                continue
            back_to = _display(state.current_version)
            attempted = next((o.version for o in report.outcomes if o.component == component.id), None)
            reason = f"{error}; rolled back to {back_to}"
            text = messages.update_failed(component, attempted, reason)
            self.database.record_installed(
                component.id,
                state.current_version,
                state.previous_version,
                success=False,
                restart_pending=True,
                event=NewEvent(kind, component.id, attempted, "failure", text.en, text.ja, reason),
            )
            report.outcomes = [o for o in report.outcomes if o.component != component.id]
            report.outcomes.append(Outcome(component.id, attempted, False, text.en, reason))
            log.error("%s", text.en)
        if installed_now:
            second = self.restart(settings, restarts_for(changed), [c.id for c in changed])
            if second is not None:
                report.restart_error = f"{error}; after rollback: {second}"

    def restart(self, settings: Settings, restarts: Restarts, component_ids: Sequence[str]) -> str | None:
        """Restart the scan service and, if asked, the policy service (one each).

        Return None on success, else the reason; clear the components' restart flags only
        when every restart succeeded.
        """
        steps = []
        if restarts.scan:
            steps.append(("scan", settings.scan_restart))
        if restarts.policy:
            steps.append(("policy", settings.policy_restart))
        for service, argv in steps:
            for component_id in component_ids:
                self.progress(component_id, "restarting", 0, 0)
            try:
                process.run(list(argv), timeout=settings.restart_timeout)
            except process.CommandError as error:
                reason = f"{service} service restart failed: {error.reason}"
                log.error("%s", reason)
                self.database.record_services(
                    **{"scan": None, "policy": None, service: f"failed: {error.reason}"}
                )
                return reason
            log.info("%s service restarted", service)
            stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            self.database.record_services(**{"scan": None, "policy": None, service: f"restarted {stamp}"})
        self.database.clear_restart_pending(component_ids)
        return None

    def _record_failure(
        self,
        report: RunReport,
        kind: str,
        component: Component,
        version: Version | None,
        reason: str,
        *,
        replace: bool = False,
    ) -> None:
        shown = version.display if version else None
        text = messages.update_failed(component, shown, reason)
        event = NewEvent(kind, component.id, shown, "failure", text.en, text.ja, reason)
        try:
            self.database.add_event(event)
        except DatabaseError as error:
            log.warning("event kept until the database is back: %s", error)
            self.unrecorded.append(event)
        if replace:
            report.outcomes = [o for o in report.outcomes if o.component != component.id]
        report.outcomes.append(Outcome(component.id, shown, False, text.en, reason))
        log.error("%s", text.en)

    # -- recovery --------------------------------------------------------------------------

    def reconcile(self, catalog: Sequence[Component], kind: str) -> list[Component]:
        """Repair the disk after an interrupted run and bring the database in line with it.

        Must be called under the download lock. Return the components whose services still
        need a restart (an install committed before a crash, or a failed restart).
        """
        staging = install.staging_root(self.root)
        for leftover in staging.glob("download-*"):
            log.info("removing leftover download %s", leftover.name)
            leftover.unlink(missing_ok=True)
        states = self.database.component_states()
        pending: list[Component] = []
        for component in catalog:
            store = self.store(component)
            for fix in store.repair():
                log.warning("%s", fix)  # each line already names the component
            on_disk = store.state()
            current = on_disk.current_version
            previous = on_disk.previous_version
            state = states.get(component.id)
            recorded = state.current_version if state else None
            if state is None or current != recorded or previous != state.previous_version:
                event = None
                if current is not None and current != recorded:
                    # The disk switched before the run could record it: say so in the log.
                    text = messages.downloaded(component, _display(current))
                    reason = "recorded after an interrupted run"
                    event = NewEvent(kind, component.id, _display(current), "success",
                                     text.en, text.ja, reason)
                    log.warning("%s: %s", component.id, reason)
                self.database.record_installed(
                    component.id, current, previous, success=False, restart_pending=True, event=event
                )
                pending.append(component)
            elif state.restart_pending:
                pending.append(component)
        return pending

    # -- rollback --------------------------------------------------------------------------

    def rollback(self, component_ids: Sequence[str]) -> RunReport:
        """Roll each named component back one generation, take it off the schedule, and
        restart like an update does. Raise RunError for unknown ids or a busy lock."""
        catalog, settings = self.load()
        by_id = {component.id: component for component in catalog}
        unknown = [component_id for component_id in component_ids if component_id not in by_id]
        if unknown:
            raise RunError("unknown component(s): " + ", ".join(unknown))
        report = RunReport(kind="rollback")
        try:
            with lock.download_lock(self.root):
                pending = self.reconcile(catalog, "rollback")
                rolled: list[Component] = []
                for component_id in dict.fromkeys(component_ids):
                    component = by_id[component_id]
                    if self._rollback_one(report, component):
                        rolled.append(component)
                changed = list({c.id: c for c in [*pending, *rolled]}.values())
                if changed:
                    report.restarts = restarts_for(changed)
                    report.restart_error = self.restart(settings, report.restarts, [c.id for c in changed])
        except lock.LockBusy as error:
            raise RunError(str(error)) from error
        self.database.record_run("rollback", report.ok, report.summary())
        return report

    def _rollback_one(self, report: RunReport, component: Component) -> bool:
        try:
            state = self.store(component).rollback()
        except install.InstallError as error:
            text = messages.rollback_failed(component, error.reason)
            self.database.add_event(
                NewEvent("rollback", component.id, None, "failure", text.en, text.ja, error.reason)
            )
            report.outcomes.append(Outcome(component.id, None, False, text.en, error.reason))
            log.error("%s", text.en)
            return False
        version = _display(state.current_version)
        text = messages.rolled_back(component, version)
        self.database.record_installed(
            component.id,
            state.current_version,
            state.previous_version,
            success=False,
            restart_pending=True,
            event=NewEvent("rollback", component.id, version, "success", text.en, text.ja),
        )
        if self.database.remove_from_schedule(component.id):
            log.info("%s removed from the scheduled update until re-enabled", component.id)
        report.outcomes.append(Outcome(component.id, version, True, text.en))
        log.info("%s", text.en)
        return True


def _parse_or_none(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version.parse(text)
    except VersionError:
        return None


def _display(raw: str | None) -> str:
    version = _parse_or_none(raw)
    return version.display if version else (raw or "none")
