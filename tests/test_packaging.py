"""What an operator installs beside the package: logrotate and tmpfiles.d entries (real tools)."""

from __future__ import annotations

import gzip
import importlib.resources
import shutil
import subprocess
from pathlib import Path

import pytest

DATA = Path(str(importlib.resources.files("imss_updater") / "data"))


def test_logrotate_rotates_the_embedded_clusters_log_in_place(tmp_path: Path) -> None:
    logrotate = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not Path(logrotate).exists():
        pytest.skip("logrotate is not installed (scripts/setup installs it)")
    log = tmp_path / "postgresql.log"
    log.write_text("LOG:  database system is ready to accept connections\n" * 100)
    config = (DATA / "imss-updater.logrotate").read_text().replace(
        "/var/lib/imss-updater/postgresql.log", str(log)
    )
    (tmp_path / "logrotate.conf").write_text(config)
    (tmp_path / "logrotate.conf").chmod(0o644)
    still_open = log.open("a")  # the postmaster keeps writing to the same file

    for _round in range(2):  # the second rotation compresses the first (delaycompress)
        subprocess.run([logrotate, "--force", "--state", str(tmp_path / "state"),
                        str(tmp_path / "logrotate.conf")], check=True, capture_output=True)
        still_open.write("LOG:  after rotation\n")
        still_open.flush()

    assert log.exists()
    assert "after rotation" in log.read_text()
    assert (tmp_path / "postgresql.log.1").exists()
    with gzip.open(tmp_path / "postgresql.log.2.gz", "rt") as rotated:
        assert "ready to accept connections" in rotated.read()
    still_open.close()


def test_tmpfiles_entry_creates_the_state_directory_root_owned_and_not_writable_by_others(
    tmp_path: Path,
) -> None:
    tmpfiles = shutil.which("systemd-tmpfiles")
    if tmpfiles is None:
        pytest.skip("systemd-tmpfiles is not installed (.ci/run installs systemd)")
    (tmp_path / "var" / "lib").mkdir(parents=True)

    subprocess.run([tmpfiles, "--create", f"--root={tmp_path}", str(DATA / "imss-updater.tmpfiles")],
                   check=True, capture_output=True)

    made = (tmp_path / "var" / "lib" / "imss-updater").stat()
    assert made.st_uid == 0 and made.st_gid == 0
    assert made.st_mode & 0o777 == 0o755
