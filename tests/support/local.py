"""Small helpers the local test peers share: waiting for a log line, stopping a process,
a tiny tmpfs (for disk-full tests), a loopback listener thread."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest


def wait_for_text(read: Callable[[], str], text: str, timeout: float = 5.0) -> bool:
    """Return True once ``text`` appears in what ``read()`` returns; False after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if text in read():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate ``process`` (kill it if it does not stop within ``timeout``) and reap it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def tiny_tmpfs(mount_point: Path, size: str = "1m") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` on ``mount_point`` (created if missing) for the block; skip
    the test when mounting is impossible (the tests run as root)."""
    mount_point.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


class LoopbackListener:
    """A TCP listener on 127.0.0.1 (a free port, ``port``) served by one daemon thread that
    runs ``_serve`` until ``stop``; subclasses accept on ``_listener`` (0.1 s timeout) while
    ``_stopping`` is not set."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(32)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        raise NotImplementedError
