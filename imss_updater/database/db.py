"""PostgreSQL: the only module (with embedded_db) that imports psycopg2.

The schema lives in ``sql/``: numbered migrations applied once each (recorded in
``tb_schema_version``) and ``defaults.sql``, whose rows are inserted only where missing,
so ``db init`` is idempotent and never overwrites what an administrator changed.
"""

from __future__ import annotations

import datetime
import importlib.resources
import logging
import re
import select
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from imss_updater.catalog import DEFAULT_CATALOG, Component, EventGroup, Kind, SourceRole

log = logging.getLogger(__name__)

SQL_DIR = Path(str(importlib.resources.files("imss_updater") / "sql"))  # package data
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


class DatabaseError(Exception):
    """The database could not be reached or refused a statement; the message says why."""


def mask_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***`` (key/value or URI form)."""
    masked = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)
    return re.sub(r"(postgres(?:ql)?://[^:/@]*:)[^@]*@", r"\1***@", masked)


@dataclass(frozen=True)
class ComponentState:
    id: str
    current_version: str | None
    previous_version: str | None
    installed_at: datetime.datetime | None
    last_success_at: datetime.datetime | None
    unsigned: bool
    restart_pending: bool
    available_version: str | None
    available_status: str  # known, absent, unknown
    available_reason: str | None
    checked_at: datetime.datetime | None
    stale: bool = False
    available_authenticated: bool = False  # offered by an index whose signature verified


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime.datetime
    kind: str
    component: str
    version: str | None
    outcome: str
    message: str
    message_ja: str
    reason: str | None


@dataclass(frozen=True)
class NewEvent:
    """An event to record: ``kind`` scheduled/manual/rollback, ``outcome`` success/failure."""

    kind: str
    component: str
    version: str | None
    outcome: str
    message: str
    message_ja: str
    reason: str | None = None
    time: datetime.datetime | None = None  # None: now (an event written later keeps its time)


@dataclass(frozen=True)
class CachedIndex:
    """The last accepted server.ini of a URL; ``signature`` is the index signature that
    verified it (None: none published, or not looked for: ``signature_checked`` says which)."""

    url: str
    etag: str | None
    last_modified: str | None
    body: bytes
    signature: bytes | None = None
    signature_checked: bool = False


@dataclass(frozen=True)
class InstalledPackage:
    """A package being installed, for the replay memory and the signature pin (SPEC 3.1)."""

    sha256: str
    version: str
    signed: bool


@dataclass(frozen=True)
class SourceCooldown:
    base_url: str
    until: datetime.datetime
    reason: str


@dataclass(frozen=True)
class RunStatus:
    last_check_at: datetime.datetime | None
    last_check_ok: bool | None
    last_check_text: str | None
    last_run_at: datetime.datetime | None
    last_run_kind: str | None
    last_run_ok: bool | None
    last_run_text: str | None
    scan_service: str | None
    policy_service: str | None
    last_scheduled_at: datetime.datetime | None = None
    next_run_at: datetime.datetime | None = None
    settings_problem: str | None = None
    daemon_pid: int | None = None
    daemon_heartbeat: datetime.datetime | None = None


class Database:
    """One connection to the updater's database. Use as a context manager."""

    def __init__(self, dsn: str, *, connect_timeout: int = 10) -> None:
        self.dsn = dsn
        try:
            self.connection = psycopg2.connect(dsn, connect_timeout=connect_timeout)
        except psycopg2.Error as error:
            reason = f"cannot connect to the database ({mask_dsn(dsn)}): {_first_line(error)}"
            raise DatabaseError(reason) from error

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if not self.connection.closed:
            self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg2.extensions.cursor]:
        """Yield a cursor inside one transaction: committed on success, rolled back on error.

        Raise DatabaseError for any database failure, with its first line as the reason.
        """
        try:
            with self.connection, self.connection.cursor() as cursor:
                yield cursor
        except psycopg2.Error as error:
            raise DatabaseError(f"database error: {_first_line(error)}") from error

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self.transaction() as cursor:
            cursor.execute("SELECT to_regclass('tb_schema_version') IS NOT NULL")
            row = cursor.fetchone()
            if not row or not row[0]:
                return 0
            cursor.execute("SELECT coalesce(max(version), 0) FROM tb_schema_version")
            found = cursor.fetchone()
            return int(found[0]) if found else 0

    def init(self, *, up_to: int | None = None) -> list[str]:
        """Create or upgrade the schema, then add missing default rows.

        Return the names of the migrations applied now. ``up_to`` stops after that
        migration number and skips the defaults (used to build an older schema in tests).
        """
        applied: list[str] = []
        with self.transaction() as cursor:
            # One init at a time: two gateways' installers racing must not both migrate.
            cursor.execute("SELECT pg_advisory_xact_lock(7243001)")
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS tb_schema_version ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor.execute("SELECT version FROM tb_schema_version")
            done = {row[0] for row in cursor.fetchall()}
            for number, path in migrations():
                if up_to is not None and number > up_to:
                    break
                if number in done:
                    continue
                log.info("applying schema migration %s", path.name)
                cursor.execute(path.read_text(encoding="utf-8"))
                cursor.execute(
                    "INSERT INTO tb_schema_version (version, name) VALUES (%s, %s)", (number, path.name)
                )
                applied.append(path.name)
            if up_to is None:
                cursor.execute((SQL_DIR / "defaults.sql").read_text(encoding="utf-8"))
                self._insert_default_catalog(cursor)
        return applied

    @staticmethod
    def _insert_default_catalog(cursor: psycopg2.extensions.cursor) -> None:
        for component in DEFAULT_CATALOG:
            cursor.execute(
                "INSERT INTO tb_component (id, name_en, name_ja, kind, source, au_key, license,"
                " feature, event_group, live_path, sort_order, on_control_manager)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO NOTHING",
                (
                    component.id, component.name_en, component.name_ja, component.kind.value,
                    component.source.value, component.au_key, component.license, component.feature,
                    component.event_group.value, component.live_path, component.sort_order,
                    component.on_control_manager,
                ),
            )
        cursor.execute(
            "INSERT INTO tb_component_state (id) SELECT id FROM tb_component ON CONFLICT DO NOTHING"
        )

    # -- settings -----------------------------------------------------------------------

    def settings_rows(self) -> dict[tuple[str, str], str]:
        with self.transaction() as cursor:
            cursor.execute("SELECT section, name, value FROM tb_global_setting")
            return {(section, name): value for section, name, value in cursor.fetchall()}

    def get_setting(self, section: str, name: str) -> str | None:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT value FROM tb_global_setting WHERE section = %s AND name = %s", (section, name)
            )
            row = cursor.fetchone()
            return None if row is None else str(row[0])

    def set_setting(self, section: str, name: str, value: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_global_setting (section, name, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (section, name) DO UPDATE SET value = EXCLUDED.value",
                (section, name, value),
            )

    def remove_from_schedule(self, component_id: str) -> bool:
        """Drop ``component_id`` from Update/ScheduledComponents; return True if it was there.

        Done in one statement under a row lock, so a concurrent psql edit is not lost.
        """
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT value FROM tb_global_setting WHERE section = 'Update'"
                " AND name = 'ScheduledComponents' FOR UPDATE"
            )
            row = cursor.fetchone()
            if row is None:
                return False
            ids = [part.strip() for part in str(row[0]).split(",") if part.strip()]
            if component_id not in ids:
                return False
            ids.remove(component_id)
            cursor.execute(
                "UPDATE tb_global_setting SET value = %s WHERE section = 'Update'"
                " AND name = 'ScheduledComponents'",
                (",".join(ids),),
            )
            return True

    # -- catalog and component state -----------------------------------------------------

    def catalog(self) -> list[Component]:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT id, name_en, name_ja, kind, source, au_key, license, feature, event_group,"
                " live_path, sort_order, on_control_manager FROM tb_component ORDER BY sort_order, id"
            )
            return [
                Component(
                    id=row[0], name_en=row[1], name_ja=row[2], kind=Kind(row[3]),
                    source=SourceRole(row[4]), au_key=row[5], license=row[6], feature=row[7],
                    event_group=EventGroup(row[8]), live_path=row[9], sort_order=row[10],
                    on_control_manager=row[11],
                )
                for row in cursor.fetchall()
            ]

    def component_states(self) -> dict[str, ComponentState]:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT id, current_version, previous_version, installed_at, last_success_at,"
                " unsigned, restart_pending, available_version, available_status,"
                " available_reason, checked_at, stale, available_authenticated FROM tb_component_state"
            )
            return {row[0]: ComponentState(*row) for row in cursor.fetchall()}

    def record_availability(
        self,
        rows: Sequence[tuple[str, str | None, str, str | None]],
        *,
        ok: bool,
        text: str,
        authenticated: Mapping[str, bool] | None = None,
    ) -> None:
        """Store (id, available_version, status, reason) per component and the check result;
        ``authenticated`` says per id whether the index offering it was signed (SPEC 3.1)."""
        verified = authenticated or {}
        with self.transaction() as cursor:
            for component_id, version, status, reason in rows:
                cursor.execute(
                    "UPDATE tb_component_state SET available_version = %s, available_status = %s,"
                    " available_reason = %s, available_authenticated = %s, checked_at = now()"
                    " WHERE id = %s",
                    (version, status, reason, verified.get(component_id, False), component_id),
                )
            cursor.execute(
                "UPDATE tb_update_status SET last_check_at = now(), last_check_ok = %s,"
                " last_check_text = %s WHERE id = 1",
                (ok, text),
            )

    def record_installed(
        self,
        component_id: str,
        current: str | None,
        previous: str | None,
        *,
        success: bool,
        unsigned: bool | None = None,
        restart_pending: bool | None = None,
        event: NewEvent | None = None,
        package: InstalledPackage | None = None,
    ) -> None:
        """Store what is on disk for a component; ``success`` also stamps last_success_at.

        ``event``, when given, is recorded in the same transaction, so the log and the
        state never disagree after a crash; so is ``package``: its hash in the replay
        memory and, when signed, the component's signature pin.
        """
        with self.transaction() as cursor:
            if event is not None:
                _insert_event(cursor, event)
            if package is not None:
                _insert_package(cursor, component_id, package)
            cursor.execute(
                "UPDATE tb_component_state SET current_version = %s, previous_version = %s,"
                " installed_at = CASE WHEN current_version IS DISTINCT FROM %s THEN now()"
                "   ELSE installed_at END,"
                " last_success_at = CASE WHEN %s THEN now() ELSE last_success_at END,"
                " unsigned = coalesce(%s, unsigned),"
                " restart_pending = coalesce(%s, restart_pending) WHERE id = %s",
                (current, previous, current, success, unsigned, restart_pending, component_id),
            )

    def clear_restart_pending(self, component_ids: Sequence[str]) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_component_state SET restart_pending = false WHERE id = ANY(%s)",
                (list(component_ids),),
            )

    def record_services(self, scan: str | None, policy: str | None) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET scan_service = coalesce(%s, scan_service),"
                " policy_service = coalesce(%s, policy_service) WHERE id = 1",
                (scan, policy),
            )

    def record_run(self, kind: str, ok: bool, text: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET last_run_at = now(), last_run_kind = %s,"
                " last_run_ok = %s, last_run_text = %s WHERE id = 1",
                (kind, ok, text),
            )

    def run_status(self) -> RunStatus:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT last_check_at, last_check_ok, last_check_text, last_run_at, last_run_kind,"
                " last_run_ok, last_run_text, scan_service, policy_service, last_scheduled_at,"
                " next_run_at, settings_problem, daemon_pid, daemon_heartbeat"
                " FROM tb_update_status WHERE id = 1"
            )
            row = cursor.fetchone()
            return RunStatus(*(row or (None,) * 14))

    def record_scheduled_run(self, moment: datetime.datetime) -> None:
        """Remember when the schedule last fired (for missed-run detection after downtime)."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE tb_update_status SET last_scheduled_at = %s WHERE id = 1", (moment,))

    def record_daemon(
        self, *, pid: int | None, next_run: datetime.datetime | None, settings_problem: str | None
    ) -> None:
        """The daemon's heartbeat: its PID, the next scheduled run, and a bad settings row."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET daemon_pid = %s, daemon_heartbeat = now(),"
                " next_run_at = %s, settings_problem = %s WHERE id = 1",
                (pid, next_run, settings_problem),
            )

    def note_lock_busy(self) -> datetime.timedelta:
        """Remember that a scheduled run found the download lock busy; return for how long
        runs have found it busy without a break (zero, the first time)."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET lock_busy_since = coalesce(lock_busy_since, now())"
                " WHERE id = 1 RETURNING now() - lock_busy_since"
            )
            row = cursor.fetchone()
            return row[0] if row else datetime.timedelta(0)

    def clear_lock_busy(self) -> None:
        """A scheduled run did not find the download lock busy."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE tb_update_status SET lock_busy_since = NULL"
                           " WHERE id = 1 AND lock_busy_since IS NOT NULL")

    def set_stale(self, component_id: str, stale: bool) -> bool:
        """Set a component's stale flag; return True when it changed."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_component_state SET stale = %s WHERE id = %s AND stale IS DISTINCT FROM %s",
                (stale, component_id, stale),
            )
            return bool(cursor.rowcount)

    # -- LISTEN/NOTIFY --------------------------------------------------------------------

    def listen(self, channel: str) -> None:
        """Subscribe this connection to ``channel``; it switches to autocommit for good."""
        self.connection.autocommit = True
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(f"LISTEN {channel}")  # channel is a constant of ours, not input
        except psycopg2.Error as error:
            raise DatabaseError(f"database error: {_first_line(error)}") from error

    def wait_notifications(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds; return the payloads of notifications received.

        Raise DatabaseError if the connection is lost (the caller reconnects).
        """
        try:
            ready, _, _ = select.select([self.connection], [], [], timeout)
            if not ready:
                return []
            self.connection.poll()
        except (psycopg2.Error, OSError, ValueError) as error:
            raise DatabaseError(f"lost the database connection: {_first_line(error)}") from error
        payloads = [notify.payload for notify in self.connection.notifies]
        self.connection.notifies.clear()
        return payloads

    # -- server.ini cache -----------------------------------------------------------------

    def cached_index(self, url: str) -> CachedIndex | None:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT url, etag, last_modified, body, signature, signature_checked"
                " FROM tb_source_cache WHERE url = %s", (url,)
            )
            row = cursor.fetchone()
            if row is None:
                return None
            signature = bytes(row[4]) if row[4] is not None else None
            return CachedIndex(row[0], row[1], row[2], bytes(row[3]), signature, bool(row[5]))

    def store_index(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        body: bytes,
        *,
        signature: bytes | None = None,
        signature_checked: bool = False,
    ) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_source_cache (url, etag, last_modified, body, signature,"
                " signature_checked) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (url) DO UPDATE SET etag = EXCLUDED.etag,"
                " last_modified = EXCLUDED.last_modified, body = EXCLUDED.body,"
                " signature = EXCLUDED.signature, signature_checked = EXCLUDED.signature_checked,"
                " fetched_at = now()",
                (url, etag, last_modified, psycopg2.Binary(body),
                 None if signature is None else psycopg2.Binary(signature), signature_checked),
            )

    # -- cool-down per source (Retry-After) ----------------------------------------------

    def source_cooldown(self, base_url: str) -> SourceCooldown | None:
        """Return the cool-down recorded for ``base_url`` (it may have ended), or None."""
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT base_url, until, reason FROM tb_source_cooldown WHERE base_url = %s",
                (base_url,),
            )
            row = cursor.fetchone()
            return None if row is None else SourceCooldown(row[0], row[1], row[2])

    def set_source_cooldown(self, base_url: str, until: datetime.datetime, reason: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_source_cooldown (base_url, until, reason) VALUES (%s, %s, %s)"
                " ON CONFLICT (base_url) DO UPDATE SET until = EXCLUDED.until,"
                " reason = EXCLUDED.reason, recorded_at = now()",
                (base_url, until, reason),
            )

    def clear_source_cooldown(self, base_url: str) -> None:
        with self.transaction() as cursor:
            cursor.execute("DELETE FROM tb_source_cooldown WHERE base_url = %s", (base_url,))

    # -- events ---------------------------------------------------------------------------

    def add_event(self, event: NewEvent) -> int:
        with self.transaction() as cursor:
            return _insert_event(cursor, event)

    def add_events(self, events: Sequence[NewEvent]) -> None:
        """Record ``events`` in one transaction: all of them or none."""
        with self.transaction() as cursor:
            for event in events:
                _insert_event(cursor, event)

    def events(
        self,
        *,
        kind: str | None = None,
        component: str | None = None,
        outcome: str | None = None,
        since: datetime.datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Event]:
        """Return events newest first, filtered by whichever arguments are given."""
        clauses: list[str] = []
        parameters: list[Any] = []
        for column, value in (("kind", kind), ("component", component), ("outcome", outcome)):
            if value is not None:
                clauses.append(f"{column} = %s")
                parameters.append(value)
        if since is not None:
            clauses.append("time >= %s")
            parameters.append(since)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT id, time, kind, component, version, outcome, message, message_ja, reason"
                f" FROM tb_update_event{where} ORDER BY time DESC, id DESC LIMIT %s OFFSET %s",
                (*parameters, limit, offset),
            )
            return [Event(*row) for row in cursor.fetchall()]


def _insert_event(cursor: psycopg2.extensions.cursor, event: NewEvent) -> int:
    cursor.execute(
        "INSERT INTO tb_update_event (time, kind, component, version, outcome, message,"
        " message_ja, reason) VALUES (coalesce(%s, now()), %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (event.time, event.kind, event.component, event.version, event.outcome, event.message,
         event.message_ja, event.reason),
    )
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _insert_package(
    cursor: psycopg2.extensions.cursor, component_id: str, package: InstalledPackage
) -> None:
    cursor.execute(
        "INSERT INTO tb_package_seen (sha256, component, version, signed) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (sha256) DO NOTHING",
        (package.sha256, component_id, package.version, package.signed),
    )
    if package.signed:
        cursor.execute(
            "INSERT INTO tb_signature_pin (component, version) VALUES (%s, %s)"
            " ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            (component_id, package.version),
        )


def migrations() -> list[tuple[int, Path]]:
    """Return the numbered migration files of ``sql/`` in order."""
    found = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        match = _MIGRATION.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__
