"""Install, keep one previous generation, roll back; reject unsafe or unsound archives."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imss_updater.store.install import ComponentStore, InstallError, repair_all, staging_root
from tests.support.crashing import read_tree, write_zip

COMPONENT = "virus_pattern"
LIVE = "lib/pattern/vsapi"
LIMIT = 10 * 1024 * 1024

V1 = {"lpt$vpn.696": b"pattern 696", "readme.txt": b"one"}
V2 = {"lpt$vpn.697": b"pattern 697", "sub/extra.dat": b"two"}
V3 = {"lpt$vpn.698": b"pattern 698"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "imss"
    path.mkdir()
    return path


@pytest.fixture
def store(root: Path) -> ComponentStore:
    return ComponentStore(root, COMPONENT, LIVE)


def install(store: ComponentStore, tmp_path: Path, version: str, files: dict[str, bytes]) -> None:
    archive = write_zip(tmp_path / f"{version}.zip", files)
    store.install(archive, version, max_unpacked_bytes=LIMIT)


def generation_names(root: Path) -> set[str]:
    return {entry.name for entry in (root / "lib/.generations" / COMPONENT).iterdir()}


def assert_untouched(root: Path, store: ComponentStore, files: dict[str, bytes]) -> None:
    assert read_tree(root / LIVE) == files
    assert store.state().current is not None
    assert list(staging_root(root).iterdir()) == []
    assert not (root / "lib/pattern/.vsapi.switch").exists()


def test_install_links_live_path_to_new_generation(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    install(store, tmp_path, "1569600", V1)

    state = store.state()
    assert state.current is not None and state.current.version == "1569600"
    assert state.current.seq == 1
    assert state.previous is None
    assert (root / LIVE).is_symlink()
    assert not os.readlink(root / LIVE).startswith("/"), "link must be relative"
    assert read_tree(root / LIVE) == V1
    assert list(staging_root(root).iterdir()) == []


def test_second_and_third_install_keep_exactly_one_previous(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    install(store, tmp_path, "1569600", V1)
    install(store, tmp_path, "1569700", V2)
    state = store.state()
    assert state.current is not None and state.current.version == "1569700"
    assert state.previous is not None and state.previous.version == "1569600"

    install(store, tmp_path, "1569800", V3)
    state = store.state()
    assert state.current is not None and state.current.version == "1569800"
    assert state.previous is not None and state.previous.version == "1569700"
    assert generation_names(root) == {"2-1569700", "3-1569800"}
    assert read_tree(root / LIVE) == V3


def test_rollback_restores_previous_generation_and_deletes_the_newer(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    install(store, tmp_path, "1569600", V1)
    install(store, tmp_path, "1569700", V2)

    state = store.rollback()

    assert state.current is not None and state.current.version == "1569600"
    assert state.previous is None
    assert read_tree(root / LIVE) == V1
    assert generation_names(root) == {"1-1569600"}
    assert list(staging_root(root).iterdir()) == []


def test_rolling_back_twice_fails_with_the_reason(store: ComponentStore, tmp_path: Path) -> None:
    install(store, tmp_path, "1569600", V1)
    install(store, tmp_path, "1569700", V2)
    store.rollback()

    with pytest.raises(InstallError) as failure:
        store.rollback()

    assert failure.value.reason == "no previous generation to roll back to"
    current = store.state().current
    assert current is not None and current.version == "1569600"


def test_rollback_without_any_install_fails(store: ComponentStore) -> None:
    with pytest.raises(InstallError, match="no previous generation"):
        store.rollback()


def test_install_after_rollback_gets_a_fresh_generation(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    install(store, tmp_path, "1569600", V1)
    install(store, tmp_path, "1569700", V2)
    store.rollback()
    install(store, tmp_path, "1569800", V3)

    state = store.state()
    assert state.current is not None and state.current.version == "1569800"
    assert state.previous is not None and state.previous.version == "1569600"
    assert read_tree(root / LIVE) == V3


@pytest.mark.parametrize("version", ["", "1.2.x", "../1", "1..2", "1/2", " 1"])
def test_malformed_version_is_rejected(
    store: ComponentStore, tmp_path: Path, version: str
) -> None:
    archive = write_zip(tmp_path / "a.zip", V1)
    with pytest.raises(InstallError, match="invalid version"):
        store.install(archive, version, max_unpacked_bytes=LIMIT)


def test_unsafe_component_id_or_live_path_is_refused(root: Path) -> None:
    with pytest.raises(ValueError):
        ComponentStore(root, "../x", LIVE)
    with pytest.raises(ValueError):
        ComponentStore(root, COMPONENT, "/opt/x")
    with pytest.raises(ValueError):
        ComponentStore(root, COMPONENT, "lib/../../x")
    with pytest.raises(ValueError):
        ComponentStore(root, COMPONENT, "lib/.generations/x")


def _zip_with(path: Path, info: zipfile.ZipInfo, content: bytes = b"x") -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("good.txt", b"good")
        bundle.writestr(info, content)
    return path


def _reject(
    root: Path, store: ComponentStore, tmp_path: Path, archive: Path, limit: int = LIMIT
) -> str:
    install(store, tmp_path, "1569600", V1)
    with pytest.raises(InstallError) as failure:
        store.install(archive, "1569700", max_unpacked_bytes=limit)
    assert_untouched(root, store, V1)
    assert generation_names(root) == {"1-1569600"}
    return failure.value.reason


def test_zip_slip_member_is_rejected_and_nothing_escapes(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    archive = _zip_with(tmp_path / "slip.zip", zipfile.ZipInfo("../../etc/x"))

    reason = _reject(root, store, tmp_path, archive)

    assert reason == "zip member escapes the install directory: ../../etc/x"
    assert not list(tmp_path.rglob("etc"))


def test_absolute_member_is_rejected(root: Path, store: ComponentStore, tmp_path: Path) -> None:
    archive = _zip_with(tmp_path / "absolute.zip", zipfile.ZipInfo("/etc/x"))
    assert zipfile.ZipFile(archive).namelist()[-1] == "/etc/x"

    reason = _reject(root, store, tmp_path, archive)

    assert reason == "zip member has an absolute path: /etc/x"


def test_symlink_member_is_rejected(root: Path, store: ComponentStore, tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = _zip_with(tmp_path / "link.zip", info, b"/etc/passwd")

    reason = _reject(root, store, tmp_path, archive)

    assert reason == "zip member is a symbolic link: link"


def test_device_member_is_rejected(root: Path, store: ComponentStore, tmp_path: Path) -> None:
    info = zipfile.ZipInfo("null")
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o666) << 16
    archive = _zip_with(tmp_path / "device.zip", info, b"")

    reason = _reject(root, store, tmp_path, archive)

    assert reason == "zip member is a device or special file: null"


def test_oversized_unpacked_content_is_rejected(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    archive = write_zip(tmp_path / "bomb.zip", {"zeros": bytes(4 * 1024 * 1024)})
    assert archive.stat().st_size < 64 * 1024, "compresses well, like a zip bomb"

    reason = _reject(root, store, tmp_path, archive, limit=1024 * 1024)

    assert reason == f"unpacked size {4 * 1024 * 1024} bytes exceeds the limit of 1048576 bytes"


def test_file_that_is_not_a_zip_is_rejected(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    archive = tmp_path / "garbage.zip"
    archive.write_bytes(os.urandom(4096))

    reason = _reject(root, store, tmp_path, archive)

    assert reason.startswith("bad zip file")


def test_member_with_bad_crc_is_rejected(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    archive = tmp_path / "crc.zip"
    content = b"A" * 1000
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as bundle:
        bundle.writestr("first.txt", b"fine")
        bundle.writestr("pattern.dat", content)
    data = bytearray(archive.read_bytes())
    data[data.index(content) + 500] = ord("B")
    archive.write_bytes(bytes(data))

    reason = _reject(root, store, tmp_path, archive)

    assert reason.startswith("bad zip file") and "CRC" in reason


def test_duplicate_member_is_rejected(root: Path, store: ComponentStore, tmp_path: Path) -> None:
    archive = tmp_path / "duplicate.zip"
    with pytest.warns(UserWarning), zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("a.txt", b"1")
        bundle.writestr("a.txt", b"2")

    reason = _reject(root, store, tmp_path, archive)

    assert reason.startswith("zip member conflicts with another member")


def test_missing_archive_is_reported(store: ComponentStore, tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="archive not found"):
        store.install(tmp_path / "absent.zip", "1", max_unpacked_bytes=LIMIT)


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 1 MiB tmpfs, or skip when this machine does not allow mounting one."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mount_point = Path(tempfile.mkdtemp(prefix="imss-small-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )
    if mounted.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
        mount_point.rmdir()


def test_full_disk_keeps_current_and_leaves_no_staging(
    small_disk: Path, tmp_path: Path
) -> None:
    root = small_disk / "imss"
    store = ComponentStore(root, COMPONENT, LIVE)
    install(store, tmp_path, "1569600", V1)
    archive = write_zip(tmp_path / "big.zip", {"small.txt": b"s", "big.dat": os.urandom(3 << 20)})

    with pytest.raises(InstallError) as failure:
        store.install(archive, "1569700", max_unpacked_bytes=LIMIT)

    assert failure.value.reason == "disk full while unpacking"
    assert_untouched(root, store, V1)
    assert generation_names(root) == {"1-1569600"}
    install(store, tmp_path, "1569800", V3)
    assert read_tree(root / LIVE) == V3


def test_preexisting_real_directory_is_adopted_as_previous_generation(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    live = root / LIVE
    live.mkdir(parents=True)
    (live / "lpt$vpn.600").write_bytes(b"factory pattern")
    state = store.state()
    assert state.current is not None and state.current.version == "0"

    install(store, tmp_path, "1569600", V1)

    state = store.state()
    assert state.current is not None and state.current.version == "1569600"
    assert state.previous is not None
    assert (state.previous.seq, state.previous.version) == (0, "0")
    assert live.is_symlink()
    assert read_tree(live) == V1

    store.rollback()
    assert read_tree(live) == {"lpt$vpn.600": b"factory pattern"}
    assert live.is_symlink()
    assert generation_names(root) == {"0-0"}


def test_install_creates_missing_live_parent_directories(
    root: Path, tmp_path: Path
) -> None:
    store = ComponentStore(root, "url_filter_engine", "lib/engine/deep/tmufe")
    archive = write_zip(tmp_path / "e.zip", V1)
    store.install(archive, "3.81.1056", max_unpacked_bytes=LIMIT)
    assert read_tree(root / "lib/engine/deep/tmufe") == V1


def test_repair_removes_garbage_and_keeps_current_and_previous(
    root: Path, store: ComponentStore, tmp_path: Path
) -> None:
    install(store, tmp_path, "1569600", V1)
    install(store, tmp_path, "1569700", V2)
    generations = root / "lib/.generations" / COMPONENT
    (generations / "7-1569900").mkdir()  # an install interrupted before its switch
    (generations / "0-0").mkdir()  # older than previous
    leftover = staging_root(root) / f"{COMPONENT}.unpack-abc"
    leftover.mkdir()
    (leftover / "half.dat").write_bytes(b"half")
    foreign = staging_root(root) / "retired_component.unpack-xyz"
    foreign.mkdir()
    (root / "lib/pattern/.vsapi.switch").symlink_to("nowhere")

    fixes = repair_all(root, [(COMPONENT, LIVE), ("spyware_pattern", "lib/pattern/spyware")])

    assert len(fixes) == 5
    assert generation_names(root) == {"1-1569600", "2-1569700"}
    assert list(staging_root(root).iterdir()) == []
    assert not os.path.lexists(root / "lib/pattern/.vsapi.switch")
    assert read_tree(root / LIVE) == V2
    assert store.repair() == []


def test_repair_relinks_live_path_lost_during_adoption(
    root: Path, store: ComponentStore
) -> None:
    adopted = root / "lib/.generations" / COMPONENT / "0-0"
    adopted.mkdir(parents=True)
    (adopted / "old.dat").write_bytes(b"old")
    (root / "lib/pattern").mkdir(parents=True)

    fixes = store.repair()

    assert len(fixes) == 1 and "relinked" in fixes[0]
    assert read_tree(root / LIVE) == {"old.dat": b"old"}
    current = store.state().current
    assert current is not None and current.seq == 0
