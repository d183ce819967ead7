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

from imss_updater.i18n import N_, Reason

MAX_MEMBERS = 10_000
MAX_COMPRESSION_RATIO = 200  # unpacked : packed, per member and for the whole archive
RATIO_FLOOR = 1 << 20  # below this many unpacked bytes a high ratio is harmless (text, zeros)
_CHUNK = 1024 * 1024


class ZipBombError(Exception):
    """The archive is refused; ``why`` is one line saying why (a Reason when worded here),
    ``reason`` the same in English."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)


def check_declared_sizes(infos: list[zipfile.ZipInfo], archive_size: int, limit: int) -> None:
    """Given a zip's members as its directory declares them and the archive's size, return
    if unpacking them is reasonable. Raise ZipBombError saying why not."""
    if len(infos) > MAX_MEMBERS:
        raise ZipBombError(Reason(N_("zip bomb refused: %(count)s members, over the limit of %(limit)s"),
                                  {"count": len(infos), "limit": MAX_MEMBERS}))
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise ZipBombError(Reason(N_("unpacked size %(size)s bytes exceeds the limit of %(limit)s bytes"),
                                  {"size": total, "limit": limit}))
    for info in infos:
        packed = max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_COMPRESSION_RATIO * packed:
            raise ZipBombError(Reason(
                N_("zip bomb refused: member %(member)s would unpack %(ratio)s:1 "
                   "(%(packed)s -> %(unpacked)s bytes), over %(limit)s:1"),
                {"member": info.filename, "ratio": info.file_size // packed,
                 "packed": info.compress_size, "unpacked": info.file_size,
                 "limit": MAX_COMPRESSION_RATIO}))
    packed = max(archive_size, 1)
    if total > RATIO_FLOOR and total > MAX_COMPRESSION_RATIO * packed:
        raise ZipBombError(Reason(
            N_("zip bomb refused: the archive would unpack %(ratio)s:1 "
               "(%(packed)s -> %(unpacked)s bytes), over %(limit)s:1"),
            {"ratio": total // packed, "packed": archive_size, "unpacked": total,
             "limit": MAX_COMPRESSION_RATIO}))


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
                raise ZipBombError(Reason(
                    N_("zip bomb refused: member %(member)s unpacks to more than its declared "
                       "%(size)s bytes"), {"member": info.filename, "size": info.file_size}))
            if self.written > self.limit:
                raise ZipBombError(Reason(
                    N_("zip bomb refused: unpacking wrote more than the limit of %(limit)s bytes"),
                    {"limit": self.limit}))
            output.write(chunk)
