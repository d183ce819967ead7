"""Fetch files from an update source: the only module that imports requests.

Every fetch verifies TLS certificates (TLS 1.2 or newer, against the configured CA file or
the system store), goes through the configured HTTP proxy or none (never one taken from the
environment), is bounded by connect and read timeouts, and is retried with backoff on
transient failures only. Every failure becomes a FetchError whose ``reason`` is one line an
administrator can act on; it names the URL and never contains the proxy password.
"""

from __future__ import annotations

import http
import http.client
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024

# Kinds worth another attempt: the peer or the path to it may recover within seconds.
TRANSIENT_KINDS = frozenset({"timeout", "connection", "proxy"})

_TLS_VERSION_ERRORS = frozenset(
    {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)

T = TypeVar("T")


@dataclass(frozen=True)
class ProxySettings:
    host: str
    port: int
    user: str = ""
    password: str = ""

    @property
    def address(self) -> str:
        """Return ``host:port`` (IPv6 literals bracketed), safe to show and log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self) -> str:
        """Return the proxy URL for requests, credentials percent-encoded.

        Every character outside the unreserved set is encoded, so ``@ : / % #`` in a user
        name or password cannot change how the URL is split.
        """
        credentials = ""
        if self.user or self.password:
            credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return f"http://{credentials}{self.address}"

    def __repr__(self) -> str:
        shown = "***" if self.password else ""
        return f"ProxySettings(host={self.host!r}, port={self.port}, user={self.user!r}, password={shown!r})"


@dataclass(frozen=True)
class HttpOptions:
    ca_file: str | None = None  # None: the system CA store
    proxy: ProxySettings | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 2  # extra attempts after a transient failure
    backoff: float = 1.0  # first wait in seconds, doubled after each retry
    user_agent: str = "imss-updater/0.1"


class FetchError(Exception):
    """A fetch failed; ``reason`` says why in one line, ``kind`` classifies it.

    Kinds: http_status, timeout, tls, proxy_auth, proxy, connection, dns, size_mismatch,
    too_large, disk, protocol. ``status`` is the HTTP status when there was one.
    """

    def __init__(self, reason: str, kind: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.status = status

    @property
    def transient(self) -> bool:
        """True when another attempt may succeed (timeouts, lost connections, 5xx)."""
        if self.kind == "http_status":
            return self.status is not None and self.status >= 500
        return self.kind in TRANSIENT_KINDS


@dataclass(frozen=True)
class IndexResult:
    not_modified: bool
    body: bytes | None
    etag: str | None
    last_modified: str | None


def make_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Given a CA file path or None (system store), return a verifying client context that
    refuses anything older than TLS 1.2. Raise FetchError(kind tls) if the file is unusable."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
        raise FetchError(f"cannot load CA file {ca_file}: {_strerror(error)}", "tls") from error
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class _PinnedTlsAdapter(HTTPAdapter):
    """An HTTPAdapter whose every HTTPS connection, direct or tunnelled through a proxy
    with CONNECT, uses one given SSLContext (trust store and minimum version included)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context  # set before super().__init__, which builds the pool manager
        super().__init__(pool_connections=4, pool_maxsize=4, max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        pool_kwargs["ssl_context"] = self._context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # ProxyManager hands these keywords to the pools it opens for the target hosts,
        # so the tunnelled TLS session uses the same context as a direct one.
        proxy_kwargs["ssl_context"] = self._context
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would point ca_certs at certifi's bundle, and urllib3 would then load it
        # into our context on top of the configured CA file. The context already holds
        # exactly the trust anchors we want.
        conn.cert_reqs = "CERT_REQUIRED"
        conn.ca_certs = None
        conn.ca_cert_dir = None


class HttpClient:
    """One HTTP(S) session to update sources; use it as a context manager."""

    def __init__(self, options: HttpOptions) -> None:
        self.options = options
        self._context = make_ssl_context(options.ca_file)
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy, CA bundle or netrc from the environment
        self._session.verify = True
        self._session.max_redirects = 5
        self._session.headers["User-Agent"] = options.user_agent
        self._session.headers["Accept-Encoding"] = "identity"  # sizes are of the raw file
        adapter = _PinnedTlsAdapter(self._context)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        if options.proxy is not None:
            proxy_url = options.proxy.url()
            self._session.proxies = {"http": proxy_url, "https": proxy_url}
        self._secrets = _secret_forms(options.proxy)

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
        if the body exceeds ``max_bytes``."""
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

        return self._with_retries(url, attempt)

    def fetch_optional(self, url: str, *, max_bytes: int) -> bytes | None:
        """Given the URL of a small file that may be absent (a ``.sig``), return its body,
        or None when the server answers 404. Raise FetchError on any other failure."""

        def attempt() -> bytes | None:
            with self._get(url, {}) as response:
                if response.status_code == http.HTTPStatus.NOT_FOUND:
                    log.debug("%s is not published (HTTP 404)", _safe_url(url))
                    return None
                self._raise_for_status(response, url)
                return self._read_limited(response, url, max_bytes)

        return self._with_retries(url, attempt)

    def download(
        self,
        url: str,
        destination: Path,
        *,
        expected_size: int,
        max_bytes: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Given a URL and the size the index announces, stream the file to ``destination``
        and return once exactly ``expected_size`` bytes are written. The file is not fsynced:
        it is a staging file that a crash discards anyway; the install makes its copy durable.

        ``progress(received, expected_size)`` is called after each chunk. Raise FetchError:
        too_large before any request when ``expected_size > max_bytes``; size_mismatch when
        the announced Content-Length or the bytes received differ from ``expected_size``
        (reading stops as soon as more arrive); disk when the file cannot be written; any
        network kind otherwise. On failure ``destination`` is removed.
        """
        if expected_size > max_bytes:
            raise FetchError(
                f"{_safe_url(url)} is {expected_size} bytes, over the limit of {max_bytes} bytes",
                "too_large",
            )

        def attempt() -> None:
            try:
                self._download_once(url, destination, expected_size, progress)
            except BaseException:
                _remove_quietly(destination)
                raise

        self._with_retries(url, attempt)

    # -- internals ---------------------------------------------------------------

    def _download_once(
        self,
        url: str,
        destination: Path,
        expected_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        with self._get(url, {}) as response:
            self._raise_for_status(response, url)
            announced = _content_length(response, url)
            if announced is not None and announced != expected_size:
                raise FetchError(
                    f"size mismatch for {_safe_url(url)}: the server announces {announced} "
                    f"bytes, the index says {expected_size}",
                    "size_mismatch",
                )
            received = 0
            try:
                output = open(destination, "wb")  # noqa: SIM115 - closed below, errors mapped
            except OSError as error:
                raise _disk_error(destination, error) from error
            with output:
                for chunk in self._chunks(response, url):
                    received += len(chunk)
                    if received > expected_size:
                        raise FetchError(
                            f"size mismatch for {_safe_url(url)}: received more than "
                            f"the {expected_size} bytes the index announces",
                            "size_mismatch",
                        )
                    try:
                        output.write(chunk)
                    except OSError as error:
                        raise _disk_error(destination, error) from error
                    if progress is not None:
                        progress(received, expected_size)
                try:
                    output.flush()
                except OSError as error:
                    raise _disk_error(destination, error) from error
            if received != expected_size:
                raise FetchError(
                    f"size mismatch for {_safe_url(url)}: received {received} bytes, the "
                    f"index says {expected_size}",
                    "size_mismatch",
                )
        log.debug("downloaded %s (%d bytes) to %s", _safe_url(url), received, destination)

    def _get(self, url: str, headers: dict[str, str]) -> requests.Response:
        proxy = self.options.proxy
        log.debug("GET %s%s", _safe_url(url), f" via proxy {proxy.address}" if proxy else "")
        try:
            return self._session.get(
                url,
                headers=headers,
                stream=True,
                timeout=(self.options.connect_timeout, self.options.read_timeout),
            )
        except requests.RequestException as error:
            raise self._classify(error, url) from error

    def _chunks(self, response: requests.Response, url: str) -> Iterator[bytes]:
        # read1 returns what has arrived (up to CHUNK_SIZE) without waiting for a full
        # chunk: large reads when data streams in, prompt progress when it trickles.
        raw = response.raw
        try:
            while chunk := raw.read1(CHUNK_SIZE):
                yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise self._classify(error, url, reading=True) from error

    def _read_limited(self, response: requests.Response, url: str, max_bytes: int) -> bytes:
        announced = _content_length(response, url)
        if announced is not None and announced > max_bytes:
            raise FetchError(
                f"{_safe_url(url)} is {announced} bytes, over the limit of {max_bytes} bytes",
                "too_large",
            )
        parts: list[bytes] = []
        received = 0
        for chunk in self._chunks(response, url):
            received += len(chunk)
            if received > max_bytes:
                raise FetchError(
                    f"{_safe_url(url)} is larger than the limit of {max_bytes} bytes",
                    "too_large",
                )
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
            raise FetchError(
                f"proxy authentication failed (HTTP {status}) at {proxy.address}",
                "proxy_auth",
                status,
            )
        phrase = response.reason or _phrase(status)
        # The answer may come from the proxy (tinyproxy answers 500 when it cannot reach
        # the server): say which way the request went.
        via = f" (via proxy {proxy.address})" if proxy is not None else ""
        raise FetchError(
            f"HTTP {status} {phrase} for {_safe_url(url)}{via}".replace("  ", " "),
            "http_status",
            status,
        )

    def _with_retries(self, url: str, attempt: Callable[[], T]) -> T:
        attempts = 1 + max(0, self.options.retries)
        wait = self.options.backoff
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except FetchError as error:
                if not error.transient or number == attempts:
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

    def _classify(self, error: BaseException, url: str, *, reading: bool = False) -> FetchError:
        """Given an exception from requests, return the FetchError an administrator reads."""
        shown_url = _safe_url(url)
        target = _host_port(url)
        proxy = self.options.proxy
        chain = list(_causes(error))

        for cause in chain:
            if isinstance(cause, ssl.SSLCertVerificationError):
                detail = cause.verify_message or cause.reason or "certificate verify failed"
                return FetchError(f"TLS failure for {shown_url}: {detail}", "tls")
        for cause in chain:
            if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
                return FetchError(f"TLS failure for {shown_url}: {_tls_detail(cause)}", "tls")

        if proxy is not None:
            tunnel = _tunnel_failure(chain)
            if tunnel is not None:
                status, text = tunnel
                if status in (401, 407):
                    return FetchError(
                        f"proxy authentication failed (HTTP {status}) at {proxy.address}",
                        "proxy_auth",
                        status,
                    )
                return FetchError(
                    f"proxy {proxy.address} could not open a tunnel to {target}: {text}",
                    "proxy",
                    status,
                )
            if any(isinstance(c, urllib3.exceptions.ProxyError) for c in chain):
                detail = _connect_detail(chain)
                return FetchError(f"cannot connect to proxy {proxy.address}: {detail}", "proxy")

        options = self.options
        for cause in chain:
            if isinstance(cause, urllib3.exceptions.NameResolutionError):
                host = urlsplit(url).hostname or target
                return FetchError(f"cannot resolve host {host}", "dns")
            if isinstance(cause, urllib3.exceptions.NewConnectionError):
                detail = _connect_detail(chain)
                if detail == "connection refused":
                    return FetchError(f"connection refused: {target}", "connection")
                return FetchError(f"cannot connect to {target}: {detail}", "connection")
            if isinstance(cause, urllib3.exceptions.ConnectTimeoutError):
                return FetchError(
                    f"timed out after {options.connect_timeout:g} s connecting to {target}",
                    "timeout",
                )
            if isinstance(cause, urllib3.exceptions.ReadTimeoutError | TimeoutError):
                return FetchError(
                    f"timed out after {options.read_timeout:g} s reading {shown_url}",
                    "timeout",
                )
        for cause in chain:
            if isinstance(cause, urllib3.exceptions.IncompleteRead):
                return FetchError(
                    f"connection closed by {target} after {cause.partial} bytes of "
                    f"{shown_url} ({cause.expected} more were announced)",
                    "connection",
                )
            if isinstance(cause, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError):
                return FetchError(f"connection reset by {target} for {shown_url}", "connection")
            if isinstance(cause, http.client.RemoteDisconnected):
                return FetchError(
                    f"{target} closed the connection without answering {shown_url}",
                    "connection",
                )
        if isinstance(error, requests.TooManyRedirects):
            return FetchError(f"too many redirects for {shown_url}", "protocol")
        if isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return FetchError(f"invalid URL {shown_url}", "protocol")
        kind = "connection" if isinstance(error, requests.ConnectionError) else "protocol"
        if reading and kind == "protocol":
            kind = "connection"
        detail = _mask(_last_cause_text(chain), self._secrets)
        return FetchError(f"request for {shown_url} failed: {detail}", kind)


# -- helpers ---------------------------------------------------------------------


def _causes(error: BaseException) -> Iterator[BaseException]:
    """Yield ``error`` and every exception nested in it (args, reason, cause, context)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested: list[object] = [
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ]
        pending.extend(item for item in nested if isinstance(item, BaseException))


def _tunnel_failure(chain: list[BaseException]) -> tuple[int, str] | None:
    """Return (status, text) when the proxy answered CONNECT with an error status."""
    marker = "Tunnel connection failed: "
    for cause in chain:
        text = str(cause)
        if isinstance(cause, OSError) and text.startswith(marker):
            answer = text.removeprefix(marker).strip()
            code = answer.split(" ", 1)[0]
            return (int(code), answer) if code.isdigit() else (0, answer)
    return None


def _connect_detail(chain: list[BaseException]) -> str:
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, urllib3.exceptions.ConnectTimeoutError) and not isinstance(
            cause, urllib3.exceptions.NewConnectionError
        ):
            return "timed out"
        if isinstance(cause, TimeoutError):
            return "timed out"
        if isinstance(cause, OSError) and cause.errno is not None:
            return _strerror(cause)
    return _last_cause_text(chain)


def _tls_detail(error: ssl.SSLError) -> str:
    if error.reason in _TLS_VERSION_ERRORS:
        return "unsupported protocol (server offers TLS older than 1.2)"
    if error.reason == "WRONG_VERSION_NUMBER":
        return "the server did not answer with TLS (is it plain HTTP?)"
    if error.reason:
        return str(error.reason).replace("_", " ").lower()
    return str(error)


def _last_cause_text(chain: list[BaseException]) -> str:
    text = str(chain[-1]) if chain else ""
    return text or (type(chain[-1]).__name__ if chain else "unknown error")


def _strerror(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno)
    return str(error) or type(error).__name__


def _content_length(response: requests.Response, url: str) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length < 0:
        raise FetchError(
            f"invalid Content-Length {value!r} from {_host_port(url)} for {_safe_url(url)}",
            "protocol",
        )
    return length


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _safe_url(url: str) -> str:
    """Return ``url`` without any user:password part, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{host}:{port}"


def _secret_forms(proxy: ProxySettings | None) -> tuple[str, ...]:
    if proxy is None or not proxy.password:
        return ()
    return (proxy.password, quote(proxy.password, safe=""))


def _mask(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _disk_error(destination: Path, error: OSError) -> FetchError:
    return FetchError(f"cannot write {destination}: {_strerror(error)}", "disk")


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        log.warning("cannot remove partial download %s: %s", path, _strerror(error))
