"""Zip bombs: refuse an archive no genuine component package looks like, before and while
it is unpacked (``store.install`` unpacks through here).

Up front, on the sizes the zip's directory declares: too many members, more bytes in all
than the limit (``Update/MaxDownloadMB`` x the unpack factor), or a compression ratio per
member or for the whole archive that only a bomb has. While unpacking, on the bytes really
written, because declared sizes can lie: a member that unpacks to more than it declared,
or an archive that writes more than the limit, is stopped at once.
"""

from __future__ import annotations

import zipfile
from typing import IO

MAX_MEMBERS = 10_000
MAX_COMPRESSION_RATIO = 200  # unpacked : packed, per member and for the whole archive
RATIO_FLOOR = 1 << 20  # below this many unpacked bytes a high ratio is harmless (text, zeros)
_CHUNK = 1024 * 1024


class ZipBombError(Exception):
    """The archive is refused; ``reason`` is one line saying why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_declared_sizes(infos: list[zipfile.ZipInfo], archive_size: int, limit: int) -> None:
    """Given a zip's members as its directory declares them and the archive's size, return
    if unpacking them is reasonable. Raise ZipBombError saying why not."""
    if len(infos) > MAX_MEMBERS:
        raise ZipBombError(f"zip bomb refused: {len(infos)} members, over the limit of {MAX_MEMBERS}")
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise ZipBombError(f"unpacked size {total} bytes exceeds the limit of {limit} bytes")
    for info in infos:
        packed = max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * packed:
            raise ZipBombError(
                f"zip bomb refused: member {info.filename} would unpack {info.file_size // packed}:1 "
                f"({info.compress_size} -> {info.file_size} bytes), over {MAX_COMPRESSION_RATIO}:1"
            )
    packed = max(archive_size, 1)
    if total > RATIO_FLOOR and total > MAX_COMPRESSION_RATIO * packed:
        raise ZipBombError(
            f"zip bomb refused: the archive would unpack {total // packed}:1 "
            f"({archive_size} -> {total} bytes), over {MAX_COMPRESSION_RATIO}:1"
        )


class UnpackBudget:
    """Counts the bytes really written while one archive is unpacked."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.written = 0

    def copy(self, source: IO[bytes], output: IO[bytes], info: zipfile.ZipInfo) -> None:
        """Copy one member from ``source`` to ``output``. Raise ZipBombError as soon as it
        exceeds its declared size or the archive exceeds the limit (zipfile itself stops at
        the declared size and then fails on the CRC; this holds for any reader)."""
        member_bytes = 0
        while chunk := source.read(_CHUNK):
            member_bytes += len(chunk)
            self.written += len(chunk)
            if member_bytes > info.file_size:
                raise ZipBombError(
                    f"zip bomb refused: member {info.filename} unpacks to more than its declared "
                    f"{info.file_size} bytes"
                )
            if self.written > self.limit:
                raise ZipBombError(
                    f"zip bomb refused: unpacking wrote more than the limit of {self.limit} bytes"
                )
            output.write(chunk)
