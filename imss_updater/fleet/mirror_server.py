"""The mirror server: the leader's mirror, read-only over HTTP at ``/activeupdate/...``.

Separate from the console (its own waitress server on IMSS_MIRROR), it answers:

- GET and HEAD only (405 otherwise), for files of the current release, or the previous one
  for a package a member that read the older index still fetches; ``server.ini`` and its
  ``.sig`` only from the current release; anything else, a directory, a hidden name or
  ``..`` is 404 (no listing, nothing outside the mirror: see ``Mirror.open_file``);
- an ``ETag`` (inode, size, time: a package carried over from the release before keeps its
  tag) and ``304 Not Modified`` on a matching ``If-None-Match``, so a member's no-op check
  is one small request;
- 503 whenever this node is not leading at the moment of the request (``serving()``): a
  leader that lost the database stops serving within its lease, even before the server is
  closed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from waitress.server import create_server

from imss_updater.fleet.mirror import INDEX, INDEX_SIGNATURE, Mirror

log = logging.getLogger(__name__)

PREFIX = "/activeupdate/"
CHUNK = 256 * 1024
LIMITS: dict[str, Any] = {
    "threads": 8,
    "connection_limit": 200,
    "channel_timeout": 30,
    "cleanup_interval": 10,
    "max_request_body_size": 0,
    "max_request_header_size": 16 * 1024,
    "asyncore_use_poll": True,
    "ident": "imss-updater-mirror",
}

StartResponse = Callable[[str, list[tuple[str, str]]], object]


def etag_for(status: os.stat_result) -> str:
    return f'"{status.st_ino:x}-{status.st_size:x}-{status.st_mtime_ns:x}"'


def make_app(mirror: Mirror, serving: Callable[[], bool]) -> Callable[[dict[str, Any], StartResponse],
                                                                       Iterable[bytes]]:
    """Return the WSGI application over ``mirror``; ``serving()`` says whether to answer."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _simple(start_response, "405 Method Not Allowed", [("Allow", "GET, HEAD")])
        if not serving():
            return _simple(start_response, "503 Service Unavailable", [("Retry-After", "10")])
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return _simple(start_response, "404 Not Found")
        relative = path[len(PREFIX):]
        # An index is only ever the current one; a package may also be the previous one's.
        opened = mirror.open_file(relative, current_only=relative in (INDEX, INDEX_SIGNATURE))
        if opened is None:
            return _simple(start_response, "404 Not Found")
        descriptor, _release = opened
        status = os.fstat(descriptor)
        tag = etag_for(status)
        headers = [("ETag", tag), ("Cache-Control", "no-cache")]
        wanted = [value.strip() for value in environ.get("HTTP_IF_NONE_MATCH", "").split(",")]
        if tag in wanted or "*" in wanted:
            os.close(descriptor)
            return _simple(start_response, "304 Not Modified", headers, body=False)
        headers += [("Content-Type", "application/octet-stream"),
                    ("Content-Length", str(status.st_size))]
        start_response("200 OK", headers)
        if method == "HEAD":
            os.close(descriptor)
            return []
        return _read(descriptor)

    return app


def _read(descriptor: int) -> Iterator[bytes]:
    with os.fdopen(descriptor, "rb") as stream:
        while chunk := stream.read(CHUNK):
            yield chunk


def _simple(start_response: StartResponse, status: str, headers: list[tuple[str, str]] | None = None,
            *, body: bool = True) -> list[bytes]:
    text = (status.split(" ", 1)[1] + "\n").encode() if body else b""
    start_response(status, [*(headers or []), ("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(text)))])
    return [text] if text else []


class MirrorServer:
    """A started waitress server for the mirror; ``close()`` stops it."""

    def __init__(self, mirror: Mirror, address: str, serving: Callable[[], bool]) -> None:
        host, _colon, port = address.rpartition(":")
        self.address = address
        self.server = create_server(make_app(mirror, serving), host=host.strip("[]"), port=int(port),
                                    **LIMITS)
        self.thread = threading.Thread(target=self._run, name="fleet-mirror", daemon=True)
        self.thread.start()
        log.info("mirror server listening on http://%s%s", address, PREFIX)

    def _run(self) -> None:
        try:
            self.server.run()
        except Exception:  # closed under it while stopping
            log.debug("mirror server stopped", exc_info=True)

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)
        log.info("mirror server on %s stopped", self.address)
