"""Fetch files from an update source: the HTTP client (with http_session and http_errors,
the only modules that import requests and urllib3).

Every fetch verifies TLS certificates (``source.tls``), goes through the configured HTTP
proxy or none (never one taken from the environment; credentials sent as UTF-8, as squid,
curl and browsers do), is bounded by connect and read timeouts, by a low-speed limit and by
a total deadline (``source.pace``), and is retried with backoff on transient failures only.
An answer 429 or 503 with Retry-After is not retried: the error carries the time.
Every failure becomes a FetchError (worded in ``source.fetch_errors``, requests' exceptions
classified in ``source.http_errors``) whose ``why`` is one line an administrator can act on,
in any language (``reason``: the same in English); it names the URL and never contains the
proxy password.
"""

from __future__ import annotations

import datetime
import http
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol, TypeVar

import requests
import urllib3.exceptions

from imss_updater.source import pace
from imss_updater.source.fetch_errors import (
    RETRY_AFTER_STATUSES,
    TRANSIENT_KINDS,
    FetchError,
    announced_mismatch,
    content_length,
    disk_error,
    larger_than_limit,
    not_enough_space,
    over_limit,
    parse_retry_after,
    proxy_auth_failed,
    received_mismatch,
    received_too_much,
    safe_url,
    secret_forms,
    status_answer,
    strerror,
    wait_reason,
)
from imss_updater.source.http_errors import classify
from imss_updater.source.http_options import HttpOptions, ProxySettings
from imss_updater.source.http_session import make_session
from imss_updater.source.tls import make_ssl_context

__all__ = [
    "CHUNK_SIZE",
    "TRANSIENT_KINDS",
    "FetchError",
    "HttpClient",
    "HttpOptions",
    "IndexResult",
    "ProxySettings",
    "make_ssl_context",
]

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024

T = TypeVar("T")


class Tee(Protocol):
    """Also takes a download's bytes as they arrive (run.pipeline)."""

    def restart(self) -> None: ...

    def feed(self, chunk: bytes) -> None: ...


@dataclass(frozen=True)
class IndexResult:
    not_modified: bool
    body: bytes | None
    etag: str | None
    last_modified: str | None


