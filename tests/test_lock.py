"""The download lock between real processes, including dead holders and foreign owners."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imss_updater.store import lock as lock_module
from imss_updater.store.lock import (
    LOCK_MESSAGE_EN,
    LOCK_MESSAGE_JA,
    LockBusy,
    download_lock,
    lock_holder,
    lock_path,
)

REPOSITORY = Path(__file__).resolve().parents[1]

CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from imss_updater.store.lock import LockBusy, download_lock
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


# --------------------------------------------------------------- other users


@pytest.fixture
def nobody_sandbox() -> Iterator[tuple[Path, Path, str]]:
    """A world-readable temp dir holding a copy of the lock module, the install root (whose
    lib/ belongs to nobody) and a Python that nobody can run; skip where impossible."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    base = Path(tempfile.mkdtemp(prefix="imss-lock-"))
    try:
        base.chmod(0o755)
        package = base / "pkg" / "imss_updater"
        (package / "store").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "store" / "__init__.py").write_text("")
        shutil.copy(lock_module.__file__, package / "store" / "lock.py")
        for path in (base / "pkg", package, *package.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        root = base / "imss"
        (root / "lib").mkdir(parents=True)
        (root / "lib").chmod(0o755)
        os.chown(root, 0, 0)
        os.chown(root / "lib", nobody.pw_uid, nobody.pw_gid)
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


def test_root_owned_private_lock_file_does_not_block_another_user(
    nobody_sandbox: tuple[Path, Path, str],
) -> None:
    root, package, python = nobody_sandbox
    stale = lock_path(root)
    stale.write_text("1\n")
    stale.chmod(0o600)

    result = try_lock(root, python, package, user="nobody")

    assert result.stdout.strip() == "acquired", result.stderr
    assert stale.stat().st_uid == pwd.getpwnam("nobody").pw_uid, "replaced by nobody"


def test_root_owned_readable_lock_file_is_used_read_only_by_another_user(
    nobody_sandbox: tuple[Path, Path, str],
) -> None:
    root, package, python = nobody_sandbox
    lock_path(root).write_text("")
    lock_path(root).chmod(0o644)

    result = try_lock(root, python, package, user="nobody")

    assert result.stdout.strip() == "acquired", result.stderr
    assert lock_path(root).stat().st_uid == 0, "a readable file is used, not replaced"


def test_lock_held_by_root_still_excludes_another_user(
    nobody_sandbox: tuple[Path, Path, str],
) -> None:
    root, package, python = nobody_sandbox
    # Left 0600 by an older tool: taking it as its owner opens it up to 0644, so the other
    # user can open it read-only and see the lock instead of replacing the file.
    lock_path(root).write_text("")
    lock_path(root).chmod(0o600)

    with download_lock(root):
        assert lock_path(root).stat().st_mode & 0o777 == 0o644
        result = try_lock(root, python, package, user="nobody")

    assert result.returncode == 2, result.stderr
    assert result.stdout.strip() == f"busy {os.getpid()} {LOCK_MESSAGE_EN}"
