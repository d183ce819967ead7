"""Wake the daemon's loop whenever tb_global_setting changes (its trigger NOTIFYs), so that a
change made with psql, ``config set`` or the page is planned within a second."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from imss_updater.daemon.health import MAX_BACKOFF_SECONDS
from imss_updater.database.db import Database

log = logging.getLogger(__name__)

SETTINGS_CHANNEL = "imss_settings"


def listen(dsn: Callable[[], str], stopping: threading.Event, wake: threading.Event) -> None:
    """Until ``stopping`` is set, LISTEN on the settings channel and set ``wake`` on each
    notification; reconnect with backoff (the loop's polling covers the gaps)."""
    backoff = 1.0
    while not stopping.is_set():
        try:
            with Database(dsn()) as database:
                database.listen(SETTINGS_CHANNEL)
                backoff = 1.0
                while not stopping.is_set():
                    if database.wait_notifications(1.0):
                        log.debug("settings changed: re-planning")
                        wake.set()
        except Exception as error:  # the loop's polling covers us while this reconnects
            log.debug("settings listener: %s", error)
            stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
