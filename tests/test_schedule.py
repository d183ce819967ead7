"""Schedule computation: pure, table-driven (frequencies, DST changes, missed runs), and a
property test that simulates runs across every clock change of a year in many zones."""

from __future__ import annotations

import datetime
import functools
import itertools
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imss_updater.daemon.schedule import Schedule, missed_run, next_fire, next_run, schedule_for
from imss_updater.settings import WEEKDAYS, load
from tests.data import KNOWN, default_rows

UTC = datetime.UTC
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def schedule_of(**changes: str) -> Schedule | None:
    rows = default_rows()
    for key, value in changes.items():
        rows[("Update", key)] = value
    return schedule_for(load(rows, KNOWN))


def at(text: str, zone: datetime.tzinfo = TOKYO) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=zone)


def utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def simulate(schedule: Schedule, start: datetime.datetime, zone: datetime.tzinfo, runs: int,
             *, delay: float = 0.0, duration: float = 5.0) -> list[datetime.datetime]:
    """Plan ``runs`` runs one after the other as the daemon does (each planned from the
    moment the previous one ended) and return their start times in UTC."""
    now = start
    starts = []
    for _ in range(runs):
        when = next_run(schedule, now, zone, delay).astimezone(UTC)
        starts.append(when)
        now = when + datetime.timedelta(seconds=duration)
    return starts


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
    schedule = schedule_of(**changes)
    assert schedule is not None
    assert next_fire(schedule, at(after), TOKYO) == at(expected)


def test_schedule_off_has_no_schedule_and_no_missed_run() -> None:
    assert schedule_of(ScheduledUpdate="no") is None
    assert not missed_run(None, None, at("2026-11-22 10:00"), TOKYO)


def test_fifteen_minute_schedule_at_fall_back_runs_every_fifteen_real_minutes_never_in_the_past() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST (01:00 UTC) becomes 02:00 CET; the old planner went
    # back to 02:15 CEST, an hour in the past, and the daemon ran back to back.
    schedule = Schedule("15min")
    starts = simulate(schedule, utc("2026-10-25 00:20"), BERLIN, 10)
    assert starts == [utc("2026-10-25 00:30") + datetime.timedelta(minutes=15 * step) for step in range(10)]
    assert [moment.astimezone(BERLIN).strftime("%H:%M%z") for moment in starts[2:7]] == [
        "02:00+0100", "02:15+0100", "02:30+0100", "02:45+0100", "03:00+0100"]


def test_fifteen_minute_schedule_at_spring_forward_skips_nothing() -> None:
    # 2026-03-08 in New York: 02:00 EST (07:00 UTC) becomes 03:00 EDT.
    starts = simulate(Schedule("15min"), utc("2026-03-08 06:20"), NEW_YORK, 8)
    assert starts == [utc("2026-03-08 06:30") + datetime.timedelta(minutes=15 * step) for step in range(8)]


@pytest.mark.parametrize("minute", [0, 15, 30, 45])
def test_hourly_schedule_runs_both_occurrences_of_the_repeated_hour_an_hour_apart(minute: int) -> None:
    # 2026-11-01 in New York: 02:00 EDT (06:00 UTC) becomes 01:00 EST.
    starts = simulate(Schedule("hourly", minute=minute), utc("2026-11-01 03:00"), NEW_YORK, 5)
    assert starts == [utc("2026-11-01 03:00") + datetime.timedelta(hours=step, minutes=minute)
                      + (datetime.timedelta(hours=1) if minute == 0 else datetime.timedelta())
                      for step in range(5)]
    assert all(moment.astimezone(NEW_YORK).minute == minute for moment in starts)


@pytest.mark.parametrize(("start", "minute"), [("2026-04-04 12:00", 45), ("2026-10-03 13:00", 45),
                                               ("2026-04-04 12:00", 0), ("2026-10-03 13:00", 0)])
def test_hourly_schedule_at_a_half_hour_clock_change_is_never_closer_than_an_hour(
    start: str, minute: int
) -> None:
    # Lord Howe Island moves its clock by 30 minutes: the wall-clock marks come 30 or 90 real
    # minutes apart once; the 30-minute one is dropped, never run.
    starts = simulate(Schedule("hourly", minute=minute), utc(start), LORD_HOWE, 8)
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert min(gaps) == datetime.timedelta(hours=1)
    assert max(gaps) == datetime.timedelta(minutes=90)
    assert all(moment.astimezone(LORD_HOWE).minute == minute for moment in starts)


