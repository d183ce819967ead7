"""Diagnosis steps on this gateway: database, settings, licenses, lock file, restart commands."""

from __future__ import annotations

import os
from collections.abc import Sequence

from imss_updater.catalog import Component
from imss_updater.database.db import Database, DatabaseError
from imss_updater.diagnose.steps import Recorder
from imss_updater.diagnose.texts import Text, joined, words
from imss_updater.i18n import N_, Reason
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
        """The database step (a plain-text detail, the server's own message, is shown as it is)."""
        self.add(Reason(N_("database reachable")), ok, detail, hint or "")

    def check_settings(self, database: Database, catalog: Sequence[Component]) -> Settings | None:
        name = Reason(N_("settings"))
        try:
            rows = database.settings_rows()
            settings = load(rows, [component.id for component in catalog])
        except SettingsError as error:
            problems = joined(str(problem) for problem in error.problems)
            self.add(name, False, Reason(N_("%(count)s invalid row(s): %(problems)s"),
                                         {"count": len(error.problems), "problems": problems}),
                     Reason(N_("correct each row with `imss-updater config set SECTION NAME VALUE` (or "
                               "psql); `imss-updater db init` restores missing rows")))
            return None
        except DatabaseError as error:
            self.add(name, False, str(error), Reason(N_("check the database")))
            return None
        self.add(name, True, Reason(N_("%(count)s rows read, every value the updater uses is valid"),
                                    {"count": len(rows)}))
        return settings

    def check_licenses(self, settings: Settings, catalog: Sequence[Component]) -> None:
        parts: list[Reason] = []
        expired: list[str] = []
        active = 0
        for license_name, expiry in sorted(settings.licenses.items()):
            used_by = [c.id for c in catalog if c.license == license_name]
            if expiry is None:
                parts.append(Reason(N_("%(license)s: not activated (%(count)s components are not updated)"),
                                    {"license": license_name, "count": len(used_by)}))
            elif expiry < self.today:
                expired.append(license_name)
                parts.append(Reason(N_("%(license)s: expired on %(date)s"),
                                    {"license": license_name, "date": expiry.isoformat()}))
            else:
                active += 1
                parts.append(Reason(N_("%(license)s: active until %(date)s"),
                                    {"license": license_name, "date": expiry.isoformat()}))
        ok = not expired and active > 0
        hint: Text = ""
        if expired:
            commands = ", ".join(f"`imss-updater config set License {n} YYYY-MM-DD`" for n in expired)
            hint = Reason(N_("renew the license and enter its new expiry date: %(commands)s"),
                          {"commands": commands})
        elif active == 0:
            hint = Reason(N_("no license is activated: nothing can be updated until one is"))
        self.add(Reason(N_("licenses")), ok, joined(parts), hint)

    # -- local checks -----------------------------------------------------------------------

    def check_lock(self) -> None:
        name = Reason(N_("lock file"))
        path = lock.lock_path(self.root)
        problem = lock.lock_problem(self.root)
        if problem is not None:
            self.add(name, False, problem,
                     Reason(N_("every update fails with this reason until it is fixed")))
            return
        holder = lock.lock_holder(self.root)
        if holder is None:
            if path.parent == self.root / "lib":
                self.add(name, True, Reason(N_("free (%(path)s)"), {"path": str(path)}))
            else:
                self.add(name, True, Reason(
                    N_("free (%(path)s; kept in the install root because %(lib)s is open to other users)"),
                    {"path": str(path), "lib": str(self.root / "lib")}))
            return
        command = probe.process_description(holder)
        self.add(name, False, Reason(
            N_("held by PID %(pid)s%(command)s (%(path)s): an update started now fails with "
               "\"%(message)s\""),
            {"pid": holder, "command": f" ({command})" if command else "", "path": str(path),
             "message": words(lock.LOCK_MESSAGE_EN, lock.LOCK_MESSAGE_JA)}),
            Reason(N_("an update is in progress: wait for it to finish; if PID %(pid)s hangs, stop it "
                      "(a lock held by a dead process is released by itself)"), {"pid": holder}))

    def check_restart_commands(self, settings: Settings) -> None:
        for service, setting_name, argv in (
            ("scan", "ScanServiceRestart", settings.scan_restart),
            ("policy", "PolicyServiceRestart", settings.policy_restart),
        ):
            name = Reason(N_("restart command: %(service)s service"), {"service": service})
            program = argv[0] if argv else ""
            hint = Reason(N_("fix Service/%(setting)s: its program must exist, be executable and be "
                             "given by absolute path"), {"setting": setting_name})
            if not program:
                self.add(name, False, Reason(N_("Service/%(setting)s is empty"), {"setting": setting_name}),
                         hint)
            elif not os.path.exists(program):
                self.add(name, False, Reason(N_("%(program)s does not exist"), {"program": program}), hint)
            elif not os.path.isfile(program):
                self.add(name, False, Reason(N_("%(program)s is not a file"), {"program": program}), hint)
            elif not os.access(program, os.X_OK):
                self.add(name, False, Reason(N_("%(program)s is not executable"), {"program": program}),
                         Reason(N_("%(hint)s (chmod +x %(program)s)"), {"hint": hint, "program": program}))
            else:
                self.add(name, True, Reason(N_("%(command)s (present and executable; not run)"),
                                            {"command": " ".join(argv)}))

    def check_services(self, settings: Settings) -> None:
        """Run each service's status command (Service/*Status, no shell): exit 0 = running."""
        for service, setting_name, argv, restart in (
            (Reason(N_("scan service")), "ScanServiceStatus", settings.scan_status, settings.scan_restart),
            (Reason(N_("policy service")), "PolicyServiceStatus", settings.policy_status,
             settings.policy_restart),
        ):
            name = Reason(N_("service running: %(service)s"), {"service": service.msgid})
            state = services.probe(argv)
            command = " ".join(argv)
            # English says the state alone (the name says the service); Japanese names the service.
            if state.running:
                self.add(name, True, words(
                    Reason(N_("running (%(command)s exited with 0)"), {"command": command}),
                    Reason(N_("the %(service)s is running (%(command)s exited with 0)"),
                           {"service": service, "command": command})))
            elif state.running is False:
                start = " ".join(restart) or Reason(N_("its start script"))
                self.add(name, False, words(
                    Reason(N_("not running (%(command)s exited with a non-zero status)"),
                           {"command": command}),
                    Reason(N_("the %(service)s is not running (%(command)s exited with a non-zero status)"),
                           {"service": service, "command": command})),
                         Reason(N_("start the %(service)s (%(start)s) and look at its log for why it "
                                   "stopped; components installed meanwhile are applied only once it "
                                   "runs"), {"service": service, "start": start}))
            else:
                reason = state.reason or Reason(N_("unknown"))
                self.add(name, False, words(
                    Reason(N_("unknown: %(reason)s"), {"reason": reason}),
                    Reason(N_("the state of the %(service)s is unknown: %(reason)s"),
                           {"service": service, "reason": reason})),
                         Reason(N_("set Service/%(setting)s to the command that tells whether the "
                                   "%(service)s runs (exit status 0 = running), given by absolute path"),
                                {"setting": setting_name, "service": service}))
