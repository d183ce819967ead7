"""The daemon's delivery of notifications: one worker thread per channel, paced.

Mail and traps are delivered by workers of their own, so a mail relay that accepts and
never answers holds up only mail, and only for one attempt (``SMTPTimeout``); traps go on.
Each worker sends at a bounded rate (``Pacer``: ``BURST`` at once, then one every
``INTERVAL_SECONDS``), so a backlog after an outage reaches the administrator gradually
instead of in one burst. Workers are daemon threads: ``stop`` sets a flag that also cuts
the attempt under way short (it is tried again at the next start without counting as a
failed attempt), and the process never waits on a channel to exit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from imss_updater.database.db import Database, DatabaseError
from imss_updater.notify.delivery import deliver_pending

log = logging.getLogger(__name__)

CHANNELS = ("mail", "trap")
BURST = 3
INTERVAL_SECONDS = 10.0
POLL_SECONDS = 60.0  # due retries are looked for at least this often


class Pacer:
    """A token bucket: at most ``burst`` messages at once, then one per ``interval`` seconds.

    ``clock`` (monotonic seconds) is injectable, so the pacing is tested without waiting.
    """

    def __init__(self, burst: int, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) / self.interval)
        self.updated = now

    def available(self) -> int:
        """Return how many messages may go now."""
        self._refill()
        return int(self.tokens)

    def spend(self, count: int) -> None:
        self._refill()
        self.tokens = max(0.0, self.tokens - count)

    def wait_seconds(self) -> float:
        """Return how long until the next message may go (0: now)."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) * self.interval


class ChannelWorker:
    """Delivers the queued notifications of one channel (``mail`` or ``trap``)."""

    def __init__(
        self,
        channel: str,
        dsn: Callable[[], str],
        *,
        pacer: Pacer | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.channel = channel
        self.dsn = dsn
        self.pacer = pacer or Pacer(BURST, INTERVAL_SECONDS)
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self.woken = threading.Event()
        self.thread: threading.Thread | None = None
        self.database_ok = True

    def round(self) -> float:
        """Deliver what is due and allowed by the pacing now; return how many seconds to
        wait before the next round. Never raises."""
        allowed = self.pacer.available()
        if allowed == 0:
            return self.pacer.wait_seconds()
        try:
            with Database(self.dsn()) as database:
                report = deliver_pending(database, channel=self.channel, limit=allowed, cancel=self.stopping)
        except DatabaseError as error:
            if self.database_ok:  # the daemon's loop reports the outage itself
                log.debug("%s notifications not delivered now: %s", self.channel, error)
            self.database_ok = False
            return self.poll_seconds
        except Exception as error:  # a bug here must not end the worker
            log.error("%s delivery failed unexpectedly: %s", self.channel, error)
            log.debug("%s delivery failed", self.channel, exc_info=True)
            return self.poll_seconds
        self.database_ok = True
        self.pacer.spend(len(report.attempts))
        if report.attempts:
            log.info("%s notifications: %d sent, %d to retry, %d failed", self.channel, report.sent,
                     report.retried, report.failed)
        if len(report.attempts) >= allowed:  # maybe more due: as soon as the pacing allows
            return self.pacer.wait_seconds()
        return self.poll_seconds

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"notify-{self.channel}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            pause = self.round()
            self.woken.wait(pause)
            self.woken.clear()

    def wake(self) -> None:
        """Look for due notifications now (pacing still applies)."""
        self.woken.set()

    def stop(self) -> None:
        """Stop after the attempt under way, which is cut short at once."""
        self.stopping.set()
        self.woken.set()

    def join(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the worker to end; return whether it has."""
        if self.thread is not None:
            self.thread.join(seconds)
            return not self.thread.is_alive()
        return True


class Deliveries:
    """The workers of every channel, started, woken and stopped together."""

    def __init__(self, dsn: Callable[[], str], channels: Sequence[str] = CHANNELS) -> None:
        self.workers = [ChannelWorker(channel, dsn) for channel in channels]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def join(self, seconds: float) -> bool:
        """Wait up to ``seconds`` in all for the workers to end; return whether they have."""
        deadline = time.monotonic() + seconds
        ended = True
        for worker in self.workers:
            ended = worker.join(max(0.0, deadline - time.monotonic())) and ended
        if not ended:
            log.warning("a notification channel did not stop in time; its message is retried at the"
                        " next start")
        return ended
