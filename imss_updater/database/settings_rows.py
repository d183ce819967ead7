"""The settings rows (tb_global_setting), raw; settings.py turns them into a typed object."""

from __future__ import annotations

from imss_updater.database.connection import Connection


class SettingsMixin(Connection):
    """Read and write rows of tb_global_setting."""

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
