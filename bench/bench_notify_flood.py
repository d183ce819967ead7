"""Benchmark of notification flood control; prints figures, asserts nothing.

A 24-hour outage of the update source at the 15-minute schedule, on a simulated clock: 96
scheduled runs in which a pattern and an engine fail with the same reason, then one run
that finds everything up to date. Each run's notifications are queued (``enqueue_run``) and
delivered to a real SMTP relay (aiosmtpd on 127.0.0.1); the figures are the mails each
event group received, with the rule (RepeatFailureHours=24, NotifyRecovery=yes, the
defaults) and without it (RepeatFailureHours=0, NotifyRecovery=no: the old behaviour).

Usage: .venv/bin/python bench/bench_notify_flood.py [--runs 96] [--repeat-hours 24]
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiosmtpd.controller import Controller  # noqa: E402

from imss_updater import notify  # noqa: E402
from imss_updater.catalog import DEFAULT_CATALOG  # noqa: E402
from imss_updater.database.db import Database  # noqa: E402
from imss_updater.run.updater import Outcome, RunReport  # noqa: E402
from tests.support.pg import create_database, free_port, make_state_dir, start_cluster  # noqa: E402

T0 = datetime.datetime(2026, 11, 22, 3, 0, tzinfo=datetime.UTC)
SCHEDULE = datetime.timedelta(minutes=15)


class Subjects:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for line in envelope.original_content.decode("utf-8", "replace").splitlines():
            if line.startswith("Subject: "):
                self.subjects.append(line.removeprefix("Subject: "))
        return "250 OK"


def group_of(subject: str) -> str:
    for noun, group in (("Pattern file", "pattern"), ("Scan engine", "engine"), ("Antispam", "spam")):
        if noun in subject:
            return group
    return "?"


def outage_run() -> RunReport:
    reason = "update source unreachable: connection refused"
    return RunReport("scheduled", [Outcome("virus_pattern", None, False, "m", reason),
                                   Outcome("virus_engine", None, False, "m", reason)])


def simulate(dsn: str, relay_port: int, runs: int, rows: dict[str, str]) -> float:
    """Run the outage on a fresh database; return the seconds it took."""
    with Database(dsn) as database:
        database.init()
        for name, value in {"SMTPServer": "127.0.0.1", "SMTPPort": str(relay_port), "SMTPTimeout": "5",
                            "MailFrom": "imss@gw1.example", "MailTo": "ops@example.com", **rows}.items():
            database.set_setting("Notification", name, value)
        reports = [outage_run()] * runs + [RunReport("scheduled", [], up_to_date=True)]
        started = time.perf_counter()
        for index, report in enumerate(reports):
            moment = T0 + index * SCHEDULE
            notify.enqueue_run(database, DEFAULT_CATALOG, report, now=lambda moment=moment: moment)
            notify.deliver_pending(database, now=lambda moment=moment: moment)
        elapsed = time.perf_counter() - started
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=96, help="failed runs (96 = 24 h at 15 min)")
    parser.add_argument("--repeat-hours", type=int, default=24)
    arguments = parser.parse_args()
    state = make_state_dir("imss-bench-flood-")
    cluster = start_cluster(state)
    handler = Subjects()
    relay = Controller(handler, hostname="127.0.0.1", port=free_port())
    relay.start()
    try:
        hours = arguments.runs * 15 / 60
        print(f"{arguments.runs} failed runs every 15 min ({hours:g} h), then one good run;"
              " two groups failing (pattern, engine)")
        cases = (
            (f"with the rule (RepeatFailureHours={arguments.repeat_hours}, NotifyRecovery=yes)",
             {"RepeatFailureHours": str(arguments.repeat_hours), "NotifyRecovery": "yes"}),
            ("without the rule (RepeatFailureHours=0, NotifyRecovery=no)",
             {"RepeatFailureHours": "0", "NotifyRecovery": "no"}),
        )
        for number, (label, rows) in enumerate(cases):
            handler.subjects.clear()
            dsn = create_database(cluster, f"flood{number}")
            elapsed = simulate(dsn, relay.port, arguments.runs, rows)
            per_group = Counter(group_of(subject) for subject in handler.subjects)
            recovered = sum(1 for subject in handler.subjects if "recovered" in subject)
            shown = ", ".join(f"{group} {per_group[group]}" for group in ("pattern", "engine"))
            print(f"  {label}: mails per group: {shown} (recovered messages in all: {recovered});"
                  f" {elapsed / (arguments.runs + 1) * 1000:.1f} ms per run to queue and deliver")
    finally:
        relay.stop()
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