def test_daily_run_in_the_hour_skipped_by_spring_forward_runs_at_the_end_of_the_gap_once() -> None:
    schedule = schedule_of(ScheduleFrequency="daily", ScheduleTime="02:30")
    assert schedule is not None
    # 2026-03-29 in Berlin: clocks jump from 02:00 to 03:00.
    fire = next_fire(schedule, at("2026-03-28 12:00", BERLIN), BERLIN)
    assert fire.astimezone(UTC) == utc("2026-03-29 01:00")  # 03:00 CEST, the first instant after
    assert next_fire(schedule, fire, BERLIN).astimezone(UTC) == utc("2026-03-30 00:30")


def test_daily_run_in_the_repeated_hour_of_fall_back_runs_once_at_its_first_occurrence() -> None:
    schedule = schedule_of(ScheduleFrequency="daily", ScheduleTime="02:30")
    assert schedule is not None
    # 2026-10-25 in Berlin: 02:00-03:00 happens twice.
    first = next_fire(schedule, at("2026-10-24 12:00", BERLIN), BERLIN)
    second = next_fire(schedule, first, BERLIN)
    assert first.astimezone(UTC) == utc("2026-10-25 00:30")  # 02:30 CEST, not 02:30 CET
    assert second.astimezone(UTC) == utc("2026-10-26 01:30")


def test_random_delay_is_added_in_real_time_across_the_clock_change() -> None:
    # 02:45 CEST plus 20 minutes is 02:05 CET; by the wall clock it would be 03:05 CET.
    moment = next_run(Schedule("15min"), utc("2026-10-25 00:40"), BERLIN, 20 * 60)
    assert moment.astimezone(UTC) == utc("2026-10-25 01:05")


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
    schedule = schedule_of(**changes)
    last = at(last_run) if last_run else None
    assert missed_run(schedule, last, at(now), TOKYO) is missed


def test_random_delay_spreads_gateways_but_never_beyond_a_fifteen_minute_period() -> None:
    schedule = schedule_of(RandomDelaySeconds="900")
    assert schedule is not None
    assert schedule.jitter == 600
    assert (schedule_of(ScheduleFrequency="hourly", RandomDelaySeconds="900") or schedule).jitter == 900
    assert (schedule_of() or schedule).jitter > 0


# -- every clock change of a year, every frequency -----------------------------------------------

YEAR = 2026
ZONES = ("America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Tokyo", "Pacific/Chatham",
         "America/Santiago", "Europe/London", "UTC", "Asia/Kathmandu", "America/St_Johns",
         "Africa/Casablanca")
FREQUENCIES = ("15min", "hourly:00", "hourly:15", "hourly:30", "hourly:45", "daily", "weekly")


def offset(moment: datetime.datetime, zone: datetime.tzinfo) -> datetime.timedelta:
    value = moment.astimezone(zone).utcoffset()
    assert value is not None
    return value


@functools.cache
def clock_changes(name: str) -> tuple[datetime.datetime, ...]:
    """Every instant of YEAR at which the zone's offset changes (found by bisection)."""
    zone = ZoneInfo(name)
    moments = []
    day = datetime.datetime(YEAR, 1, 1, tzinfo=UTC)
    while day.year == YEAR:
        following = day + datetime.timedelta(hours=6)
        if offset(day, zone) != offset(following, zone):
            low, high = day, following
            while high - low > datetime.timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if offset(middle, zone) != offset(low, zone) else (middle, high)
            moments.append(high.replace(microsecond=0))
        day = following
    return tuple(moments)


def cases() -> list[tuple[str, datetime.datetime]]:
    found = []
    for name in ZONES:
        # A zone without clock changes still gets two ordinary days.
        changes = clock_changes(name) or (datetime.datetime(YEAR, 1, 1, 12, tzinfo=UTC),
                                          datetime.datetime(YEAR, 7, 1, 12, tzinfo=UTC))
        found.extend((name, moment) for moment in changes)
    return found


CASES = cases()


