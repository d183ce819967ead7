"""``imss-updater diagnose``: connection troubleshooting step by step (seed 002).

The steps follow what a support engineer asks an administrator to check, in order:
database, settings, licenses, source URLs, signature trust, then for each update source
name resolution, TCP connect (direct or to the proxy), proxy authentication, TLS
handshake, HTTP status of server.ini and its parse; finally the download lock and the
restart commands. Each step is data (a Step: PASS/FAIL/SKIP, a one-line detail, a hint
saying what to do); a step that cannot run because an earlier one failed is skipped and
says which. Diagnosing changes nothing: no setting, state, cache or event is written.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from pathlib import Path

from imss_updater.database.db import Database
from imss_updater.diagnose.local import LocalChecks
from imss_updater.diagnose.sources import SourceChecks
from imss_updater.diagnose.steps import FAIL, PASS, SKIP, Step, passed, to_json, to_text


def run_diagnosis(
    database: Database | None,
    dsn_error: str | None,
    root: Path,
    *,
    known_addresses: Mapping[str, str] | None = None,
    today: Callable[[], datetime.date] = datetime.date.today,
) -> list[Step]:
    """Given an open database (None when it could not be opened, ``dsn_error`` saying why)
    and the install root, run every check and return the steps in order.

    ``known_addresses`` maps a host name to an IP address believed to be the server's
    (``diagnose --address HOST=IP``): when the name does not resolve, connecting to that
    address tells whether only name resolution is broken. Never raises for a failed
    check; each failure is a FAIL step.
    """
    return _Diagnosis(root, dict(known_addresses or {}), today()).run(database, dsn_error)


class _Diagnosis(LocalChecks, SourceChecks):
    """Every check, run in the order the module docstring gives."""

    def run(self, database: Database | None, dsn_error: str | None) -> list[Step]:
        catalog = self.check_database(database, dsn_error)
        settings = None
        if database is not None and catalog is not None:
            settings = self.check_settings(database, catalog)
        else:
            self.skip("settings", "the database is not reachable")
        if settings is None or catalog is None:
            because = "the settings could not be read" if catalog is None else "the settings are invalid"
            for name in ("licenses", "source URLs", "signature trust"):
                self.skip(name, because)
            self.skip("update sources", because)
        else:
            self.check_licenses(settings, catalog)
            sources = self.check_source_urls(settings, catalog)
            self.check_signature_trust(settings)
            for source in sources:
                self.check_source(source, settings)
        self.check_lock()
        if settings is None:
            self.skip("restart commands", "the settings could not be read or are invalid")
        else:
            self.check_restart_commands(settings)
        return self.steps


__all__ = ["FAIL", "PASS", "SKIP", "Step", "passed", "run_diagnosis", "to_json", "to_text"]
