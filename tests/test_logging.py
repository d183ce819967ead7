"""Logs an operator can read: levels, journald priorities, one entry per record."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imss_updater import logsetup
from tests.support.gateway import Gateway


@pytest.fixture(autouse=True)
def _restore_root_logger() -> object:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield None
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_under_journald_each_line_has_a_priority_prefix_and_no_timestamp(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        status = os.fstat(stream.fileno())
        environ = {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}
        logsetup.configure(0, daemon=True, environ=environ, stream=stream)
        log = logging.getLogger("imss_updater.test")
        log.error("cannot read %s", "http://source/server.ini")
        log.warning("using the last good settings")
        log.info("virus_pattern 15.697.00 was downloaded successfully.")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines == [
        "<3>imss_updater.test: cannot read http://source/server.ini",
        "<4>imss_updater.test: using the last good settings",
        "<6>imss_updater.test: virus_pattern 15.697.00 was downloaded successfully.",
    ]


def test_a_traceback_is_one_journal_entry(tmp_path: Path) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        status = os.fstat(stream.fileno())
        logsetup.configure(0, daemon=True, stream=stream,
                           environ={"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("imss_updater.test").exception("run failed")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("<3>imss_updater.test: run failed")
    assert "Traceback (most recent call last):" in lines[0] and "RuntimeError: boom" in lines[0]


def test_outside_journald_lines_carry_a_timestamp_and_no_prefix() -> None:
    stream = io.StringIO()
    logsetup.configure(0, daemon=True, environ={"JOURNAL_STREAM": "1:2"}, stream=stream)
    logging.getLogger("imss_updater.test").error("failed")
    line = stream.getvalue().strip()
    assert not line.startswith("<") and line.endswith("ERROR imss_updater.test: failed")


def test_apscheduler_job_chatter_is_kept_at_warning() -> None:
    stream = io.StringIO()
    logsetup.configure(0, daemon=True, environ={}, stream=stream)
    logging.getLogger("apscheduler.executors.default").info('Running job "scheduled-update"')
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    assert "Running job" not in stream.getvalue()
    assert "was missed" in stream.getvalue()


def test_log_level_from_the_environment_and_the_option() -> None:
    stream = io.StringIO()
    logsetup.configure(0, daemon=True, environ={"IMSS_LOG_LEVEL": "warning"}, stream=stream)
    logging.getLogger("imss_updater.test").info("hidden")
    logging.getLogger("imss_updater.test").warning("shown")
    assert "hidden" not in stream.getvalue() and "shown" in stream.getvalue()
    stream = io.StringIO()
    logsetup.configure(0, daemon=False, level_name="debug", environ={}, stream=stream)
    logging.getLogger("imss_updater.test").debug("details")
    assert "details" in stream.getvalue()


def test_an_unknown_log_level_is_one_line_and_exit_2() -> None:
    result = subprocess.run([sys.executable, "-m", "imss_updater.cli", "status"],
                            env={**os.environ, "IMSS_LOG_LEVEL": "loud"},
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "imss-updater: unknown log level 'loud' (use one of: debug, info, warning, error, critical)"
    ]


def test_an_unreachable_source_is_one_error_line_naming_the_components_it_affects(
    gateway: Gateway, refused_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("UpdateServer", "TMASEServerurl"):
        gateway.set("Update", name, f"http://127.0.0.1:{refused_port}/activeupdate")
    caplog.set_level(logging.INFO)

    result = gateway.cli("run", "--once")

    assert result.code == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"update source http://127.0.0.1:{refused_port}/activeupdate: ")
    assert "virus_pattern" in errors[0] and "antispam_pattern" in errors[0]
    # Each component's failure is still recorded (and logged below ERROR).
    assert {event[1] for event in gateway.events() if event[3] == "failure"} >= {"virus_pattern",
                                                                                 "antispam_pattern"}
