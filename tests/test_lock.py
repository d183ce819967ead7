"""The download lock between real processes, including dead holders and foreign owners."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imss_updater import i18n, oserrors
from imss_updater.store import lock as lock_module
from imss_updater.store import ownership
from imss_updater.store.lock import (
    LOCK_MESSAGE_EN,
    LOCK_MESSAGE_JA,
    LockBusy,
    LockUnusable,
    download_lock,
    lock_holder,
    lock_path,
    lock_problem,
)
from tests.support.gateway import Gateway

REPOSITORY = Path(__file__).resolve().parents[1]

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from imss_updater.store.lock import LockBusy, LockUnusable, download_lock
root, mode = Path(sys.argv[2]), sys.argv[3]
if mode == "hold":
    with download_lock(root):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
else:
    try:
        with download_lock(root):
            print("acquired", flush=True)
    except LockBusy as busy:
        print("busy", busy.holder_pid, str(busy), flush=True)
        sys.exit(2)
    except LockUnusable as unusable:
        print("unusable", unusable.reason, flush=True)
        sys.exit(3)
"""

# Holds an flock on a file it opens read-only, as any user could on a world-readable file.
FLOCK_HOLDER = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(descriptor, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()
"""


def start_holder(root: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(REPOSITORY), str(root), "hold"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def try_lock(root: Path, python: str = sys.executable, path: Path = REPOSITORY,
             user: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["runuser", "-u", user, "--"] if user else []
    return subprocess.run(
        [*prefix, python, "-c", CHILD, str(path), str(root), "try"],
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_second_process_fails_at_once_with_the_message(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    try:
        other = try_lock(tmp_path)
        assert other.returncode == 2, other.stderr
        assert other.stdout.strip() == f"busy {holder.pid} {LOCK_MESSAGE_EN}"

        with pytest.raises(LockBusy) as busy, download_lock(tmp_path):
            pass
        assert str(busy.value) == "Another process is downloading files."
        assert busy.value.message_ja == LOCK_MESSAGE_JA
        assert LOCK_MESSAGE_JA == "別のプロセスでファイルをダウンロード中です。"
        assert busy.value.holder_pid == holder.pid
        assert lock_holder(tmp_path) == holder.pid
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    assert lock_path(tmp_path).exists(), "release must not unlink the file"
    assert lock_holder(tmp_path) is None
    with download_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()


def test_lock_left_by_a_killed_holder_blocks_nothing(tmp_path: Path) -> None:
    holder = start_holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock_path(tmp_path).read_text().strip() == str(holder.pid)

    assert lock_holder(tmp_path) is None
    assert try_lock(tmp_path).stdout.strip() == "acquired"
    with download_lock(tmp_path):
        assert lock_path(tmp_path).read_text().strip() == str(os.getpid())


def test_lock_is_reusable_in_the_same_process_after_release(tmp_path: Path) -> None:
    with download_lock(tmp_path):
        pass
    with download_lock(tmp_path):
        pass
    assert lock_holder(tmp_path) is None


def test_asking_for_the_holder_never_takes_the_lock(tmp_path: Path) -> None:
    lock_path(tmp_path).parent.mkdir(parents=True)
    lock_path(tmp_path).write_text("")
    if lock_module._holder_from_lock_table(os.stat(lock_path(tmp_path))) is None:
        pytest.skip("/proc/locks is not readable here; lock_holder falls back to probing")
    with download_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
        assert try_lock(tmp_path).returncode == 2


def test_symbolic_link_at_the_lock_path_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lock_path(tmp_path).parent.mkdir(parents=True)
    lock_path(tmp_path).symlink_to(victim)

    with download_lock(tmp_path):
        pass

    assert victim.read_text() == "precious"
    assert not lock_path(tmp_path).is_symlink()


# ------------------------------------------------------------ files others could open


def _fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def _owned_by_nobody(path: Path) -> None:
    path.write_text("")
    path.chmod(0o600)
    os.chown(path, 65534, 65534)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
@pytest.mark.parametrize(
    ("plant", "why"),
    [
        (lambda path: (path.write_text(""), path.chmod(0o644)), "other users can open it (mode 0644)"),
        (lambda path: (path.write_text(""), path.chmod(0o640)), "other users can open it (mode 0640)"),
        (_owned_by_nobody, "it is owned by uid 65534"),
        (_fifo, "it is not a regular file"),
    ],
    ids=["world-readable", "group-readable", "another-owner", "fifo"],
)
def test_lock_file_another_user_could_open_is_replaced_with_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, plant: object, why: str,
) -> None:
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    plant(path)  # type: ignore[operator]

    with download_lock(tmp_path):
        held = path.stat()

    assert stat.S_ISREG(held.st_mode)
    assert (held.st_uid, stat.S_IMODE(held.st_mode)) == (0, 0o600)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"replacing lock file {path}: {why}")


def test_lock_file_is_created_private_to_its_owner(tmp_path: Path) -> None:
    with download_lock(tmp_path):
        assert stat.S_IMODE(lock_path(tmp_path).stat().st_mode) == 0o600
    assert lock_path(tmp_path) == tmp_path / "lib" / ".audownload.lck"


def test_lock_file_that_is_a_directory_is_one_line_from_the_lock_cli_and_diagnose(
    gateway: Gateway,
) -> None:
    lock_path(gateway.root).mkdir(parents=True)
    expected = f"the download lock {lock_path(gateway.root)} is a directory: remove it"

    with pytest.raises(LockUnusable) as unusable, download_lock(gateway.root):
        pass
    assert unusable.value.reason.startswith(expected)
    assert lock_problem(gateway.root) == unusable.value.reason

    rollback = gateway.cli("rollback", "virus_pattern")
    assert rollback.code == 1
    assert rollback.stderr == f"imss-updater: {unusable.value.reason}\n"
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    scheduled = gateway.cli("run", "--once")
    assert (scheduled.code, scheduled.stderr) == (1, rollback.stderr)

    diagnosis = gateway.cli("diagnose", "--json")
    steps = {step["name"]: step for step in json.loads(diagnosis.stdout)["steps"]}
    assert steps["lock file"]["result"] == "FAIL"
    assert steps["lock file"]["detail"] == unusable.value.reason
    assert "Traceback" not in rollback.stderr + scheduled.stderr + diagnosis.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the rule is about directories root works in")
def test_lock_in_a_directory_other_users_can_write_is_refused_with_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "imss"
    (root / "lib").mkdir(parents=True)
    for directory in (root, root / "lib"):
        directory.chmod(0o777)

    with pytest.raises(LockUnusable) as unusable, download_lock(root):
        pass

    assert unusable.value.reason == (
        f"cannot keep the download lock {root / '.audownload.lck'} safe: {root} is writable by "
        f"others (mode 0777); run: chown root:root {root} && chmod 0755 {root}"
    )
    assert not (root / "lib" / ".audownload.lck").exists()


# --------------------------------------------------------------- other users


@pytest.fixture
def nobody_sandbox() -> Iterator[tuple[Path, Path, str]]:
    """A world-readable temp dir holding a copy of the lock modules, the install root
    (root's, lib/ root's, both 0755) and a Python that nobody can run; skip where
    impossible."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as another user")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    base = Path(tempfile.mkdtemp(prefix="imss-lock-"))
    try:
        base.chmod(0o755)
        package = base / "pkg" / "imss_updater"
        (package / "store").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "store" / "__init__.py").write_text("")
        for module in (lock_module, ownership, i18n, oserrors):  # lock.py and what it imports
            assert module.__file__ is not None
            into = package / "store" if module in (lock_module, ownership) else package
            shutil.copy(module.__file__, into / Path(module.__file__).name)
        for path in (base / "pkg", package, *package.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        root = base / "imss"
        (root / "lib").mkdir(parents=True)
        for directory in (root, root / "lib"):
            directory.chmod(0o755)
        python = next(
            (
                candidate
                for candidate in (sys.executable, "/usr/bin/python3")
                if subprocess.run(["runuser", "-u", "nobody", "--", candidate, "-c", "pass"],
                                  capture_output=True, check=False).returncode == 0
            ),
            None,
        )
        if python is None:
            pytest.skip("no Python interpreter that the user nobody may run")
        yield root, base / "pkg", python
    finally:
        shutil.rmtree(base)


def hold_flock_as_nobody(python: str, path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        ["runuser", "-u", "nobody", "--", python, "-c", FLOCK_HOLDER, str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline().strip()
    if line != "locked":
        holder.kill()
        _out, error = holder.communicate(timeout=30)
        pytest.fail(f"nobody could not hold the flock: {error}")
    return holder


def test_another_user_holding_an_flock_on_the_old_world_readable_file_cannot_block_root(
    nobody_sandbox: tuple[Path, Path, str], caplog: pytest.LogCaptureFixture,
) -> None:
    root, _package, python = nobody_sandbox
    old = lock_path(root)
    old.write_text("")
    old.chmod(0o644)  # what earlier versions left behind
    squatter = hold_flock_as_nobody(python, old)
    try:
        assert lock_holder(root) is None, "a file that will be replaced counts as free"

        with download_lock(root):
            assert lock_holder(root) == os.getpid()
            other = try_lock(root)
            assert other.stdout.strip() == f"busy {os.getpid()} {LOCK_MESSAGE_EN}"
            held = lock_path(root).stat()
            assert (held.st_uid, stat.S_IMODE(held.st_mode)) == (0, 0o600)

        assert squatter.poll() is None, "the squatter still holds its flock on the old inode"
        assert try_lock(root).stdout.strip() == "acquired"
    finally:
        squatter.communicate("\n", timeout=30)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"replacing lock file {old}: other users can open it (mode 0644)"
    ]


def test_another_user_can_neither_open_nor_replace_the_lock_root_made(
    nobody_sandbox: tuple[Path, Path, str],
) -> None:
    root, package, python = nobody_sandbox
    with download_lock(root):
        pass
    opened = subprocess.run(
        ["runuser", "-u", "nobody", "--", python, "-c",
         "import os, sys; os.open(sys.argv[1], os.O_RDONLY)", str(lock_path(root))],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert opened.returncode != 0
    assert "PermissionError" in opened.stderr

    result = try_lock(root, python, package, user="nobody")

    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith(f"unusable cannot replace the download lock {lock_path(root)}")
    assert lock_path(root).stat().st_uid == 0


def test_lock_moves_to_the_install_root_when_lib_belongs_to_another_user(
    nobody_sandbox: tuple[Path, Path, str], caplog: pytest.LogCaptureFixture,
) -> None:
    root, _package, python = nobody_sandbox
    nobody = pwd.getpwnam("nobody")
    os.chown(root / "lib", nobody.pw_uid, nobody.pw_gid)
    in_lib = root / "lib" / ".audownload.lck"
    in_lib.write_text("")
    os.chown(in_lib, nobody.pw_uid, nobody.pw_gid)
    squatter = hold_flock_as_nobody(python, in_lib)
    try:
        assert lock_path(root) == root / ".audownload.lck"
        with download_lock(root):
            assert lock_holder(root) == os.getpid()
            assert try_lock(root).returncode == 2
            assert stat.S_IMODE((root / ".audownload.lck").stat().st_mode) == 0o600
    finally:
        squatter.communicate("\n", timeout=30)
    assert f"download lock kept in {root / '.audownload.lck'}: {root / 'lib'} is owned by uid " \
        f"65534 (nobody)" in caplog.text
