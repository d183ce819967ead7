"""One dependency's health as the daemon sees it: logged once per change, retried with backoff."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0


class Health:
    """Tracks one dependency's state, logging once per change (no flood) and pacing retries."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ok: bool | None = None
        self.backoff = 1.0

    def failed(self, reason: str) -> None:
        if self.ok is not False:
            log.error("%s unavailable: %s (retrying with backoff)", self.name, reason)
        else:
            log.debug("%s still unavailable: %s", self.name, reason)
        self.ok = False
        self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)

    def succeeded(self) -> None:
        if self.ok is False:
            log.info("%s available again", self.name)
        self.ok = True
        self.backoff = 1.0
