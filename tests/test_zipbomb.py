"""Zip bombs: refused up front on the declared sizes, and while unpacking on the bytes
really written (store/zipbomb.py through ComponentStore.install)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from imss_updater.store import zipbomb
from imss_updater.store.install import ComponentStore, InstallError

LIMIT = 64 * 1024 * 1024


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def refusal(tmp_path: Path, files: dict[str, bytes], limit: int = LIMIT) -> str:
    archive = write_zip(tmp_path / "bomb.zip", files)
    store = ComponentStore(tmp_path / "root", "virus_pattern", "lib/pattern/vsapi")
    with pytest.raises(InstallError) as raised:
        store.install(archive, "1569800", max_unpacked_bytes=limit)
    assert not (tmp_path / "root" / "lib" / "pattern" / "vsapi").exists()
    return raised.value.reason


def test_a_member_that_compresses_over_200_to_1_is_refused(tmp_path: Path) -> None:
    reason = refusal(tmp_path, {"zeros": bytes(8 * 1024 * 1024)})

    assert reason.startswith("zip bomb refused: member zeros would unpack ")
    assert reason.endswith(f" -> {8 * 1024 * 1024} bytes), over 200:1")


def test_many_small_members_that_compress_absurdly_are_refused_as_a_whole(tmp_path: Path) -> None:
    files = {f"zeros{number}": bytes(512 * 1024) for number in range(8)}  # each under the floor

    reason = refusal(tmp_path, files)

    assert reason.startswith("zip bomb refused: the archive would unpack ")
    assert reason.endswith(f" -> {4 * 1024 * 1024} bytes), over 200:1")


def test_more_than_ten_thousand_members_are_refused(tmp_path: Path) -> None:
    reason = refusal(tmp_path, {f"m{number}": b"" for number in range(10_001)})

    assert reason == "zip bomb refused: 10001 members, over the limit of 10000"


def test_a_small_highly_compressible_file_is_not_a_bomb(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "text.zip", {"blank.dat": bytes(512 * 1024), "ok.txt": b"ok"})
    store = ComponentStore(tmp_path / "root", "virus_pattern", "lib/pattern/vsapi")

    store.install(archive, "1569700", max_unpacked_bytes=LIMIT)

    assert (tmp_path / "root" / "lib" / "pattern" / "vsapi" / "blank.dat").stat().st_size == 512 * 1024


def test_ten_thousand_members_are_still_reasonable(tmp_path: Path) -> None:
    archive = write_zip(tmp_path / "many.zip", {f"m{number}": b"x" for number in range(10_000)})
    with zipfile.ZipFile(archive) as bundle:
        infos = bundle.infolist()

    zipbomb.check_declared_sizes(infos, archive.stat().st_size, LIMIT)  # no refusal

    assert len(infos) == 10_000


# zipfile never hands out more bytes than a member declares (it stops there and then fails on
# the CRC), so a reader that lies is built here: the one seam where no real zip can serve.
def test_a_member_writing_more_than_it_declared_is_stopped_while_unpacking() -> None:
    info = zipfile.ZipInfo("liar")
    info.file_size = 10
    output = io.BytesIO()

    with pytest.raises(zipbomb.ZipBombError) as raised:
        zipbomb.UnpackBudget(LIMIT).copy(io.BytesIO(bytes(3 * 1024 * 1024)), output, info)

    assert raised.value.reason == (
        "zip bomb refused: member liar unpacks to more than its declared 10 bytes"
    )
    assert output.tell() == 0  # the first chunk over the declared size is not written


def test_an_archive_writing_more_than_the_limit_is_stopped_while_unpacking() -> None:
    budget = zipbomb.UnpackBudget(1024 * 1024)
    for name in ("one", "two"):
        info = zipfile.ZipInfo(name)
        info.file_size = 768 * 1024
        if name == "one":
            budget.copy(io.BytesIO(bytes(info.file_size)), io.BytesIO(), info)
            continue
        with pytest.raises(zipbomb.ZipBombError) as raised:
            budget.copy(io.BytesIO(bytes(info.file_size)), io.BytesIO(), info)

    assert raised.value.reason == (
        f"zip bomb refused: unpacking wrote more than the limit of {1024 * 1024} bytes"
    )
