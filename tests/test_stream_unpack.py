"""The streaming unpack gives exactly what the classic unpack gives, or runs it.

Every archive here, honest or hostile, is unpacked twice from real files: by the classic
unpack (``store.unpack``, driven by the central directory) and by ``StreamUnpacker`` fed in
chunks as a download would feed it. The trees (names, bytes, modes) or the refusal reasons
must be the same, and the streamed files must have been used only for archives whose local
headers say everything the central directory says.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from imss_updater.store.stream_unpack import StreamUnpacker
from imss_updater.store.unpack import ArchiveError, unpack

LIMIT = 4 * 1024 * 1024
Outcome = tuple[str, object]


def _info(name: str, mode: int = 0o644, method: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 5))
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = method
    return info


def plain(handle: io.BytesIO | None = None) -> bytes:
    target = handle or io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(_info("vsapi.697", method=zipfile.ZIP_STORED), os.urandom(300_000))
        archive.writestr(_info("readme.txt"), b"pattern 697\n" * 5000)
        archive.writestr("engine/", b"")
        archive.writestr(_info("engine/lib/libvsapi.so", 0o755), os.urandom(70_000))
        archive.writestr(_info("empty"), b"")
    return target.getvalue()


class _Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False

    def seek(self, *args: object) -> int:
        raise OSError("not seekable")

    def tell(self) -> int:
        raise OSError("not seekable")


def with_data_descriptors() -> bytes:
    """Written to a pipe-like stream, zipfile puts each member's sizes after its data."""
    stream = _Unseekable()
    with zipfile.ZipFile(stream, "w") as archive:
        archive.writestr(_info("vsapi.697"), b"pattern\n" * 1000)
    return stream.getvalue()


def _central(data: bytes) -> int:
    end = data.rindex(b"PK\x05\x06")
    return int(struct.unpack_from("<I", data, end + 16)[0])


def with_prefix() -> bytes:
    return b"#!/bin/sh\nexit 0\n" + plain()


def junk_before_directory() -> bytes:
    data = plain()
    cut = _central(data)
    return data[:cut] + b"X" * 100 + data[cut:]


def renamed_in_directory() -> bytes:
    data = plain()
    cut = _central(data)
    return data[:cut] + data[cut:].replace(b"readme.txt", b"README.txt")


def hidden_member() -> bytes:
    """Local headers for two members, a directory (with its offset right) that lists one."""
    listed = _with([("a", b"listed")])()
    both = _with([("a", b"listed"), ("b", b"hidden from the directory")])()
    directory = listed[_central(listed):]
    end = directory.rindex(b"PK\x05\x06")
    locals_ = both[:_central(both)]
    fixed = directory[:end + 16] + struct.pack("<I", len(locals_)) + directory[end + 20:]
    return locals_ + fixed


def crc_lie() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(_info("vsapi.697", method=zipfile.ZIP_STORED), b"genuine pattern\n")
    data = archive.getvalue()
    crc = struct.pack("<I", zipfile.crc32(b"genuine pattern\n"))
    return data.replace(crc, struct.pack("<I", 0xDEADBEEF))


