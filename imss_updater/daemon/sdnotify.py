"""The systemd notification protocol (sd_notify): readiness, status and the watchdog.

A datagram to the socket named by ``NOTIFY_SOCKET``; without that variable (not started
by systemd with Type=notify) every call does nothing.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(*lines: str) -> bool:
    """Send ``KEY=value`` lines to systemd; return True if there was a socket to send to."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as channel:
            channel.connect(address)
            channel.sendall("\n".join(lines).encode())
    except OSError as error:
        log.debug("sd_notify to %s failed: %s", address, error)
        return False
    return True


def watchdog_seconds() -> float | None:
    """Return the watchdog period systemd expects pings within, or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000
