"""The status row (tb_update_status): last check and run, services, the daemon's heartbeat."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from imss_updater.database.connection import Connection


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


class RunStatusMixin(Connection):
    """Read and record this node's row of tb_update_status (and its heartbeat in tb_fleet_node)."""

    def record_services(self, scan: str | None, policy: str | None) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET scan_service = coalesce(%s, scan_service),"
                " policy_service = coalesce(%s, policy_service) WHERE node = %s",
                (scan, policy, self.node),
            )

    def record_run(self, kind: str, ok: bool, text: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET last_run_at = now(), last_run_kind = %s,"
                " last_run_ok = %s, last_run_text = %s WHERE node = %s",
                (kind, ok, text, self.node),
            )

    def run_status(self) -> RunStatus:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT last_check_at, last_check_ok, last_check_text, last_run_at, last_run_kind,"
                " last_run_ok, last_run_text, scan_service, policy_service, last_scheduled_at,"
                " next_run_at, settings_problem, daemon_pid, daemon_heartbeat"
                " FROM tb_update_status WHERE node = %s",
                (self.node,),
            )
            row = cursor.fetchone()
            return RunStatus(*(row or (None,) * 14))

    def record_scheduled_run(self, moment: datetime.datetime) -> None:
        """Remember when the schedule last fired (for missed-run detection after downtime)."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE tb_update_status SET last_scheduled_at = %s WHERE node = %s",
                           (moment, self.node))

    def record_daemon(
        self, *, pid: int | None, next_run: datetime.datetime | None, settings_problem: str | None
    ) -> None:
        """The daemon's heartbeat: its PID, the next scheduled run, and a bad settings row."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET daemon_pid = %s, daemon_heartbeat = now(),"
                " next_run_at = %s, settings_problem = %s WHERE node = %s",
                (pid, next_run, settings_problem, self.node),
            )
            cursor.execute("UPDATE tb_fleet_node SET heartbeat = now() WHERE node = %s", (self.node,))

    def note_lock_busy(self) -> datetime.timedelta:
        """Remember that a scheduled run found the download lock busy; return for how long
        runs have found it busy without a break (zero, the first time)."""
        with self.transaction() as cursor:
            cursor.execute(
                "UPDATE tb_update_status SET lock_busy_since = coalesce(lock_busy_since, now())"
                " WHERE node = %s RETURNING now() - lock_busy_since",
                (self.node,),
            )
            row = cursor.fetchone()
            return row[0] if row else datetime.timedelta(0)

    def clear_lock_busy(self) -> None:
        """A scheduled run did not find the download lock busy."""
        with self.transaction() as cursor:
            cursor.execute("UPDATE tb_update_status SET lock_busy_since = NULL"
                           " WHERE node = %s AND lock_busy_since IS NOT NULL", (self.node,))
