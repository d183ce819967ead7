"""Test support: a hostile HTTP(S) server on 127.0.0.1 that is slow on purpose (fixtures).

``HostileServer`` serves the files of a directory (one request per connection), and can be
told per path to misbehave the ways a hostile or broken source does:

- ``drip_headers(path)``: send the status line and headers one byte every ``interval``;
- ``drip_body(path)``: send the headers at once, then the body one byte every ``interval``;
- ``burst_body(path, size)``: send the body in bursts of ``size`` bytes every ``interval``
  (fast enough for any low-speed limit, slow enough to outlast a deadline);
- ``answer(path, status, headers)``: answer with that status and those headers (429 with
  Retry-After, say);
- ``stall_handshake()`` (HTTPS): accept connections and never answer the TLS ClientHello.

Every request is recorded (``requests``: the paths, in order). Stopping the server ends
every drip at once. Fixtures: ``drip_server`` and ``drip_https_server`` (factories).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import trustme

from tests.support.local import LoopbackListener
from tests.support.servers import SERVER_HOSTNAMES

ONE_BYTE_A_SECOND = 1.0


@dataclass
class _Misbehaviour:
    drip_headers: bool = False
    drip_body: bool = False
    burst: int = 0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class HostileServer(LoopbackListener):
    """A slow or uncooperative HTTP(S) server for ``directory`` on 127.0.0.1 (see the module
    docstring). ``interval`` is the pause between drips, in seconds."""

    def __init__(
        self, directory: Path, *, tls: trustme.LeafCert | None = None, interval: float = ONE_BYTE_A_SECOND
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.interval = interval
        self.scheme = "https" if tls is not None else "http"
        self._context: ssl.SSLContext | None = None
        if tls is not None:
            self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.configure_cert(self._context)
        self._per_path: dict[str, _Misbehaviour] = {}
        self._stall_handshake = False
        self._lock = threading.Lock()
        self._requests: list[str] = []
        self.connections = 0

    # -- addresses (start and stop: LoopbackListener) --------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    @property
    def requests(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    # -- knobs ------------------------------------------------------------------------------

    def _knobs(self, path: str) -> _Misbehaviour:
        with self._lock:
            return self._per_path.setdefault("/" + path.lstrip("/"), _Misbehaviour())

    def drip_headers(self, path: str) -> None:
        self._knobs(path).drip_headers = True

    def drip_body(self, path: str) -> None:
        self._knobs(path).drip_body = True

    def burst_body(self, path: str, size: int) -> None:
        self._knobs(path).burst = size

    def answer(self, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        knobs = self._knobs(path)
        knobs.status = status
        knobs.headers = dict(headers or {})

    def behave(self, path: str) -> None:
        """Serve ``path`` normally again."""
        with self._lock:
            self._per_path.pop("/" + path.lstrip("/"), None)

    def stall_handshake(self) -> None:
        self._stall_handshake = True

    # -- serving ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(10)
        with contextlib.ExitStack() as stack:
            stack.enter_context(client)
            if self._context is not None:
                if self._stall_handshake:
                    self._stopping.wait(60)  # read nothing, answer nothing
                    return
                try:
                    client = stack.enter_context(self._context.wrap_socket(client, server_side=True))
                except (ssl.SSLError, OSError):
                    return
            with contextlib.suppress(OSError):
                self._answer(client)

    def _answer(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 65536:
            data = client.recv(4096)
            if not data:
                return
            head += data
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        path = unquote(urlsplit(parts[1]).path) if len(parts) > 1 else "/"
        with self._lock:
            self._requests.append(path)
            knobs = self._per_path.get(path, _Misbehaviour())
        if knobs.status is not None:
            body = f"{knobs.status} from the hostile server\n".encode()
            lines = [f"HTTP/1.1 {knobs.status} Hostile", f"Content-Length: {len(body)}",
                     "Connection: close", *(f"{name}: {value}" for name, value in knobs.headers.items())]
            client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            return
        file_path = (self.directory / path.lstrip("/")).resolve()
        if not file_path.is_relative_to(self.directory.resolve()) or not file_path.is_file():
            client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        body = file_path.read_bytes()
        headers = (
            f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        if knobs.drip_headers:
            self._drip(client, headers, 1)
        else:
            client.sendall(headers)
        if knobs.drip_body:
            self._drip(client, body, 1)
        elif knobs.burst:
            self._drip(client, body, knobs.burst)
        else:
            client.sendall(body)

    def _drip(self, client: socket.socket, data: bytes, size: int) -> None:
        """Send ``data`` ``size`` bytes at a time, one piece every ``interval`` seconds."""
        for start in range(0, len(data), size):
            client.sendall(data[start : start + size])
            if self._stopping.wait(self.interval):
                raise OSError("server stopping")


HostileFactory = Callable[..., HostileServer]


@contextlib.contextmanager
def _started() -> Iterator[list[HostileServer]]:
    servers: list[HostileServer] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def drip_server() -> Iterator[HostileFactory]:
    """Factory: ``drip_server(directory, interval=1.0)`` starts a plain HTTP HostileServer."""
    with _started() as servers:

        def start(directory: Path, *, interval: float = ONE_BYTE_A_SECOND) -> HostileServer:
            server = HostileServer(directory, interval=interval).start()
            servers.append(server)
            return server

        yield start


@pytest.fixture
def drip_https_server(test_ca: trustme.CA) -> Iterator[HostileFactory]:
    """Factory: an HTTPS HostileServer whose certificate (127.0.0.1, localhost) is signed by
    ``test_ca``."""
    leaf = test_ca.issue_cert(*SERVER_HOSTNAMES)
    with _started() as servers:

        def start(directory: Path, *, interval: float = ONE_BYTE_A_SECOND) -> HostileServer:
            server = HostileServer(directory, tls=leaf, interval=interval).start()
            servers.append(server)
            return server

        yield start
