"""``imss-updater diagnose``: connection troubleshooting step by step (seed 002).

The steps follow what a support engineer asks an administrator to check, in order:
database and settings; then seed 004 Q8 step 1 (scheduled update on, every component in
use on the schedule, stale components) and step 2 (has a check succeeded, are the available
versions known); licenses, source URLs, signature trust, then for each update source
name resolution, TCP connect (direct or to the proxy), proxy authentication, TLS
handshake (naming a missing root or intermediate certificate, seed 003), HTTP status of
server.ini and its parse; finally the download lock, the restart commands and whether
each service runs (seed 001). Each step is data (a Step: PASS/FAIL/SKIP, a one-line detail, a hint
saying what to do); a step that cannot run because an earlier one failed is skipped and
says which. Diagnosing changes nothing: no setting, state, cache or event is written.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from pathlib import Path

from imss_updater.catalog import Component
from imss_updater.database.db import Database, DatabaseError
from imss_updater.diagnose.local import LocalChecks
from imss_updater.diagnose.schedule import ScheduleChecks
from imss_updater.diagnose.sources import SourceChecks
from imss_updater.diagnose.steps import FAIL, PASS, SKIP, Step, passed, to_json, to_text
from imss_updater.i18n import LANGUAGES, N_, Reason
from imss_updater.settings import Settings


def run_diagnosis(
    database: Database | None,
    dsn_error: str | None,
    root: Path,
    *,
    known_addresses: Mapping[str, str] | None = None,
    today: Callable[[], datetime.date] = datetime.date.today,
    network_timeout: float | None = None,
    steps: list[Step] | None = None,
) -> list[Step]:
    """Given an open database (None when it could not be opened, ``dsn_error`` saying why)
    and the install root, run every check and return the steps in order.

    ``known_addresses`` maps a host name to an IP address believed to be the server's
    (``diagnose --address HOST=IP``): when the name does not resolve, connecting to that
    address tells whether only name resolution is broken. ``network_timeout`` caps every
    network wait (connect, read, the server.ini deadline) for a caller that must answer in
    bounded time (the console). ``steps``, when given, is appended to as each step finishes,
    so a caller that stops waiting still has the steps so far. Never raises for a failed
    check; each failure is a FAIL step.
    """
    diagnosis = _Diagnosis(root, dict(known_addresses or {}), today(), steps)
    diagnosis.network_timeout = network_timeout
    return diagnosis.run(database, dsn_error)


class _Diagnosis(LocalChecks, ScheduleChecks, SourceChecks):
    """Every check, run in the order the module docstring gives."""

    network_timeout: float | None = None

    def run(self, database: Database | None, dsn_error: str | None) -> list[Step]:
        catalog = self.check_database(database, dsn_error)
        settings = None
        if database is not None and catalog is not None:
            settings = self.check_settings(database, catalog)
        else:
            self.skip(Reason(N_("settings")), Reason(N_("the database is not reachable")))
        if settings is None or catalog is None or database is None:
            because = Reason(N_("the settings could not be read") if catalog is None
                             else N_("the settings are invalid"))
            for name in (N_("scheduled update"), N_("available versions"), N_("licenses"),
                         N_("source URLs"), N_("signature trust"), N_("update sources")):
                self.skip(Reason(name), because)
        else:
            self.check_updating(database, settings, catalog)
            settings = self.bounded(settings)
            self.check_licenses(settings, catalog)
            sources = self.check_source_urls(settings, catalog)
            self.check_signature_trust(settings)
            for source in sources:
                self.check_source(source, settings)
        self.check_lock()
        if settings is None:
            because = Reason(N_("the settings could not be read or are invalid"))
            self.skip(Reason(N_("restart commands")), because)
            self.skip(Reason(N_("service running")), because)
        else:
            self.check_restart_commands(settings)
            self.check_services(settings)
        return self.steps

    def check_updating(self, database: Database, settings: Settings, catalog: list[Component]) -> None:
        """Seed 004 Q8 steps 1 and 2, from what the database holds."""
        try:
            states = database.component_states()
            run = database.run_status()
        except DatabaseError as error:
            self.add(Reason(N_("scheduled update")), False, str(error), Reason(N_("check the database")))
            return
        self.check_scheduled_update(settings)
        self.check_scheduled_components(settings, catalog)
        self.check_stale(settings, catalog, states, datetime.datetime.now(datetime.UTC))
        self.check_last_check(run)
        self.check_available(settings, catalog, states, run)

    def bounded(self, settings: Settings) -> Settings:
        """Return the settings with every network wait capped at ``network_timeout``."""
        cap = self.network_timeout
        if cap is None:
            return settings
        return dataclasses.replace(
            settings, connect_timeout=min(settings.connect_timeout, cap),
            read_timeout=min(settings.read_timeout, cap), index_deadline=min(settings.index_deadline, cap),
            low_speed_seconds=min(settings.low_speed_seconds, cap),
        )


__all__ = ["FAIL", "LANGUAGES", "PASS", "SKIP", "Step", "passed", "run_diagnosis", "to_json", "to_text"]
