"""Which host names the console answers to: the defence against DNS rebinding.

A web page the administrator visits can point a name of its own at 127.0.0.1 and then
drive the console from the administrator's browser; the browser still sends that name in
``Host``. So only ``IMSS_WEB``'s host, ``localhost``, ``127.0.0.1``, ``[::1]`` and the
names of the ``Web/AllowedHosts`` row are served (any port); every other request is
refused with 400 before a route runs. The row is read at most every ``REFRESH_SECONDS``
(the last list read stays in force while the database is unreachable).
"""

from __future__ import annotations

import logging
import threading
import time

from imss_updater.database.db import DatabaseError
from imss_updater.settings_values import parse_host_list
from imss_updater.web.pool import DatabasePool

log = logging.getLogger(__name__)

ALWAYS_ALLOWED = frozenset({"localhost", "127.0.0.1", "::1"})
ALLOWED_HOSTS_ROW = ("Web", "AllowedHosts")
REFRESH_SECONDS = 5.0


def host_name(header: str) -> str | None:
    """Given a ``Host`` header, return its host name lower-cased without the port (IPv6
    without brackets), or None when it is empty or malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1:]
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    return name or None


class HostPolicy:
    """The names the console answers to, for one app."""

    def __init__(self, configured_host: str, pool: DatabasePool) -> None:
        self.fixed = ALWAYS_ALLOWED | {configured_host.strip("[]").lower()}
        self.pool = pool
        self.lock = threading.Lock()
        self.extra: frozenset[str] = frozenset()
        self.read_at: float | None = None

    def allows(self, name: str) -> bool:
        """Return True when the console answers to host name ``name`` (see host_name)."""
        return name in self.fixed or name in self._extra()

    def _extra(self) -> frozenset[str]:
        with self.lock:
            now = time.monotonic()
            if self.read_at is not None and now - self.read_at < REFRESH_SECONDS:
                return self.extra
            self.read_at = now
            try:
                with self.pool.connection() as database:
                    text = database.get_setting(*ALLOWED_HOSTS_ROW) or ""
                self.extra = frozenset(parse_host_list(text))
            except DatabaseError as error:
                log.debug("Web/AllowedHosts not read, keeping the last list: %s", error)
            except ValueError as error:  # a bad row serves the fixed names only
                log.warning("Web/AllowedHosts ignored: %s", error)
                self.extra = frozenset()
            return self.extra
