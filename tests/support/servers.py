"""Test support: real HTTP(S) servers on 127.0.0.1 (fixtures).

``StaticServer`` serves files from a directory (Content-Length, ETag, Last-Modified, 304 on
conditional GETs, streamed bodies), records every request, and can be told at run time to
misbehave per path: force a status, delay, stall, cut the body, lie about Content-Length.

Fixtures: ``test_ca`` / ``test_ca_file`` (session), ``http_server``, ``https_server``,
``legacy_tls_server`` (TLS 1.0 only), ``expired_https_server``, ``refused_port``,
``blackhole_port``.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import os
import socket
import ssl
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import trustme

CHUNK = 64 * 1024
SERVER_HOSTNAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    status: int | None  # None: stalled or cut before a status line was sent
    bytes_sent: int  # body bytes


@dataclass
class _Behaviour:
    status: int | None = None
    delay: float = 0.0
    stall: bool = False
    cut: bool = False
    cuts_left: int = 0  # cut this many answers, then answer in full
    stall_midway: bool = False
    content_length: int | None = None
    no_content_length: bool = False


@dataclass
class _Knobs:
    per_path: dict[str, _Behaviour] = field(default_factory=dict)
    default: _Behaviour = field(default_factory=_Behaviour)

    def for_path(self, path: str) -> _Behaviour:
        return self.per_path.get(path, self.default)


class StaticServer:
    """A threaded HTTP(S) server for ``directory`` on 127.0.0.1 and a free port.

    ``tls`` is a trustme leaf certificate (HTTPS) or None (plain HTTP); ``context_hook``
    may adjust the server SSLContext (e.g. restrict it to TLS 1.0).
    """

    def __init__(
        self,
        directory: Path,
        tls: trustme.LeafCert | None = None,
        *,
        context_hook: Callable[[ssl.SSLContext], None] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.scheme = "https" if tls is not None else "http"
        self._lock = threading.Condition()
        self._in_flight = 0
        self._requests: list[RecordedRequest] = []
        self._knobs = _Knobs()
        self._released = threading.Event()
        self._handshake_failures = 0
        self.errors: list[str] = []  # handler tracebacks, for debugging a failing test
        context: ssl.SSLContext | None = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.configure_cert(context)
            if context_hook is not None:
                context_hook(context)
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self, context)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> StaticServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # let stalled handlers finish
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` (relative to the served directory)."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- request log ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request answered (or stalled) so far.

        Waits (up to 5 s) for answers still being written: a client can finish reading a
        response before the handler that sent it has recorded it.
        """
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=5)
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        wanted = "/" + path.lstrip("/")
        return [request for request in self.requests if request.path == wanted]

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def record(self, request: RecordedRequest, *, finished: bool = True) -> None:
        with self._lock:
            self._requests.append(request)
            if finished:
                self._in_flight -= 1
                self._lock.notify_all()

    @property
    def handshake_failures(self) -> int:
        """How many TLS handshakes failed (waits for handshakes still in progress)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=5)
            return self._handshake_failures

    def end_handshake(self, *, failed: bool) -> None:
        with self._lock:
            self._handshake_failures += failed
            self._in_flight -= 1
            self._lock.notify_all()

    # -- knobs ----------------------------------------------------------------------

    def _behaviour(self, path: str | None) -> _Behaviour:
        with self._lock:
            if path is None:
                return self._knobs.default
            key = "/" + path.lstrip("/")
            return self._knobs.per_path.setdefault(key, _Behaviour(delay=self._knobs.default.delay))

    def set_status(self, path: str, status: int | None) -> None:
        """Answer ``path`` with ``status`` (e.g. 404, 500) instead of the file; None resets."""
        self._behaviour(path).status = status

    def set_delay(self, seconds: float, path: str | None = None) -> None:
        """Wait ``seconds`` before answering ``path`` (every path when None)."""
        self._behaviour(path).delay = seconds

    def stall(self, path: str | None = None) -> None:
        """Read the request on ``path`` (every path when None), then never answer."""
        self._behaviour(path).stall = True

    def cut(self, path: str) -> None:
        """Send the headers and half the body of ``path``, then close the connection."""
        self._behaviour(path).cut = True

    def cut_first(self, path: str, times: int = 1) -> None:
        """Cut the first ``times`` answers on ``path`` as ``cut`` does, then send it whole."""
        self._behaviour(path).cuts_left = times

    def cut_now(self, knobs: _Behaviour) -> bool:
        """Return whether this answer, with ``knobs``, is to be cut (counting down cut_first)."""
        with self._lock:
            if knobs.cuts_left > 0:
                knobs.cuts_left -= 1
                return True
            return knobs.cut

    def stall_midway(self, path: str) -> None:
        """Send the headers and half the body of ``path``, then go silent (connection open)."""
        self._behaviour(path).stall_midway = True

    def set_content_length(self, path: str, length: int) -> None:
        """Announce ``length`` as Content-Length of ``path``; send at most that many bytes
        (all of the file and then close, when the file is shorter)."""
        self._behaviour(path).content_length = length

    def omit_content_length(self, path: str) -> None:
        """Send ``path`` without Content-Length, its end marked by closing the connection."""
        self._behaviour(path).no_content_length = True

    def knobs_for(self, path: str) -> _Behaviour:
        with self._lock:
            return self._knobs.for_path(path)

    def wait_released(self, timeout: float) -> bool:
        return self._released.wait(timeout)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: StaticServer,
        context: ssl.SSLContext | None,
    ) -> None:
        self.owner = owner
        self.context = context
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Recorded instead of printed: clients that hang up mid-answer are routine here.
        self.owner.errors.append(traceback.format_exc())

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the per-connection thread, so that a client
        # that never completes it cannot block the accept loop.
        if self.context is not None:
            request.settimeout(10)
            self.owner.begin()
            try:
                wrapped = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                self.owner.end_handshake(failed=True)
                return
            self.owner.end_handshake(failed=False)
            try:
                super().finish_request(wrapped, client_address)
            finally:
                wrapped.close()
            return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10  # an idle keep-alive connection is dropped after this

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; keep pytest output clean

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    # -- answering ------------------------------------------------------------------

    def _answer(self, *, send_body: bool) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        knobs = owner.knobs_for(path)
        status: int | None = None
        sent = 0
        if knobs.stall:
            # Recorded on arrival: the client gives up long before this handler returns.
            owner.record(RecordedRequest(self.command, path, headers, None, 0), finished=False)
            owner.wait_released(60)
            self.close_connection = True
            return
        owner.begin()
        try:
            if knobs.delay:
                time.sleep(knobs.delay)
            if knobs.status is not None:
                status = knobs.status
                self._send_simple(status)
                return
            file_path = self._resolve(path)
            if file_path is None:
                status = HTTPStatus.NOT_FOUND
                self._send_simple(status)
                return
            status, sent = self._send_file(file_path, headers, knobs, send_body=send_body)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        finally:
            owner.record(RecordedRequest(self.command, path, headers, status, sent))

    def _resolve(self, path: str) -> Path | None:
        root = self.server.owner.directory.resolve()
        candidate = (root / path.lstrip("/")).resolve()
        if not candidate.is_relative_to(root) or not candidate.is_file():
            return None
        return candidate

    def _send_simple(self, status: int) -> None:
        body = f"{int(status)} {HTTPStatus(status).phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_file(
        self, file_path: Path, headers: dict[str, str], knobs: _Behaviour, *, send_body: bool
    ) -> tuple[int, int]:
        stat = file_path.stat()
        etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'
        modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if _not_modified(headers, etag, int(stat.st_mtime)):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", modified)
            self.end_headers()
            return HTTPStatus.NOT_MODIFIED, 0

        size = stat.st_size
        to_send = size
        announced: int | None = size
        if knobs.content_length is not None:
            announced = knobs.content_length
            to_send = min(size, knobs.content_length)
            if knobs.content_length > size:
                self.close_connection = True
        if knobs.no_content_length:
            announced = None
            self.close_connection = True
        if (send_body and self.server.owner.cut_now(knobs)) or knobs.stall_midway:
            to_send = size // 2
            self.close_connection = True

        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        if announced is not None:
            self.send_header("Content-Length", str(announced))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", modified)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return HTTPStatus.OK, 0
        sent = 0
        with file_path.open("rb") as source:
            while sent < to_send:
                chunk = source.read(min(CHUNK, to_send - sent))
                if not chunk:
                    break
                self.wfile.write(chunk)
                sent += len(chunk)
        self.wfile.flush()
        if knobs.stall_midway:
            self.server.owner.wait_released(60)
        return HTTPStatus.OK, sent


def _not_modified(headers: dict[str, str], etag: str, mtime: int) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip() for tag in if_none_match.split(",")}
        return etag in tags or "*" in tags
    if_modified_since = headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return mtime <= int(since.timestamp())
    return False


# -- certificates ---------------------------------------------------------------------


def expired_leaf(ca: trustme.CA) -> trustme.LeafCert:
    """Return a leaf certificate for 127.0.0.1/localhost, signed by ``ca``, that expired
    yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    return ca.issue_cert(
        *SERVER_HOSTNAMES,
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )


