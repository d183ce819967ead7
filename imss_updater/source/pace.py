"""The pace of one fetch: a low-speed limit and a total deadline, enforced at the socket.

A per-read timeout alone never abandons a source that sends one byte a second: every read
returns within it. So each fetch runs under a ``TransferWatch`` (like curl's
``--speed-limit``/``--speed-time`` and ``--max-time``): the bytes that arrive are counted in
windows of ``low_speed_seconds``, and a window that closes with fewer than
``low_speed_bytes`` ends the fetch; the whole fetch, retries included, must end before its
deadline. The watch is consulted by the sockets themselves (``WatchedSocket`` here,
``tls.WatchedSSLSocket`` for TLS), so it covers every phase: connecting, the CONNECT tunnel,
the TLS handshake, waiting for the headers and reading the body. Before each blocking read
the socket timeout is shortened to what is left of the deadline or of the window, so a
source that sends nothing at all is abandoned on time too, and the failure says which limit
was reached (``TransferAborted``).
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

TOO_SLOW = "too_slow"
DEADLINE = "deadline"
HANDSHAKE = "handshake"

_current: ContextVar[TransferWatch | None] = ContextVar("imss_transfer_watch", default=None)


class TransferAborted(OSError):
    """Raised from a socket operation when a limit of the running fetch is reached.

    ``cause`` is TOO_SLOW, DEADLINE or HANDSHAKE (the TLS handshake took longer than its
    timeout, ``seconds``). An OSError, so every layer above cleans the connection up as for
    any socket error; ``source.http`` finds it in the exception chain and names the cause.
    """

    def __init__(self, cause: str, seconds: float) -> None:
        super().__init__(f"transfer aborted ({cause} after {seconds:g} s)")
        self.cause = cause
        self.seconds = seconds


class TransferWatch:
    """The limits of one fetch (all its attempts). ``low_speed_bytes`` 0 disables the
    low-speed limit, ``deadline`` None the deadline."""

    def __init__(
        self,
        low_speed_bytes: int,
        low_speed_seconds: float,
        deadline: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.low_speed_bytes = low_speed_bytes
        self.low_speed_seconds = low_speed_seconds
        self.deadline = deadline
        self._clock = clock
        self.started = clock()
        self._deadline_at = math.inf if deadline is None else self.started + deadline
        self._window_start = self.started
        self._window_bytes = 0

    @property
    def _limits_speed(self) -> bool:
        return self.low_speed_bytes > 0 and self.low_speed_seconds > 0

    def restart_window(self) -> None:
        """Start a new low-speed window (at the start of each attempt)."""
        self._window_start = self._clock()
        self._window_bytes = 0

    def remaining(self) -> float:
        """Seconds left before the deadline (infinite without one)."""
        return self._deadline_at - self._clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    @contextlib.contextmanager
    def active(self) -> Iterator[TransferWatch]:
        """Make this the watch of the sockets used by the current thread (and context)."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def limit(self, timeout: float | None) -> tuple[float | None, str | None]:
        """Given the timeout a blocking socket operation would use (None: none), return the
        timeout to use instead and which limit shortened it (None: not shortened). Raise
        TransferAborted when the deadline has passed already."""
        now = self._clock()
        remaining = self._deadline_at - now
        if remaining <= 0:
            raise TransferAborted(DEADLINE, self.deadline or 0.0)
        best, cause = (math.inf, None) if timeout is None else (timeout, None)
        if remaining < best:
            best, cause = remaining, DEADLINE
        if self._limits_speed:
            window_left = self._window_start + self.low_speed_seconds - now
            if self._window_bytes >= self.low_speed_bytes:
                window_left += self.low_speed_seconds  # this window is met; the next one counts
            if window_left < best:
                best, cause = max(window_left, 0.001), TOO_SLOW
        return (None if math.isinf(best) else best), cause

    def received(self, count: int) -> None:
        """Count ``count`` bytes just received. Raise TransferAborted (TOO_SLOW) when a
        window closed with fewer than ``low_speed_bytes``, (DEADLINE) past the deadline."""
        now = self._clock()
        if now >= self._deadline_at:
            raise TransferAborted(DEADLINE, self.deadline or 0.0)
        if not self._limits_speed:
            return
        self._window_bytes += count
        if now - self._window_start >= self.low_speed_seconds:
            if self._window_bytes < self.low_speed_bytes:
                raise TransferAborted(TOO_SLOW, self.low_speed_seconds)
            self._window_start, self._window_bytes = now, 0

    def abort(self, cause: str | None) -> TransferAborted | None:
        """Given which limit shortened a socket timeout that has just expired, return the
        exception that names it (None: the socket's own timeout expired)."""
        if cause == DEADLINE:
            return TransferAborted(DEADLINE, self.deadline or 0.0)
        if cause == TOO_SLOW:
            return TransferAborted(TOO_SLOW, self.low_speed_seconds)
        return None


def current() -> TransferWatch | None:
    """Return the watch of the fetch running in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def bounded(
    base: float | None, set_timeout: Callable[[float | None], None]
) -> Iterator[TransferWatch | None]:
    """Run one blocking socket operation under the current watch: its timeout shortened
    as ``TransferWatch.limit`` says and restored to ``base`` afterwards; a timeout caused
    by a limit becomes TransferAborted. Yield the watch (None: no fetch is watched)."""
    watch = current()
    if watch is None:
        yield None
        return
    timeout, cause = watch.limit(base)
    if timeout != base:
        set_timeout(timeout)
    try:
        yield watch
    except TimeoutError as error:
        aborted = watch.abort(cause)
        if aborted is not None:
            raise aborted from error
        raise
    finally:
        if timeout != base:
            set_timeout(base)


class WatchedSocket(socket.socket):
    """A TCP socket whose reads count towards, and stop at, the current watch's limits."""

    _base_timeout: float | None = None

    @classmethod
    def adopt(cls, sock: socket.socket) -> WatchedSocket:
        """Return a WatchedSocket for the connection of ``sock`` (which is detached)."""
        timeout = sock.gettimeout()
        watched = cls(sock.family, sock.type, sock.proto, sock.detach())
        watched.settimeout(timeout)
        return watched

    def settimeout(self, value: float | None) -> None:
        self._base_timeout = value
        super().settimeout(value)

    def _set_effective(self, value: float | None) -> None:
        super().settimeout(value)

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        with bounded(self._base_timeout, self._set_effective) as watch:
            count = super().recv_into(buffer, nbytes, flags)
        if watch is not None:
            watch.received(count)
        return count

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        with bounded(self._base_timeout, self._set_effective) as watch:
            data = super().recv(bufsize, flags)
        if watch is not None:
            watch.received(len(data))
        return data
