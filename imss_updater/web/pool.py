"""A small pool of Database connections shared by the console's request threads.

Connecting to PostgreSQL costs a TCP handshake and a SCRAM exchange; the status page
must stay fast under 50 clients, so connections are reused. A connection that broke
(server restarted) is discarded when it is returned after a DatabaseError.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from imss_updater.database.db import Database, DatabaseError

log = logging.getLogger(__name__)


class DatabasePool:
    """Hands out Database objects for ``dsn``; keeps at most ``size`` idle ones."""

    def __init__(self, dsn: str, *, size: int = 8, connect: Callable[[str], Database] = Database) -> None:
        self.dsn = dsn
        self.connect = connect
        self.idle: queue.LifoQueue[Database] = queue.LifoQueue(maxsize=size)
        self.lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """Yield a connected Database. Raise DatabaseError if none can be opened."""
        database = self._take()
        broken = False
        try:
            yield database
        except DatabaseError:
            broken = True
            raise
        finally:
            self._give_back(database, broken=broken)

    def _take(self) -> Database:
        while True:
            try:
                database = self.idle.get_nowait()
            except queue.Empty:
                return self.connect(self.dsn)
            if not database.connection.closed:
                return database

    def _give_back(self, database: Database, *, broken: bool) -> None:
        if broken or database.connection.closed:
            database.close()
            return
        try:
            self.idle.put_nowait(database)
        except queue.Full:
            database.close()

    def close(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return