def declared_size_lie() -> bytes:
    """A deflated member that inflates to 1 MiB while both headers declare 1000 bytes."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr(_info("zeros"), bytes(1 << 20))
    return archive.getvalue().replace(struct.pack("<I", 1 << 20), struct.pack("<I", 1000))


def _with(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Callable[[], bytes]:
    def build() -> bytes:
        archive = io.BytesIO()
        with warnings.catch_warnings(), zipfile.ZipFile(archive, "w") as bundle:
            warnings.simplefilter("ignore")  # duplicate names are the point
            for info, data in members:
                bundle.writestr(info, data)
        return archive.getvalue()
    return build


def _symlink() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("vsapi.697")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


# name -> (archive, whether the streamed files are used)
ARCHIVES: dict[str, tuple[Callable[[], bytes], bool]] = {
    "plain": (plain, True),
    "data descriptors": (with_data_descriptors, False),
    "prefix": (with_prefix, False),
    "junk before the directory": (junk_before_directory, False),
    "renamed in the directory": (renamed_in_directory, False),
    "a member the directory does not list": (hidden_member, False),
    "crc lie": (crc_lie, False),
    "declared size lie": (declared_size_lie, False),
    "over the limit": (_with([(_info("big", method=zipfile.ZIP_STORED), os.urandom(LIMIT + 1))]), False),
    "ratio over 200:1": (_with([(_info("zeros"), bytes(3 << 20))]), False),
    "over ten thousand members": (_with([(f"m{number}", b"") for number in range(10_001)]), False),
    "symbolic link": (_with([(_symlink(), b"/etc/passwd")]), True),
    "escape": (_with([("../evil", b"x")]), True),
    "duplicate": (_with([("a", b"1"), ("a", b"2")]), True),
    "file then directory": (_with([("a", b"1"), ("a/b", b"2")]), True),
    "empty": (_with([]), True),
}


def tree(directory: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for path in sorted(directory.rglob("*")):
        mode = stat.S_IMODE(path.lstat().st_mode)
        found[str(path.relative_to(directory))] = (mode, "dir" if path.is_dir() else path.read_bytes())
    return found


def classic(archive: Path, destination: Path) -> Outcome:
    destination.mkdir()
    try:
        unpack(archive, destination, LIMIT)
    except ArchiveError as error:
        return "refused", error.reason.replace(str(destination), "DEST")
    return "unpacked", tree(destination)


def streamed(archive: Path, destination: Path, work: Path, chunk: int) -> tuple[Outcome, bool]:
    destination.mkdir()
    work.mkdir()
    unpacker = StreamUnpacker(work, LIMIT)
    data = archive.read_bytes()
    for start in range(0, len(data), chunk):
        unpacker.feed(data[start:start + chunk])
    try:
        used = unpacker.finish(archive, destination)
    except ArchiveError as error:
        return ("refused", error.reason.replace(str(destination), "DEST")), unpacker.stopped is None
    finally:
        unpacker.close()
        assert not list(work.iterdir()), "no provisional file is left"
    return ("unpacked", tree(destination)), used


# 10 000 files synced take seconds: that archive is fed in large chunks only.
CASES = [(name, chunk) for name in ARCHIVES for chunk in (1, 4093, 1 << 20)
         if name != "over ten thousand members" or chunk == 1 << 20]


@pytest.mark.parametrize(("name", "chunk"), CASES)
def test_the_streaming_unpack_gives_what_the_classic_unpack_gives(
    tmp_path: Path, name: str, chunk: int
) -> None:
    build, streams = ARCHIVES[name]
    if chunk == 1 and name in ("over the limit", "plain"):
        chunk = 7  # the same boundaries, in a tenth of the time
    archive = tmp_path / "package.zip"
    archive.write_bytes(build())

    expected = classic(archive, tmp_path / "classic")
    got, used = streamed(archive, tmp_path / "streamed", tmp_path / "work", chunk)

    assert got == expected
    assert used == streams


def test_an_honest_archive_is_unpacked_while_it_arrives(tmp_path: Path) -> None:
    archive = tmp_path / "package.zip"
    archive.write_bytes(plain())
    (tmp_path / "work").mkdir()
    unpacker = StreamUnpacker(tmp_path / "work", LIMIT)
    data = archive.read_bytes()
    unpacker.feed(data[: len(data) - 200])  # the central directory has not arrived yet

    provisional = sorted(path.name for path in (tmp_path / "work").iterdir())
    assert provisional == ["1", "2", "4", "5"], "every file member, by its position only"
    assert (tmp_path / "work" / "4").stat().st_size == 70_000
    unpacker.feed(data[len(data) - 200:])
    (tmp_path / "out").mkdir()
    assert unpacker.finish(archive, tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out" / "engine" / "lib" / "libvsapi.so").stat().st_mode) == 0o755


def test_a_bomb_is_stopped_at_its_declared_size_while_it_arrives(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    unpacker = StreamUnpacker(tmp_path / "work", LIMIT)
    data = declared_size_lie()
    unpacker.feed(data[:200])

    assert unpacker.stopped == "more bytes than declared"
    assert not list((tmp_path / "work").iterdir()) or (tmp_path / "work" / "1").stat().st_size <= 1000
