"""A local user who can write the install root's lib/ cannot turn root's installs against
root: links they plant (as the real user ``nobody``) are never followed."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imss_updater.store.install import ComponentStore, InstallError, repair_all, staging_root
from tests.support.crashing import read_tree, write_zip

COMPONENT = "virus_pattern"
LIVE = "lib/pattern/vsapi"
LIMIT = 10 * 1024 * 1024
V1 = {"lpt$vpn.696": b"pattern 696"}


def as_nobody(*argv: str) -> None:
    result = subprocess.run(["runuser", "-u", "nobody", "--", *argv], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


@pytest.fixture
def hostile() -> Iterator[tuple[Path, Path]]:
    """(install root whose lib/ belongs to nobody, a victim directory of root's holding
    ``precious`` and ``vsapi``, both mode 0600); skip without root, runuser or nobody."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    base = Path(tempfile.mkdtemp(prefix="imss-hostile-"))
    try:
        base.chmod(0o755)
        root = base / "imss"
        (root / "lib").mkdir(parents=True)
        root.chmod(0o755)
        os.chown(root / "lib", nobody.pw_uid, nobody.pw_gid)
        victim = base / "victim"
        victim.mkdir()
        for name in ("precious", "vsapi"):
            (victim / name).write_text("root's secret\n")
            (victim / name).chmod(0o600)
        yield root, victim
    finally:
        shutil.rmtree(base)


def assert_victim_untouched(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == ["precious", "vsapi"]
    for name in ("precious", "vsapi"):
        status = (victim / name).stat()
        assert (victim / name).read_text() == "root's secret\n"
        assert (status.st_uid, status.st_mode & 0o777) == (0, 0o600)


def test_staging_link_planted_by_another_user_is_replaced_not_followed(
    hostile: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    root, victim = hostile
    # Before repair learnt this, it emptied whatever directory .staging pointed to.
    as_nobody("ln", "-s", str(victim), str(root / "lib/.staging"))
    caplog.set_level(logging.WARNING)

    repair_all(root, [(COMPONENT, LIVE)])
    ComponentStore(root, COMPONENT, LIVE).install(write_zip(tmp_path / "v1.zip", V1), "1569600",
                                                  max_unpacked_bytes=LIMIT)

    assert_victim_untouched(victim)
    staging = root / "lib/.staging"
    assert not staging.is_symlink() and staging.stat().st_uid == 0
    assert f"replacing {staging}: it is a symbolic link" in caplog.text
    assert read_tree(root / LIVE) == V1


def test_staging_directory_another_user_made_is_replaced_with_what_they_planted_in_it(
    hostile: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    root, victim = hostile
    staging = root / "lib/.staging"
    as_nobody("mkdir", "-m", "0777", str(staging))
    as_nobody("ln", "-s", str(victim / "precious"), str(staging / "download-virus_pattern-x.zip"))
    as_nobody("ln", "-s", str(victim), str(staging / f"{COMPONENT}.unpack-planted"))

    assert staging_root(root) == staging
    ComponentStore(root, COMPONENT, LIVE).install(write_zip(tmp_path / "v1.zip", V1), "1569600",
                                                  max_unpacked_bytes=LIMIT)

    assert_victim_untouched(victim)
    status = staging.stat()
    assert (status.st_uid, status.st_mode & 0o777) == (0, 0o755)
    assert os.listdir(staging) == []
    assert f"replacing {staging}: it is owned by uid 65534 (nobody)" in caplog.text


def test_generations_link_planted_by_another_user_fails_the_install_with_the_fix(
    hostile: tuple[Path, Path], tmp_path: Path,
) -> None:
    root, victim = hostile
    as_nobody("ln", "-s", str(victim), str(root / "lib/.generations"))

    with pytest.raises(InstallError) as failure:
        ComponentStore(root, COMPONENT, LIVE).install(write_zip(tmp_path / "v1.zip", V1),
                                                      "1569600", max_unpacked_bytes=LIMIT)

    generations = root / "lib/.generations"
    assert failure.value.reason == (
        f"{generations} is a symbolic link; make it a directory of root's: "
        f"chown -R root:root {generations} && chmod 0755 {generations}"
    )
    assert_victim_untouched(victim)
    assert not (root / LIVE).exists()


def test_live_parent_linked_elsewhere_by_another_user_is_not_followed(
    hostile: tuple[Path, Path], tmp_path: Path,
) -> None:
    root, victim = hostile
    # Followed, root would replace victim/vsapi with a link into the generations.
    as_nobody("ln", "-s", str(victim), str(root / "lib/pattern"))

    with pytest.raises(InstallError) as failure:
        ComponentStore(root, COMPONENT, LIVE).install(write_zip(tmp_path / "v1.zip", V1),
                                                      "1569600", max_unpacked_bytes=LIMIT)

    assert failure.value.reason == (
        f"{root / 'lib/pattern'} is a symbolic link in {root / 'lib'}, which is owned by uid "
        "65534 (nobody): not followed"
    )
    assert_victim_untouched(victim)


def test_store_works_normally_in_a_lib_directory_another_user_owns(
    hostile: tuple[Path, Path], tmp_path: Path,
) -> None:
    root, victim = hostile
    store = ComponentStore(root, COMPONENT, LIVE)
    store.install(write_zip(tmp_path / "v1.zip", V1), "1569600", max_unpacked_bytes=LIMIT)
    store.install(write_zip(tmp_path / "v2.zip", {"b": b"2"}), "1569700", max_unpacked_bytes=LIMIT)

    store.rollback()

    assert read_tree(root / LIVE) == V1
    for private in (root / "lib/.staging", root / "lib/.generations" / COMPONENT):
        assert private.stat().st_uid == 0
    assert_victim_untouched(victim)
