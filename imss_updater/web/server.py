"""waitress for the console, with limits that keep the page up under a slow-client flood.

waitress's defaults let 100 sockets that send half a request and hang take every channel
for up to 150 s (channel_timeout 120 s, checked every 30 s) and spool a 1 GB body to disk.
The limits here, for a console that one administrator uses from a browser:

- ``connection_limit`` 500: five times the flood that took the defaults down, one file
  descriptor each (bodies stay in memory, below), far below the 1024 of systemd's default
  soft limit; ``poll()`` instead of ``select()`` so descriptors above 1023 work.
- ``channel_timeout`` 15 s, checked every 5 s (``cleanup_interval``): a browser sends a
  whole request in well under a second; a connection that sends nothing for 15 s (a half
  request, an idle keep-alive) is closed within 20 s and the browser simply reconnects.
- ``REQUEST_DEADLINE`` 30 s: a request must arrive whole within 30 s of its first byte
  (at least 8.7 KB/s for the largest body allowed), so a client trickling one byte every
  few seconds, which the idle timeout never sees, is closed too (slowloris).
- ``max_request_body_size``: waitress refuses a Content-Length above the app's
  MAX_BODY_BYTES with 413 as soon as the headers are in, before reading the body; since
  that is below ``inbuf_overflow`` (512 KiB) no body is ever spooled to disk.
- the import form (``uploads``): a body up to UPLOAD_MAX_BYTES only on ``/import/<ticket>``
  with a ticket the console issued with the form to a logged-on administrator; waitress
  spools it to an unlinked temporary file past 512 KiB. Every other path keeps the small
  limit, checked when the headers are in. An upload's deadline grows by one second per
  256 KiB announced.
- ``max_request_header_size`` 32 KiB: the console's cookies are a few hundred bytes; 500
  channels buffer at most 16 MB of headers.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, create_server

from imss_updater.web.app import MAX_BODY_BYTES
from imss_updater.web.uploads import UPLOAD_MAX_BYTES, UPLOAD_MIN_BYTES_PER_SECOND

REQUEST_DEADLINE = 30.0
LIMITS: dict[str, Any] = {
    "threads": 8,
    "connection_limit": 500,
    "channel_timeout": 15,
    "cleanup_interval": 5,
    # waitress refuses Content-Length >= this; every path but an upload's gets the small one
    "max_request_body_size": UPLOAD_MAX_BYTES + 1,
    "max_request_header_size": 32 * 1024,
    "asyncore_use_poll": True,
    "ident": "imss-updater",
}


class _TimedParser(HTTPRequestParser):  # type: ignore[misc]  # waitress has no type hints
    """waitress's request parser, created at a request's first byte, noting when; once the
    headers are in, only a path ``large_body`` accepts keeps the large body limit."""

    small_adj: Any = None

    def __init__(self, adj: Any) -> None:
        super().__init__(adj)
        self.started = time.time()
        self.extra_seconds = 0.0

    def large_body(self, path: str) -> bool:
        return False

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        if self.large_body(self.path):
            self.extra_seconds = self.content_length / UPLOAD_MIN_BYTES_PER_SECOND
        elif self.small_adj is not None:
            self.adj = self.small_adj  # waitress checks the body size against self.adj next


def _enforce_deadline(server: Any, deadline: float, large_body: Callable[[str], bool]) -> None:
    """Make one listening server close channels whose request is still incomplete
    ``deadline`` seconds after its first byte (plus an upload's allowance; checked with
    waitress's own idle sweep), and hold every path but an upload's to MAX_BODY_BYTES."""
    sweep = server.maintenance
    small = copy.copy(server.adj)
    small.max_request_body_size = min(server.adj.max_request_body_size, MAX_BODY_BYTES + 1)

    class Parser(_TimedParser):
        small_adj = small

        def large_body(self, path: str) -> bool:
            return large_body(path)

    class Channel(HTTPChannel):  # type: ignore[misc]
        parser_class = Parser

    def maintenance(now: float) -> None:
        sweep(now)
        for channel in list(server.active_channels.values()):
            request = channel.request
            if request is None or request.completed:
                continue
            allowed = deadline + getattr(request, "extra_seconds", 0.0)
            if getattr(request, "started", now) < now - allowed:
                channel.will_close = True

    server.channel_class = Channel
    server.maintenance = maintenance


def serve(app: Flask, host: str, port: int, *, request_deadline: float = REQUEST_DEADLINE,
          **overrides: Any) -> Any:
    """Given the console app and where to listen, return a started-listening waitress server
    (call ``run()`` in a thread, ``close()`` to stop) with LIMITS, ``overrides`` applied.
    Raise OSError if the address cannot be bound."""
    server = create_server(app, host=host, port=port, **{**LIMITS, **overrides})
    console = app.extensions.get("imss_console")
    large_body = console.uploads.accepts if console is not None else _never
    sockets = getattr(server, "map", None) or server._map  # one listener, or several (host names)
    for dispatcher in list(sockets.values()):
        if isinstance(dispatcher, BaseWSGIServer):
            _enforce_deadline(dispatcher, request_deadline, large_body)
    return server


def _never(path: str) -> bool:
    return False
