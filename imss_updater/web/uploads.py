"""Large bodies for the import form only, written straight into the state directory.

Every other form is small (``app.MAX_BODY_BYTES``); a component file is up to
Update/MaxDownloadMB. waitress decides on a body's size when the headers are in, before
any log-on check, so a large body is let in only on a path that a logged-on administrator
was given: ``/import/<ticket>``, where the ticket is issued with the import form (random,
used once, 1 hour). Any other path keeps the small limit, so nobody can make the console
take a large body without a log-on.

waitress receives a body before it calls the app (past 512 KiB into an unlinked temporary
file, never memory); the form parser then writes each uploaded file into
``<state>/uploads`` as it reads it (``ConsoleRequest``), and the view moves it into place
under its own name, without reading it into memory or copying it again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from flask import Request, current_app

UPLOAD_PREFIX = "/import/"
UPLOAD_MAX_BYTES = (1024 + 1) * 1024 * 1024  # MaxDownloadMB's default, plus the form around it
UPLOAD_MIN_BYTES_PER_SECOND = 256 * 1024  # an upload gets this much longer than a small request
TICKET_SECONDS = 3600.0
MAX_TICKETS = 32  # open import forms at once; the oldest is forgotten first
PART_PREFIX = "part-"


class UploadTickets:
    """The paths that may carry a large body: one per import form shown (thread-safe: the
    waitress thread asks, the views issue and take)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._issued: dict[str, float] = {}

    def issue(self) -> str:
        """Return a new ticket, valid for TICKET_SECONDS."""
        ticket = secrets.token_urlsafe(24)
        with self._lock:
            self._expire()
            while len(self._issued) >= MAX_TICKETS:
                del self._issued[next(iter(self._issued))]
            self._issued[ticket] = self.clock() + TICKET_SECONDS
        return ticket

    def accepts(self, path: str) -> bool:
        """True when ``path`` is ``/import/<a live ticket>`` (the ticket stays valid)."""
        if not path.startswith(UPLOAD_PREFIX):
            return False
        ticket = path[len(UPLOAD_PREFIX):]
        with self._lock:
            self._expire()
            return ticket in self._issued

    def take(self, ticket: str) -> bool:
        """Use ``ticket`` up; return True if it was live."""
        with self._lock:
            self._expire()
            return self._issued.pop(ticket, None) is not None

    def _expire(self) -> None:
        now = self.clock()
        for ticket in [ticket for ticket, until in self._issued.items() if until <= now]:
            del self._issued[ticket]


def upload_directory(state: Path) -> Path:
    """``<state>/uploads``, created private (0700) when missing."""
    directory = state / "uploads"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory


class ConsoleRequest(Request):
    """Flask's request, but an upload to ``/import/…`` may be UPLOAD_MAX_BYTES and its files
    are written into ``<state>/uploads`` (``parts`` lists them, so that what the view does not
    move into place is removed when the request ends)."""

    def __init__(self, environ: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(environ, *args, **kwargs)
        self.parts: list[Path] = []
        if self.is_upload:
            self.max_content_length = UPLOAD_MAX_BYTES

    @property
    def is_upload(self) -> bool:
        return self.method == "POST" and self.path.startswith(UPLOAD_PREFIX)

    def _get_file_stream(
        self, total_content_length: int | None, content_type: str | None,
        filename: str | None = None, content_length: int | None = None,
    ) -> IO[bytes]:
        state = current_app.extensions["imss_console"].config.state if self.is_upload else None
        if state is None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the view moves it, or the teardown removes it
            dir=upload_directory(Path(state)), prefix=PART_PREFIX, delete=False)
        self.parts.append(Path(handle.name))
        return handle


def remove_parts(request: Request) -> None:
    """Remove the uploaded parts the view did not move into place."""
    for part in getattr(request, "parts", []):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
