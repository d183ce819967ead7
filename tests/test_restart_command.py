"""Restart commands run outside the updater's own systemd unit when systemd is PID 1.

The seam: whether systemd is PID 1 is passed in (this test machine has no systemd as PID 1,
so the real systemd-run cannot be exercised here; the README says how to check on a host)."""

from __future__ import annotations

from imss_updater.run.restart import outside_this_unit


def test_without_systemd_the_command_runs_as_configured() -> None:
    argv = ["/opt/trend/imss/script/S99IMSS", "restart"]
    assert outside_this_unit(argv, "scan", 120, under_systemd=False) == argv


def test_under_systemd_the_command_is_the_start_command_of_a_transient_forking_service() -> None:
    argv = ["/opt/trend/imss/script/S99IMSS", "restart"]

    built = outside_this_unit(argv, "scan", 120, under_systemd=True)

    assert built[0] == "systemd-run"
    assert built[-3:] == ["--", *argv]
    options = built[1:-3]
    assert "--service-type=forking" in options  # returns when the script has exited
    assert "--scope" not in options  # a scope would keep this unit's sandbox
    assert "--property=TimeoutStartSec=120" in options
    assert "--collect" in options
    unit = next(option for option in options if option.startswith("--unit="))
    assert unit.startswith("--unit=imss-updater-restart-scan-")


def test_each_restart_gets_its_own_unit_name() -> None:
    first = outside_this_unit(["/bin/true"], "policy", 5, under_systemd=True)
    second = outside_this_unit(["/bin/true"], "policy", 5, under_systemd=True)
    assert first[1] != second[1]


def test_a_systemctl_command_already_asks_pid_1_and_is_left_alone() -> None:
    argv = ["systemctl", "restart", "imss-scan.service"]
    assert outside_this_unit(argv, "scan", 120, under_systemd=True) == argv

