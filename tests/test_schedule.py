"""Schedule computation: pure, table-driven (frequencies, DST changes, missed runs)."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

import pytest

from imss_updater.daemon.schedule import CronSpec, cron_spec, missed_run, next_fire
from imss_updater.settings import load
from tests.data import KNOWN, default_rows

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")


def spec_for(**changes: str) -> CronSpec | None:
    rows = default_rows()
    for key, value in changes.items():
        rows[("Update", key)] = value
    return cron_spec(load(rows, KNOWN))


def at(text: str, zone: datetime.tzinfo = TOKYO) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("changes", "after", "expected"),
    [
        ({}, "2026-11-22 10:07", "2026-11-22 10:15"),
        ({}, "2026-11-22 10:59", "2026-11-22 11:00"),
        ({"ScheduleFrequency": "hourly", "ScheduleMinute": "30"}, "2026-11-22 10:31", "2026-11-22 11:30"),
        ({"ScheduleFrequency": "hourly", "ScheduleMinute": "00"}, "2026-11-22 10:00", "2026-11-22 11:00"),
        ({"ScheduleFrequency": "daily", "ScheduleTime": "03:00"}, "2026-11-22 03:00", "2026-11-23 03:00"),
        ({"ScheduleFrequency": "daily", "ScheduleTime": "23:45"}, "2026-11-22 04:00", "2026-11-22 23:45"),
        ({"ScheduleFrequency": "weekly", "ScheduleTime": "03:00", "ScheduleWeekday": "sun"},
         "2026-11-22 03:30", "2026-11-29 03:00"),  # 2026-11-22 is a Sunday
        ({"ScheduleFrequency": "weekly", "ScheduleTime": "12:00", "ScheduleWeekday": "wed"},
         "2026-11-22 03:30", "2026-11-25 12:00"),
    ],
)
def test_next_scheduled_time_for_each_frequency(changes: dict[str, str], after: str, expected: str) -> None:
    spec = spec_for(**changes)
    assert spec is not None
    assert next_fire(spec, at(after), TOKYO) == at(expected)


def test_schedule_off_has_no_trigger_and_no_missed_run() -> None:
    assert spec_for(ScheduledUpdate="no") is None
    assert not missed_run(None, None, at("2026-11-22 10:00"), TOKYO)


def test_daily_run_in_the_hour_skipped_by_spring_forward_runs_an_hour_later_once() -> None:
    spec = spec_for(ScheduleFrequency="daily", ScheduleTime="02:30")
    assert spec is not None
    # 2026-03-29 in Berlin: clocks jump from 02:00 to 03:00.
    fire = next_fire(spec, at("2026-03-28 12:00", BERLIN), BERLIN)
    assert fire.astimezone(datetime.UTC) == datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.UTC)
    assert next_fire(spec, fire, BERLIN).date() == datetime.date(2026, 3, 30)


def test_daily_run_in_the_repeated_hour_of_fall_back_runs_once() -> None:
    spec = spec_for(ScheduleFrequency="daily", ScheduleTime="02:30")
    assert spec is not None
    # 2026-10-25 in Berlin: 02:00-03:00 happens twice.
    first = next_fire(spec, at("2026-10-24 12:00", BERLIN), BERLIN)
    second = next_fire(spec, first, BERLIN)
    assert first.date() == datetime.date(2026, 10, 25)
    assert second.date() == datetime.date(2026, 10, 26)


def test_fifteen_minute_schedule_across_fall_back_keeps_real_fifteen_minute_steps() -> None:
    spec = spec_for()
    assert spec is not None
    moment = at("2026-10-25 01:50", BERLIN)
    steps = []
    for _ in range(8):
        following = next_fire(spec, moment, BERLIN)
        steps.append(following.astimezone(datetime.UTC) - moment.astimezone(datetime.UTC))
        moment = following
    assert max(steps) <= datetime.timedelta(minutes=15)


@pytest.mark.parametrize(
    ("changes", "last_run", "now", "missed"),
    [
        ({}, "2026-11-22 10:00", "2026-11-22 10:14", False),
        ({}, "2026-11-22 10:00", "2026-11-22 10:16", True),
        ({}, "2026-11-20 10:00", "2026-11-22 10:16", True),  # many missed: still one run
        ({"ScheduleFrequency": "daily"}, "2026-11-22 03:00", "2026-11-22 20:00", False),
        ({"ScheduleFrequency": "daily"}, "2026-11-21 03:00", "2026-11-22 08:00", True),
        ({"ScheduleFrequency": "weekly"}, "2026-11-15 03:00", "2026-11-21 23:00", False),
        ({"ScheduleFrequency": "weekly"}, "2026-11-15 03:00", "2026-11-22 03:01", True),
        ({}, None, "2026-11-22 10:16", True),  # never ran: run soon after start
    ],
)
def test_missed_runs_are_detected_once(
    changes: dict[str, str], last_run: str | None, now: str, missed: bool
) -> None:
    spec = spec_for(**changes)
    last = at(last_run) if last_run else None
    assert missed_run(spec, last, at(now), TOKYO) is missed


def test_random_delay_spreads_gateways() -> None:
    assert (spec_for() or CronSpec("0")).jitter > 0
