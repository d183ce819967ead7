"""Test support: a real HTTP proxy (Debian's tinyproxy) on 127.0.0.1 (fixtures).

``tinyproxy(user=..., password=...)`` starts ``tinyproxy -d -c <conf>`` on a free port with
its own config and log file, CONNECT allowed to any port, and returns a ``RunningProxy``.

tinyproxy 1.11 accepts only ``[-A-Za-z0-9._]`` in ``BasicAuth`` user names and passwords.
For credentials outside that set (``p@ss:w/rd%#``), the fixture runs tinyproxy without
authentication behind ``AuthGate``: a small relay on its own port that checks the
``Proxy-Authorization`` header of each connection's first request exactly (answering 407
otherwise), strips it, and pipes the connection to tinyproxy. Traffic still goes through
tinyproxy and shows in its log.
"""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.local import LoopbackListener, stop_process, wait_for_text
from tests.support.pg import free_port

TINYPROXY_CREDENTIAL = re.compile(r"^[-A-Za-z0-9._]+$")
START_TIMEOUT = 10.0


@dataclass
class RunningProxy:
    host: str
    port: int
    user: str
    password: str
    log_path: Path
    process: subprocess.Popen[bytes]
    gate: AuthGate | None = None

    def log(self) -> str:
        """Return tinyproxy's log so far."""
        return self.log_path.read_text(errors="replace")

    def saw(self, text: str, timeout: float = 5.0) -> bool:
        """Return True once ``text`` appears in the log (tinyproxy writes it shortly after
        the request); False after ``timeout`` seconds."""
        return wait_for_text(self.log, text, timeout)

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.stop()
        stop_process(self.process)


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def start_tinyproxy(directory: Path, *, user: str = "", password: str = "") -> RunningProxy:
    """Start tinyproxy in the foreground with a config in ``directory``; return once it
    accepts connections. Raise RuntimeError if it does not start."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        raise RuntimeError("tinyproxy is not installed (apt-get install tinyproxy)")
    native_auth = bool(user) and bool(
        TINYPROXY_CREDENTIAL.match(user) and TINYPROXY_CREDENTIAL.match(password)
    )
    log_path = directory / "tinyproxy.log"
    output_path = directory / "tinyproxy.out"
    for _ in range(5):  # the free port can be taken by someone else before tinyproxy binds it
        port = free_port()
        lines = [
            f"Port {port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{log_path}"',
            "LogLevel Info",
            "MaxClients 50",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            # No ConnectPort line: CONNECT is allowed to every port.
        ]
        if native_auth:
            lines.append(f"BasicAuth {user} {password}")
        config = directory / "tinyproxy.conf"
        config.write_text("\n".join(lines) + "\n")
        with output_path.open("ab") as output:
            process = subprocess.Popen(
                [binary, "-d", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        if _wait_listening(port, process, START_TIMEOUT):
            running = RunningProxy("127.0.0.1", port, user, password, log_path, process)
            if user and not native_auth:
                running.gate = AuthGate(port, user, password).start()
                running.port = running.gate.port
            return running
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
    raise RuntimeError(f"tinyproxy did not start: {output_path.read_text(errors='replace')}")


class AuthGate(LoopbackListener):
    """A relay in front of tinyproxy that enforces Basic proxy authentication with any
    characters in the credentials (see the module docstring)."""

    def __init__(self, upstream_port: int, user: str, password: str) -> None:
        super().__init__()
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.expected = f"Basic {token}"
        self.upstream_port = upstream_port
        self.accepted = 0
        self.rejected = 0
        self._lock = threading.Lock()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(30)
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = client.recv(4096)
                if not data:
                    return
                head += data
            header_block, _, rest = head.partition(b"\r\n\r\n")
            lines = header_block.split(b"\r\n")
            credentials = None
            kept = []
            for line in lines:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"proxy-authorization":
                    credentials = value.strip().decode("latin-1")
                else:
                    kept.append(line)
            if credentials != self.expected:
                with self._lock:
                    self.rejected += 1
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="gate"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            with self._lock:
                self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            with upstream:
                upstream.sendall(b"\r\n".join(kept) + b"\r\n\r\n" + rest)
                _pipe_both_ways(client, upstream)


def _pipe_both_ways(first: socket.socket, second: socket.socket) -> None:
    def copy(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    backward = threading.Thread(target=copy, args=(second, first), daemon=True)
    backward.start()
    copy(first, second)
    backward.join(timeout=35)


ProxyFactory = Callable[..., RunningProxy]


@pytest.fixture
def tinyproxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyFactory]:
    """Factory: ``tinyproxy(user="", password="")`` starts a tinyproxy for this test and
    returns a RunningProxy; every one started is stopped after the test."""
    started: list[RunningProxy] = []

    def start(*, user: str = "", password: str = "") -> RunningProxy:
        directory = tmp_path_factory.mktemp("tinyproxy")
        running = start_tinyproxy(directory, user=user, password=password)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()
