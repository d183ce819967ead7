"""Whether the console's navigation links the Fleet page (SPEC 7): only in a fleet, that is
Fleet/Enabled=yes or more than one node registered. Read at log-on and then at most every
NAV_SECONDS, so the other pages cost no statement more than without a fleet."""

from __future__ import annotations

import threading
import time

from imss_updater.database.db import Database
from imss_updater.web import queries

NAV_SECONDS = 60.0  # a node joining or Fleet/Enabled changing shows in the navigation within this


class FleetNav:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until = 0.0  # time.monotonic() until which ``shown`` holds
        self.shown = False

    def cached(self) -> bool | None:
        """The flag if it is fresh, else None (the caller reads it with ``refresh``)."""
        with self.lock:
            return self.shown if time.monotonic() < self.until else None

    def refresh(self, database: Database) -> bool:
        """Read the flag now (one statement) and keep it for NAV_SECONDS."""
        shown = queries.in_fleet(database)
        with self.lock:
            self.shown, self.until = shown, time.monotonic() + NAV_SECONDS
        return shown

    def keep(self) -> None:
        """The database could not say: keep the last answer for NAV_SECONDS (an error page
        during an outage must not wait for another connection attempt)."""
        with self.lock:
            self.until = time.monotonic() + NAV_SECONDS

    def forget(self) -> None:
        """Read it again on the next page (after a change made through the console)."""
        with self.lock:
            self.until = 0.0