def tls10_only(context: ssl.SSLContext) -> None:
    """Restrict a server context to TLS 1.0. OpenSSL 3 refuses TLS 1.0 at the default
    security level, so the cipher string lowers it to 0 on this (test) side only."""
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1


# -- fixtures ---------------------------------------------------------------------------

ServerFactory = Callable[..., StaticServer]


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    """A throw-away certificate authority for the test HTTPS servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def test_ca_file(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PEM file of ``test_ca``, for HttpOptions.ca_file."""
    path = tmp_path_factory.mktemp("test-ca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def other_ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PEM file of a CA that signed none of the test servers."""
    path = tmp_path_factory.mktemp("other-ca") / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@contextlib.contextmanager
def _servers() -> Iterator[list[StaticServer]]:
    started: list[StaticServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def http_server() -> Iterator[ServerFactory]:
    """Factory: ``http_server(directory)`` starts a plain HTTP StaticServer."""
    with _servers() as started:

        def start(directory: Path) -> StaticServer:
            server = StaticServer(directory).start()
            started.append(server)
            return server

        yield start


@pytest.fixture
def https_server(test_ca: trustme.CA) -> Iterator[ServerFactory]:
    """Factory: ``https_server(directory)`` starts an HTTPS StaticServer whose certificate
    (127.0.0.1, localhost) is signed by ``test_ca``."""
    leaf = test_ca.issue_cert(*SERVER_HOSTNAMES)
    with _servers() as started:

        def start(directory: Path) -> StaticServer:
            server = StaticServer(directory, leaf).start()
            started.append(server)
            return server

        yield start


@pytest.fixture
def legacy_tls_server(test_ca: trustme.CA) -> Iterator[ServerFactory]:
    """Factory: an HTTPS StaticServer (certificate from ``test_ca``) that speaks TLS 1.0
    only."""
    leaf = test_ca.issue_cert(*SERVER_HOSTNAMES)
    with _servers() as started:

        def start(directory: Path) -> StaticServer:
            server = StaticServer(directory, leaf, context_hook=tls10_only).start()
            started.append(server)
            return server

        yield start


@pytest.fixture
def expired_https_server(test_ca: trustme.CA) -> Iterator[ServerFactory]:
    """Factory: an HTTPS StaticServer whose certificate from ``test_ca`` has expired."""
    leaf = expired_leaf(test_ca)
    with _servers() as started:

        def start(directory: Path) -> StaticServer:
            server = StaticServer(directory, leaf).start()
            started.append(server)
            return server

        yield start


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections for the whole test.

    The port is bound (so nobody else can take it) but never listens: Linux answers a
    connection attempt with RST, i.e. "connection refused".
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A 127.0.0.1 port where connection attempts hang until the client's connect timeout.

    The socket listens with a backlog of 0 and one connection already waiting in its
    accept queue; Linux drops the SYNs of any further attempt instead of refusing them.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def write_file(directory: Path, name: str, size: int, *, seed: int = 0) -> Path:
    """Create ``directory/name`` with ``size`` deterministic pseudo-random bytes."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    block = (bytes(range(256)) * 257)[seed % 256 :][:CHUNK]
    with path.open("wb") as output:
        remaining = size
        while remaining:
            piece = block[: min(len(block), remaining)]
            output.write(piece)
            remaining -= len(piece)
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path