class HttpClient:
    """One HTTP(S) session to update sources; use it as a context manager."""

    def __init__(self, options: HttpOptions) -> None:
        self.options = options
        proxy = options.proxy
        authorization = proxy.authorization() if proxy is not None else None
        self._session = make_session(
            make_ssl_context(options.ca_file),
            proxy.address if proxy is not None else None,
            authorization,
            options.user_agent,
        )
        self._secrets = secret_forms(
            proxy.password if proxy is not None else "", (authorization or "").removeprefix("Basic ")
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session and its pooled connections."""
        self._session.close()

    # -- public fetches -------------------------------------------------------------

    def fetch_index(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        max_bytes: int = 4 << 20,
    ) -> IndexResult:
        """Given the URL of an index file and the validators of the copy we hold, return
        the new body, or ``not_modified`` when the server answers 304 (conditional GET with
        If-None-Match / If-Modified-Since). Raise FetchError on any failure, kind too_large
        if the body exceeds ``max_bytes``; the whole fetch ends by ``index_deadline``."""
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified

        def attempt() -> IndexResult:
            with self._get(url, headers) as response:
                new_etag = response.headers.get("ETag")
                new_modified = response.headers.get("Last-Modified")
                if response.status_code == http.HTTPStatus.NOT_MODIFIED:
                    return IndexResult(True, None, new_etag or etag, new_modified or last_modified)
                self._raise_for_status(response, url)
                body = self._read_limited(response, url, max_bytes)
                return IndexResult(False, body, new_etag, new_modified)

        return self._with_retries(url, attempt, self.options.index_deadline)

    def fetch_optional(self, url: str, *, max_bytes: int) -> bytes | None:
        """Given the URL of a small file that may be absent (a ``.sig``), return its body,
        or None when the server answers 404. Raise FetchError on any other failure; the
        fetch ends by ``index_deadline``."""

        def attempt() -> bytes | None:
            with self._get(url, {}) as response:
                if response.status_code == http.HTTPStatus.NOT_FOUND:
                    log.debug("%s is not published (HTTP 404)", safe_url(url))
                    return None
                self._raise_for_status(response, url)
                return self._read_limited(response, url, max_bytes)

        return self._with_retries(url, attempt, self.options.index_deadline)

    def download(
        self,
        url: str,
        destination: Path,
        *,
        expected_size: int,
        max_bytes: int,
        progress: Callable[[int, int], None] | None = None,
        tee: Tee | None = None,
    ) -> None:
        """Given a URL and the size the index announces, stream the file to ``destination``
        (and to ``tee``: ``restart()`` before each attempt, ``feed(chunk)`` after each write)
        and return once exactly ``expected_size`` bytes are written. The file is not fsynced:
        it is a staging file that a crash discards anyway; the install makes its copy durable.

        ``progress(received, expected_size)`` is called after each chunk. Raise FetchError:
        too_large before any request when ``expected_size > max_bytes``; disk before any
        request when the directory of ``destination`` has less free space than that, and
        when the file cannot be written (disk full included); size_mismatch when the
        announced Content-Length or the bytes received differ from ``expected_size``
        (reading stops as soon as more arrive); any network kind otherwise (the whole
        download ends by ``download_deadline``). On failure ``destination`` is removed.
        """
        if expected_size > max_bytes:
            raise over_limit(url, expected_size, max_bytes)
        _check_free_space(destination.parent, expected_size)

        def attempt() -> None:
            try:
                if tee is not None:
                    tee.restart()
                self._download_once(url, destination, expected_size, progress, tee)
            except BaseException:
                _remove_quietly(destination)
                raise

        self._with_retries(url, attempt, self.options.download_deadline)

    # -- internals ---------------------------------------------------------------

    def _download_once(
        self,
        url: str,
        destination: Path,
        expected_size: int,
        progress: Callable[[int, int], None] | None,
        tee: Tee | None,
    ) -> None:
        with self._get(url, {}) as response:
            self._raise_for_status(response, url)
            announced = content_length(response.headers.get("Content-Length"), url)
            if announced is not None and announced != expected_size:
                raise announced_mismatch(url, announced, expected_size)
            try:
                with open(destination, "wb") as output:
                    received = self._write_body(response, url, output, expected_size, progress, tee)
            except OSError as error:  # opening, writing, or the flush when closing
                raise disk_error(destination, error, url) from error
            if received != expected_size:
                raise received_mismatch(url, received, expected_size)
        log.debug("downloaded %s (%d bytes) to %s", safe_url(url), received, destination)

    def _write_body(
        self,
        response: requests.Response,
        url: str,
        output: IO[bytes],
        expected_size: int,
        progress: Callable[[int, int], None] | None,
        tee: Tee | None,
    ) -> int:
        received = 0
        for chunk in self._chunks(response, url):
            received += len(chunk)
            if received > expected_size:
                raise received_too_much(url, expected_size)
            output.write(chunk)
            if tee is not None:
                tee.feed(chunk)
            if progress is not None:
                progress(received, expected_size)
        return received

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        proxy = self.options.proxy
        log.debug("GET %s%s", safe_url(url), f" via proxy {proxy.address}" if proxy else "")
        try:
            return self._session.get(
                url,
                headers=headers,
                stream=True,
                timeout=(self.options.connect_timeout, self.options.read_timeout),
            )
        except requests.RequestException as error:
            raise classify(error, url, self.options, self._secrets) from error

    def _chunks(self, response: requests.Response, url: str) -> Iterator[bytes]:
        # read1 returns what has arrived (up to CHUNK_SIZE) without waiting for a full
        # chunk: large reads when data streams in, prompt progress when it trickles.
        raw = response.raw
        try:
            while chunk := raw.read1(CHUNK_SIZE):
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise classify(error, url, self.options, self._secrets, reading=True) from error

    def _read_limited(self, response: requests.Response, url: str, max_bytes: int) -> bytes:
        announced = content_length(response.headers.get("Content-Length"), url)
        if announced is not None and announced > max_bytes:
            raise over_limit(url, announced, max_bytes)
        parts: list[bytes] = []
        received = 0
        for chunk in self._chunks(response, url):
            received += len(chunk)
            if received > max_bytes:
                raise larger_than_limit(url, max_bytes)
            parts.append(chunk)
        return b"".join(parts)

    def _raise_for_status(self, response: requests.Response, url: str) -> None:
        status = response.status_code
        if status < 400:
            return
        proxy = self.options.proxy
        # tinyproxy (1.11) answers wrong proxy credentials with 401 instead of 407; update
        # sources themselves never ask for HTTP authentication.
        if proxy is not None and (
            status == http.HTTPStatus.PROXY_AUTHENTICATION_REQUIRED
            or (status == http.HTTPStatus.UNAUTHORIZED and proxy.user)
        ):
            raise proxy_auth_failed(status, proxy.address)
        # The answer may come from the proxy (tinyproxy answers 500 when it cannot reach
        # the server): say which way the request went. The reason phrase is the server's.
        answer = status_answer(status, response.reason or "", url, proxy.address if proxy else None)
        if status in RETRY_AFTER_STATUSES:
            now = datetime.datetime.now(datetime.UTC)
            until = parse_retry_after(response.headers.get("Retry-After"), now)
            if until is not None:
                raise FetchError(wait_reason(until, answer), "retry_later", status, retry_after=until)
        raise FetchError(answer, "http_status", status)

    def _with_retries(self, url: str, attempt: Callable[[], T], deadline: float | None) -> T:
        options = self.options
        watch = pace.TransferWatch(options.low_speed_bytes, options.low_speed_seconds, deadline)
        attempts = 1 + max(0, options.retries)
        wait = options.backoff
        for number in range(1, attempts + 1):
            watch.restart_window()
            try:
                with watch.active():
                    return attempt()
            except FetchError as error:
                if not error.transient or number == attempts:
                    raise
                if watch.remaining() <= wait:
                    log.warning("attempt %d of %d failed: %s; no time left to retry before the "
                                "deadline of %g s", number, attempts, error.reason, deadline)
                    raise
                log.warning(
                    "attempt %d of %d failed: %s; retrying in %.1f s",
                    number,
                    attempts,
                    error.reason,
                    wait,
                )
            time.sleep(wait)
            wait *= 2
        raise AssertionError("unreachable")  # pragma: no cover


# -- helpers ---------------------------------------------------------------------


def _check_free_space(directory: Path, needed: int) -> None:
    """Raise FetchError (disk) when ``directory`` has less than ``needed`` bytes free. A
    directory that cannot be examined is left to the download to report."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError as error:
        log.debug("cannot read the free space of %s: %s", directory, strerror(error))
        return
    if free < needed:
        raise not_enough_space(needed, free, directory)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.warning("cannot remove partial download %s: %s", path, strerror(error))
