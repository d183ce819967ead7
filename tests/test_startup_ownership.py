"""Root refuses to start on a state directory or install root another local user controls,
with one line naming the path and the fix."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from imss_updater import cli
from tests.support.gateway import Gateway

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the check applies when running as root")

NOBODY = 65534


def fix(path: Path) -> str:
    return f"run: chown root:root {path} && chmod 0755 {path}"


def test_daemon_refuses_a_state_directory_another_user_owns(gateway: Gateway, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, NOBODY, NOBODY)
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()

    result = gateway.cli("run", "--once", "--state", str(state))

    assert result.code == 2
    assert result.stderr == (
        f"imss-updater: state directory {state} is owned by uid 65534 (nobody); {fix(state)}\n"
    )
    assert gateway.events() == [] and gateway.restarts() == []
    assert os.listdir(state) == []


def test_commands_that_change_the_install_root_refuse_one_others_can_write(
    gateway: Gateway,
) -> None:
    gateway.root.chmod(0o777)
    expected = (f"imss-updater: install root {gateway.root} is writable by others (mode 0777); "
                f"{fix(gateway.root)}\n")

    for command in (("update", "--all"), ("rollback", "virus_pattern"), ("run", "--once")):
        result = gateway.cli(*command)
        assert (result.code, result.stderr) == (2, expected), command

    assert gateway.cli("status").code == 0, "reading is still allowed"
    gateway.root.chmod(0o755)
    assert gateway.cli("run", "--once").code == 0


def test_install_root_inside_a_directory_another_user_owns_is_refused(
    gateway: Gateway, tmp_path: Path,
) -> None:
    theirs = tmp_path / "theirs"
    (theirs / "imss").mkdir(parents=True)
    os.chown(theirs, NOBODY, NOBODY)

    result = gateway.cli("update", "--all", "--root", str(theirs / "imss"))

    assert result.code == 2
    assert result.stderr == (
        f"imss-updater: install root {theirs / 'imss'} is inside {theirs}, which is owned by uid "
        f"65534 (nobody); run: chown root {theirs} && chmod go-w {theirs}\n"
    )


def test_state_directory_reached_through_a_link_is_checked_where_it_really_is(
    gateway: Gateway, tmp_path: Path,
) -> None:
    theirs = tmp_path / "theirs"
    (theirs / "state").mkdir(parents=True)
    theirs.chmod(0o777)
    link = tmp_path / "state-link"
    link.symlink_to(theirs / "state")

    result = gateway.cli("run", "--once", "--state", str(link))

    assert result.code == 2
    assert f"is inside {theirs}, which is writable by others (mode 0777)" in result.stderr


def test_embedded_database_is_not_started_in_a_group_writable_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o775)
    monkeypatch.delenv("IMSS_DSN", raising=False)
    stderr = io.StringIO()

    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["status", "--state", str(state), "--root", str(tmp_path / "root")])

    assert code == 2
    assert stderr.getvalue() == (
        f"imss-updater: state directory {state} is writable by group root (mode 0775); "
        f"{fix(state)}\n"
    )
    assert os.listdir(state) == []