@st.composite
def schedules(draw: st.DrawFn, frequency: str, change: datetime.datetime, zone: ZoneInfo) -> Schedule:
    if frequency == "15min":
        return Schedule("15min", jitter=draw(st.integers(0, 600)))
    if frequency.startswith("hourly:"):
        return Schedule("hourly", minute=int(frequency[-2:]), jitter=draw(st.integers(0, 900)))
    # Mostly a time within 90 minutes either side of the change (into the skipped or the
    # repeated hour), sometimes any time; weekly mostly on the day of the change.
    local = change.astimezone(zone)
    near = (local - datetime.timedelta(minutes=draw(st.integers(-90, 90)))).time()
    anywhen = datetime.time(draw(st.integers(0, 23)), draw(st.integers(0, 59)))
    time = draw(st.sampled_from([near, near, anywhen]))
    weekday = None
    if frequency == "weekly":
        same_day = WEEKDAYS[(local.weekday() + 1) % 7]
        weekday = draw(st.sampled_from([same_day, same_day, *WEEKDAYS]))
    return Schedule(frequency, minute=time.minute, hour=time.hour, weekday=weekday,
                    jitter=draw(st.integers(0, 900)))


def assert_on_a_mark(schedule: Schedule, slot: datetime.datetime, zone: ZoneInfo) -> None:
    """A planned time (without its delay) is on the schedule's local wall-clock mark, or, for a
    daily or weekly time the clock skipped, at the first instant after the gap."""
    local = slot.astimezone(zone)
    assert local.second == 0
    if schedule.frequency == "15min":
        assert local.minute % 15 == 0
        return
    if schedule.frequency == "hourly":
        assert local.minute == schedule.minute
        return
    if schedule.weekday is not None:
        assert WEEKDAYS[(local.weekday() + 1) % 7] == schedule.weekday
    if (local.hour, local.minute) == (schedule.hour, schedule.minute):
        return
    before = (slot - datetime.timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None)
    wanted = datetime.datetime.combine(local.date(), datetime.time(schedule.hour, schedule.minute))
    assert before < wanted < local.replace(tzinfo=None), f"{local} is not the end of a gap over {wanted}"


@pytest.mark.parametrize("frequency", FREQUENCIES)
@pytest.mark.parametrize(("zone_name", "change"), CASES,
                         ids=[f"{name}-{moment:%m%d}" for name, moment in CASES])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_runs_across_every_clock_change_are_never_in_the_past_too_close_or_too_far_apart(
    zone_name: str, change: datetime.datetime, frequency: str, data: st.DataObject
) -> None:
    zone = ZoneInfo(zone_name)
    schedule = data.draw(schedules(frequency, change, zone), label="schedule")
    interval, jitter = schedule.interval, datetime.timedelta(seconds=schedule.jitter)
    before = datetime.timedelta(seconds=data.draw(st.integers(0, int(2 * interval.total_seconds()))))
    now = change - before
    end = change + max(2 * interval, datetime.timedelta(hours=3))
    last_slot: datetime.datetime | None = None
    last_start: datetime.datetime | None = None
    while now < end:
        delay = data.draw(st.floats(0, schedule.jitter, allow_nan=False))
        start = next_run(schedule, now, zone, delay).astimezone(UTC)
        assert start > now, f"planned {start} at {now}: in the past"
        slot = start - datetime.timedelta(seconds=delay)
        assert_on_a_mark(schedule, slot, zone)
        if last_start is not None and last_slot is not None:
            gap = start - last_start
            shift = abs(offset(slot, zone) - offset(last_slot, zone))
            if schedule.frequency in ("daily", "weekly"):
                # A wall-clock time is a 23- or 25-hour day away across a clock change, and a
                # time the clock skipped runs up to the skipped hour late.
                if last_slot - interval <= change <= slot:
                    shift = abs(offset(change, zone) - offset(change - datetime.timedelta(seconds=1), zone))
                low, high = interval - jitter - shift, interval + jitter + shift
            else:
                # Marks move by the change only where it is not a whole number of intervals
                # (Lord Howe's half hour under an hourly schedule): one longer gap, never a shorter.
                longer = shift if shift % interval else datetime.timedelta()
                low, high = interval - jitter, interval + jitter + longer
            assert low <= gap <= high, f"{last_start} -> {start}: {gap} outside {low}..{high}"
        last_slot, last_start = slot, start
        # The run takes up to a minute; the daemon plans the next one when it has ended.
        now = start + datetime.timedelta(seconds=data.draw(st.integers(0, 60)))
