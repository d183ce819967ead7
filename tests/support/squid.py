"""Test support: a real squid with Basic proxy authentication (basic_ncsa_auth) (fixtures).

``squid(users={"name": "password"})`` starts ``squid -N -f <conf>`` with its own config,
htpasswd file, logs and cache directory in a new temp directory, on a free 127.0.0.1 port,
CONNECT allowed to every port once authenticated, and returns a ``RunningSquid``. No system
service is involved; every squid started is stopped after the test.

The htpasswd file is written with ``htpasswd -b -m`` (APR1-MD5: DES crypt would keep only 8
bytes) from the UTF-8 bytes of each password, so a client authenticates only by sending the
credentials as UTF-8 (squid hands the decoded bytes to basic_ncsa_auth unchanged).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.local import stop_process, wait_for_text
from tests.support.pg import free_port

START_TIMEOUT = 20.0
SQUID_USER = "proxy"  # Debian's squid runs as this user
HELPER = Path("/usr/lib/squid/basic_ncsa_auth")


@dataclass
class RunningSquid:
    host: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def access_log(self) -> Path:
        return self.directory / "logs" / "access.log"

    def log(self) -> str:
        """Return squid's access log so far."""
        if not self.access_log.exists():
            return ""
        return self.access_log.read_text(errors="replace")

    def saw(self, text: str, timeout: float = 5.0) -> bool:
        """Return True once ``text`` appears in the access log (squid writes a line when a
        request ends); False after ``timeout`` seconds."""
        return wait_for_text(self.log, text, timeout)

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


def _config(directory: Path, port: int) -> str:
    logs = directory / "logs"
    return "\n".join([
        f"http_port 127.0.0.1:{port}",
        "visible_hostname imss-test-squid",
        f"cache_effective_user {SQUID_USER}",
        f"pid_filename {logs / 'squid.pid'}",
        f"cache_log {logs / 'cache.log'}",
        f"access_log stdio:{logs / 'access.log'}",
        "cache_store_log none",
        f"coredump_dir {directory / 'cache'}",
        "cache deny all",
        "cache_mem 8 MB",
        "shutdown_lifetime 0 seconds",
        "icp_port 0",
        "htcp_port 0",
        "pinger_enable off",
        "netdb_filename none",
        f"auth_param basic program {HELPER} {directory / 'passwd'}",
        "auth_param basic children 2 startup=1 idle=1",
        "auth_param basic realm imss-test",
        "acl authenticated proxy_auth REQUIRED",
        # No Safe_ports / SSL_ports rules: CONNECT to the test servers' ports is allowed.
        "http_access allow authenticated",
        "http_access deny all",
    ]) + "\n"


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


def start_squid(users: dict[str, str]) -> RunningSquid:
    """Start squid in the foreground with the given users; return once it accepts
    connections. Raise RuntimeError if it does not start."""
    binary, htpasswd = shutil.which("squid"), shutil.which("htpasswd")
    if binary is None or htpasswd is None or not HELPER.exists():
        raise RuntimeError("squid or htpasswd is missing (apt-get install squid apache2-utils)")
    account = pwd.getpwnam(SQUID_USER)
    # Not under pytest's tmp_path: squid and its helper run as the proxy user, which must
    # traverse the directory and read the password file.
    directory = Path(tempfile.mkdtemp(prefix="imss-squid-"))
    directory.chmod(0o755)  # the proxy user must traverse it
    for name in ("logs", "cache"):
        (directory / name).mkdir()
        os.chown(directory / name, account.pw_uid, account.pw_gid)
    passwd = directory / "passwd"
    for number, (user, password) in enumerate(users.items()):
        flags = ["-b", "-m", "-c"] if number == 0 else ["-b", "-m"]
        subprocess.run(
            [htpasswd, *flags, str(passwd), user.encode(), password.encode()],
            check=True, capture_output=True,
        )
    passwd.chmod(0o644)
    output = directory / "squid.out"
    for _ in range(5):  # the free port can be taken by someone else before squid binds it
        port = free_port()
        config = directory / "squid.conf"
        config.write_text(_config(directory, port))
        with output.open("ab") as sink:
            process = subprocess.Popen(
                [binary, "-N", "-f", str(config)],
                stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=directory,
            )
        if _wait_listening(port, process, START_TIMEOUT):
            return RunningSquid("127.0.0.1", port, directory, process)
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)
    text = output.read_text(errors="replace")
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"squid did not start: {text}")


SquidFactory = Callable[..., RunningSquid]


@pytest.fixture
def squid() -> Iterator[SquidFactory]:
    """Factory: ``squid(users={"name": "password"})`` starts a squid for this test and
    returns a RunningSquid; every one started is stopped after the test."""
    started: list[RunningSquid] = []

    def start(*, users: dict[str, str]) -> RunningSquid:
        running = start_squid(users)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.stop()
