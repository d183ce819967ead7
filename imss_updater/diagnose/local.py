"""Diagnosis steps on this gateway: database, settings, licenses, lock file, restart commands."""

from __future__ import annotations

import os
from collections.abc import Sequence

from imss_updater.catalog import Component
from imss_updater.database.db import Database, DatabaseError
from imss_updater.diagnose.steps import Japanese, Recorder
from imss_updater.i18n import N_, Reason, render
from imss_updater.run import services
from imss_updater.settings import Settings, SettingsError, load
from imss_updater.source import probe
from imss_updater.store import lock


class LocalChecks(Recorder):
    """The checks that need no network."""

    # -- database and settings --------------------------------------------------------------

    def check_database(self, database: Database | None, dsn_error: str | None) -> list[Component] | None:
        if database is None:
            self._database_step(False, dsn_error or Reason(N_("no database connection")),
                                Reason(N_("start PostgreSQL, or check IMSS_DSN / --dsn (the embedded "
                                          "database lives in the state directory and is started by any "
                                          "imss-updater command)")))
            return None
        try:
            version = database.schema_version()
            if version == 0:
                self._database_step(False, Reason(N_("connected, but the database has no schema")),
                                    Reason(N_("run `imss-updater db init`")))
                return None
            catalog = database.catalog()
        except DatabaseError as error:
            self._database_step(False, str(error),  # the server's own words
                                Reason(N_("check that PostgreSQL is running and the role may read the imss "
                                          "tables")))
            return None
        self._database_step(True, Reason(
            N_("connected, schema version %(version)s, %(count)s components in the catalog"),
            {"version": version, "count": len(catalog)}))
        return catalog

    def _database_step(self, ok: bool, detail: str | Reason, hint: Reason | None = None) -> None:
        """The database step, its detail and hint from the catalog in both languages (a
        plain-text detail, the server's own message, is shown as it is)."""
        self.add("database reachable", ok, str(detail), str(hint) if hint else "",
                 ja=Japanese(render(detail, "ja"), hint.render("ja") if hint else ""))

    def check_settings(self, database: Database, catalog: Sequence[Component]) -> Settings | None:
        name = "settings"
        try:
            rows = database.settings_rows()
            settings = load(rows, [component.id for component in catalog])
        except SettingsError as error:
            detail = f"{len(error.problems)} invalid row(s): " + "; ".join(str(p) for p in error.problems)
            self.add(name, False, detail,
                     "correct each row with `imss-updater config set SECTION NAME VALUE` (or psql); "
                     "`imss-updater db init` restores missing rows")
            return None
        except DatabaseError as error:
            self.add(name, False, str(error), "check the database")
            return None
        self.add(name, True, f"{len(rows)} rows read, every value the updater uses is valid")
        return settings

    def check_licenses(self, settings: Settings, catalog: Sequence[Component]) -> None:
        parts: list[str] = []
        expired: list[str] = []
        active = 0
        for license_name, expiry in sorted(settings.licenses.items()):
            used_by = [c.id for c in catalog if c.license == license_name]
            if expiry is None:
                parts.append(f"{license_name}: not activated ({len(used_by)} components are not updated)")
            elif expiry < self.today:
                expired.append(license_name)
                parts.append(f"{license_name}: expired on {expiry.isoformat()}")
            else:
                active += 1
                parts.append(f"{license_name}: active until {expiry.isoformat()}")
        ok = not expired and active > 0
        hint = ""
        if expired:
            hint = ("renew the license and enter its new expiry date: "
                    + ", ".join(f"`imss-updater config set License {n} YYYY-MM-DD`" for n in expired))
        elif active == 0:
            hint = "no license is activated: nothing can be updated until one is"
        self.add("licenses", ok, "; ".join(parts), hint)

    # -- local checks -----------------------------------------------------------------------

    def check_lock(self) -> None:
        path = lock.lock_path(self.root)
        problem = lock.lock_problem(self.root)
        if problem is not None:
            self.add("lock file", False, problem,
                     "every update fails with this reason until it is fixed")
            return
        holder = lock.lock_holder(self.root)
        if holder is None:
            moved = ("" if path.parent == self.root / "lib" else
                     f"; kept in the install root because {self.root / 'lib'} is open to other users")
            self.add("lock file", True, f"free ({path}{moved})")
            return
        command = probe.process_description(holder)
        shown = f" ({command})" if command else ""
        self.add("lock file", False, f"held by PID {holder}{shown} ({path}): an update started now "
                 "fails with \"Another process is downloading files.\"",
                 f"an update is in progress: wait for it to finish; if PID {holder} hangs, stop it "
                 "(a lock held by a dead process is released by itself)")

    def check_restart_commands(self, settings: Settings) -> None:
        for service, setting_name, argv in (
            ("scan", "ScanServiceRestart", settings.scan_restart),
            ("policy", "PolicyServiceRestart", settings.policy_restart),
        ):
            name = f"restart command: {service} service"
            program = argv[0] if argv else ""
            hint = (f"fix Service/{setting_name}: its program must exist, be executable and be given "
                    "by absolute path")
            if not program:
                self.add(name, False, f"Service/{setting_name} is empty", hint)
            elif not os.path.exists(program):
                self.add(name, False, f"{program} does not exist", hint)
            elif not os.path.isfile(program):
                self.add(name, False, f"{program} is not a file", hint)
            elif not os.access(program, os.X_OK):
                self.add(name, False, f"{program} is not executable", hint + f" (chmod +x {program})")
            else:
                self.add(name, True, f"{' '.join(argv)} (present and executable; not run)")

    def check_services(self, settings: Settings) -> None:
        """Run each service's status command (Service/*Status, no shell): exit 0 = running."""
        for service, service_ja, setting_name, argv, restart in (
            ("scan", "検索サービス", "ScanServiceStatus", settings.scan_status, settings.scan_restart),
            ("policy", "ポリシーサービス", "PolicyServiceStatus", settings.policy_status,
             settings.policy_restart),
        ):
            name = f"service running: {service} service"
            state = services.probe(argv)
            command = " ".join(argv)
            if state.running:
                self.add(name, True, f"running ({command} exited with 0)",
                         ja=Japanese(f"{service_ja}は稼働しています ({command} の終了ステータス 0)"))
            elif state.running is False:
                start = " ".join(restart) or "its start script"
                self.add(name, False, f"not running ({command} exited with a non-zero status)",
                         f"start the {service} service ({start}) and look at its log for why it stopped; "
                         "components installed meanwhile are applied only once it runs",
                         ja=Japanese(f"{service_ja}は停止しています ({command} の終了ステータスが 0 以外)",
                                     f"{service_ja}を起動し ({start})、停止した原因をログで確認してください。"
                                     "サービスが稼働するまで新しいコンポーネントは適用されません"))
            else:
                reason = state.reason or "unknown"
                self.add(name, False, f"unknown: {reason}",
                         f"set Service/{setting_name} to the command that tells whether the {service} "
                         "service runs (exit status 0 = running), given by absolute path",
                         ja=Japanese(f"{service_ja}の状態は不明です: {reason}",
                                     f"Service/{setting_name} に{service_ja}の稼働を確認するコマンド "
                                     "(終了ステータス 0 = 稼働中) を絶対パスで設定してください"))
