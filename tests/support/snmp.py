"""Test support: Debian's snmptrapd as a real SNMP notification receiver on 127.0.0.1.

``trap_receiver(port=None, ...)`` starts snmptrapd on a free UDP port with the shipped MIB
(``imss_updater/data/IMSS-UPDATER-MIB.txt``) loaded, accepting v2c community ``public`` and the v3
authPriv (SHA/AES-128) user ``V3_USER`` for traps from ``SENDER_ENGINE_ID`` and for
informs. Decoded notifications go to a log file; ``wait_for(text)`` waits until it appears.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIB_DIR = REPO / "imss_updater" / "data"
COMMUNITY = "public"
V3_USER = "imssops"
V3_AUTH = "auth-pass-123"
V3_PRIV = "priv-pass-456"
SENDER_ENGINE_ID = "80007ed905a1b2c3d4e5f60718"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class TrapReceiver:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        """Return the log once it contains ``needle``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            content = self.text()
            if needle in content:
                return content
            time.sleep(0.05)
        raise AssertionError(f"snmptrapd did not log {needle!r}; log:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


ReceiverFactory = Callable[..., TrapReceiver]


@pytest.fixture
def trap_receiver(tmp_path: Path) -> Iterator[ReceiverFactory]:
    if shutil.which("snmptrapd") is None:
        pytest.fail("snmptrapd is not installed (Debian package snmptrapd)")
    receivers: list[TrapReceiver] = []

    def start(port: int | None = None) -> TrapReceiver:
        for attempt in range(5):
            chosen = port or free_udp_port()
            workdir = tmp_path / f"snmptrapd-{chosen}-{attempt}"
            workdir.mkdir()
            config = workdir / "snmptrapd.conf"
            config.write_text(
                f"authCommunity log {COMMUNITY}\n"
                f"createUser -e 0x{SENDER_ENGINE_ID} {V3_USER} SHA {V3_AUTH} AES {V3_PRIV}\n"
                f"createUser {V3_USER} SHA {V3_AUTH} AES {V3_PRIV}\n"
                f"authUser log {V3_USER} priv\n"
            )
            log = workdir / "traps.log"
            process = subprocess.Popen(
                ["snmptrapd", "-f", "-C", "-c", str(config), "-Lf", str(log), "-p", str(workdir / "pid"),
                 "-M", str(MIB_DIR), "-m", "IMSS-UPDATER-MIB", f"udp:127.0.0.1:{chosen}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "SNMP_PERSISTENT_DIR": str(workdir / "persist"), "MIBS": ""},
            )
            receiver = TrapReceiver(chosen, log, process)
            receivers.append(receiver)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and process.poll() is None:
                if "NET-SNMP version" in receiver.text():
                    return receiver
                time.sleep(0.05)
            receiver.stop()
            if port:
                break
        raise AssertionError(f"snmptrapd did not start; log:\n{receiver.text()[-2000:]}")

    yield start
    for receiver in receivers:
        receiver.stop()
