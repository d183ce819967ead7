"""TransferWatch on a simulated clock: the low-speed windows and the deadline."""

from __future__ import annotations

import pytest

from imss_updater.source.pace import DEADLINE, TOO_SLOW, TransferAborted, TransferWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def aborted(call: object, *args: object) -> TransferAborted:
    with pytest.raises(TransferAborted) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_a_window_that_closes_with_too_few_bytes_ends_the_transfer() -> None:
    clock = Clock()
    watch = TransferWatch(1024, 60.0, None, clock=clock)
    for _ in range(59):
        clock.now += 1
        watch.received(1)
    clock.now += 1
    error = aborted(watch.received, 1)
    assert error.cause == TOO_SLOW and error.seconds == 60.0


def test_a_window_that_met_the_limit_starts_the_next_one() -> None:
    clock = Clock()
    watch = TransferWatch(1024, 60.0, None, clock=clock)
    clock.now += 30
    watch.received(2048)
    clock.now += 31
    watch.received(1)  # the first window closed with 2049 bytes: a new one starts now
    clock.now += 59
    watch.received(1024)
    clock.now += 2
    watch.received(0)


def test_the_socket_timeout_is_shortened_to_the_end_of_the_window_or_the_deadline() -> None:
    clock = Clock()
    watch = TransferWatch(100, 10.0, 25.0, clock=clock)
    assert watch.limit(60.0) == (10.0, TOO_SLOW)
    assert watch.limit(5.0) == (5.0, None)
    watch.received(100)  # this window is met: the next one ends 10 s after it
    assert watch.limit(60.0) == (20.0, TOO_SLOW)
    clock.now += 18
    watch.received(0)
    assert watch.limit(60.0) == pytest.approx((7.0, DEADLINE))
    clock.now += 7
    assert aborted(watch.limit, 60.0).cause == DEADLINE


def test_no_limit_means_only_the_socket_timeout_counts() -> None:
    clock = Clock()
    watch = TransferWatch(0, 60.0, None, clock=clock)
    clock.now += 10_000
    watch.received(0)
    assert watch.limit(30.0) == (30.0, None)
    assert watch.limit(None) == (None, None)


def test_restarting_the_window_forgets_the_previous_attempt() -> None:
    clock = Clock()
    watch = TransferWatch(100, 10.0, None, clock=clock)
    clock.now += 9
    watch.restart_window()
    clock.now += 9
    watch.received(1)  # 9 s into the new window: not judged yet
