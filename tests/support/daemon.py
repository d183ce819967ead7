"""Test support: real ``imss-updater run`` processes and a systemd notification socket.

``start_daemon(gateway)`` starts the daemon as its own process against the gateway's
database and install root, with its log in a file and ``NOTIFY_SOCKET`` pointing at a
datagram socket the test reads (what systemd would receive).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.gateway import REPO, Gateway
from tests.support.pg import free_port


class NotifySocket:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="imss-notify-"))
        self.path = self.directory / "notify"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.socket.settimeout(0.2)
        self.messages: list[str] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.closed.is_set():
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.extend(data.decode().splitlines())

    def close(self) -> None:
        self.closed.set()
        self.thread.join(timeout=2)
        self.socket.close()
        self.path.unlink(missing_ok=True)
        self.directory.rmdir()


class RunningDaemon:
    def __init__(self, process: subprocess.Popen[bytes], log_path: Path, notify: NotifySocket,
                 web: str) -> None:
        self.web = web  # host:port of the status page
        self.process = process
        self.log_path = log_path
        self.notify = notify

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def stop(self, timeout: float = 15.0) -> tuple[int, float]:
        """SIGTERM; return (exit code, seconds it took)."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


DaemonFactory = Callable[..., RunningDaemon]


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    """Factory: ``start_daemon(gateway, env=None, args=())`` -> RunningDaemon (killed after)."""
    started: list[RunningDaemon] = []

    def start(gateway: Gateway | None = None, *, env: dict[str, str] | None = None,
              args: tuple[str, ...] = ()) -> RunningDaemon:
        notify = NotifySocket()
        log_path = tmp_path / f"daemon-{len(started)}.log"
        command = [sys.executable, "-m", "imss_updater.cli", "run", "-v", *args]
        if gateway is not None:
            command += gateway.common_args()
        environment = {**os.environ, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": str(notify.path),
                       "TZ": "Asia/Tokyo", "IMSS_STATE": str(tmp_path / "state"),
                       "IMSS_WEB": f"127.0.0.1:{free_port()}", **(env or {})}
        web = environment["IMSS_WEB"]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                       cwd=REPO, env=environment)
        daemon = RunningDaemon(process, log_path, notify, web)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
        daemon.notify.close()
