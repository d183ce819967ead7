"""Unpack a zip while it downloads, then accept the result only if the classic unpack
(``store.unpack``, driven by the central directory) would have written exactly the same.

A zip's central directory comes last, so while the bytes arrive only the local headers are
known. ``StreamUnpacker.feed`` follows them: each plain member (stored or deflated, sizes in
its local header, not encrypted, no data descriptor, no zip64) is written to a provisional
file named by its position in a private work directory — never by its name, which is not
trusted yet — with its CRC and its real size counted (the zip-bomb budget stops it at once),
and synced as it goes. Anything else, a prefix before the first header, or a disk error, and
it stops streaming; the classic unpack then runs after the download, as before.

``finish`` runs once the package verified, on the complete archive: the same central
directory checks as the classic unpack (``checked_members``: declared sizes, member count,
ratios, safe names and types), then every member must match what was streamed (same order,
offset, name, flags, method, sizes, CRC) and the directory must start right after the last
member. Only then are the provisional files linked under their names (never replacing one)
and given their modes; otherwise the classic unpack runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from imss_updater.store import zipbomb
from imss_updater.store.unpack import (
    archive_errors,
    checked_members,
    fsync_directories,
    make_directories,
    member_mode,
    unpack,
)

log = logging.getLogger(__name__)

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # local file header, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
_TAIL_MAGICS = (b"PK\x01\x02", b"PK\x05\x06")  # central directory, end of central directory
_SYNC_EVERY = 64 << 20  # write back a large member while the download goes on
_INFLATE_STEP = 1 << 20  # inflated bytes per step, so a bomb never sits in memory
_PROVISIONAL_MODE = 0o644
_NOTHING = memoryview(b"")


@dataclass
class _Streamed:
    offset: int
    name: str
    flags: int
    method: int
    crc: int
    packed: int
    size: int
    computed_crc: int = 0
    written: int = 0


class StreamUnpacker:
    """One archive's streaming unpack into ``work`` (an empty private directory)."""

    def __init__(self, work: Path, max_unpacked_bytes: int) -> None:
        self._work = work
        self._budget = zipbomb.UnpackBudget(max_unpacked_bytes)
        self._buffer = bytearray()
        self._offset = 0  # archive offset of the first byte in _buffer
        self._members: list[_Streamed] = []
        self._current: _Streamed | None = None
        self._left = 0  # packed bytes of the current member still to come
        self._output: int | None = None
        self._inflater: zlib._Decompress | None = None
        self._unsynced = 0
        self._declared = 0  # unpacked bytes the local headers declare so far
        self._central_offset: int | None = None
        self.stopped: str | None = None  # why streaming stopped, if it did

    # -- while the bytes arrive (one thread) -----------------------------------

    def feed(self, chunk: bytes) -> None:
        """Take the archive's next bytes."""
        if self.stopped is not None or self._central_offset is not None:
            return
        try:
            self._feed(memoryview(chunk))
        except (OSError, zlib.error, zipbomb.ZipBombError, UnicodeDecodeError) as error:
            self.stop(str(getattr(error, "reason", error)))

    def _feed(self, data: memoryview) -> None:
        while data and self.stopped is None and self._central_offset is None:
            if self._current is not None:
                taken = min(len(data), self._left)
                self._offset += taken
                self._member_bytes(data[:taken])
                data = data[taken:]
            else:
                self._buffer += data
                data = self._header()

    def _header(self) -> memoryview:
        """Parse a local header at the start of the buffer; return the bytes after it (the
        member's data), or nothing when more bytes are needed or streaming ended."""
        if len(self._buffer) < 4:
            return _NOTHING
        magic = bytes(self._buffer[:4])
        if magic in _TAIL_MAGICS:
            self._central_offset = self._offset
            self._buffer.clear()
            return _NOTHING
        if magic != _LOCAL_MAGIC:
            self.stop("no local header where one should start")
            return _NOTHING
        if len(self._buffer) < _LOCAL.size:
            return _NOTHING
        (_magic, _version, flags, method, _time, _date, crc, packed, size, name_length,
         extra_length) = _LOCAL.unpack_from(self._buffer)
        header_length = _LOCAL.size + name_length + extra_length
        if len(self._buffer) < header_length:
            return _NOTHING
        if flags & 0x1 or flags & 0x8 or method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            self.stop(f"a member needs the central directory (flags {flags:#x}, method {method})")
            return _NOTHING
        if 0xFFFFFFFF in (packed, size):
            self.stop("a zip64 member")
            return _NOTHING
        self._declared += size
        if (len(self._members) >= zipbomb.MAX_MEMBERS or self._declared > self._budget.limit
                or (size > zipbomb.RATIO_FLOOR and size > zipbomb.MAX_COMPRESSION_RATIO * max(packed, 1))):
            self.stop("the declared sizes are refused (the classic unpack says why)")
            return _NOTHING
        raw_name = bytes(self._buffer[_LOCAL.size:_LOCAL.size + name_length])
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        member = _Streamed(self._offset, name, flags, method, crc, packed, size)
        self._members.append(member)
        rest = memoryview(bytes(self._buffer[header_length:]))
        self._offset += header_length
        self._buffer.clear()
        self._begin(member)
        return rest

    def _begin(self, member: _Streamed) -> None:
        self._current = member
        self._left = member.packed
        self._inflater = zlib.decompressobj(-15) if member.method == zipfile.ZIP_DEFLATED else None
        if not member.name.endswith("/"):  # a directory entry: its data is ignored, as zipfile does
            path = self._work / str(len(self._members))
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            self._output = os.open(path, flags, _PROVISIONAL_MODE)
            os.fchmod(self._output, _PROVISIONAL_MODE)
        if self._left == 0:
            self._end_member()

    def _member_bytes(self, data: memoryview) -> None:
        assert self._current is not None
        self._left -= len(data)
        if self._inflater is None:
            self._write(data)
        else:
            pending = bytes(data)
            while pending:
                self._write(memoryview(self._inflater.decompress(pending, _INFLATE_STEP)))
                pending = self._inflater.unconsumed_tail
        if self._left == 0:
            self._end_member()

    def _write(self, data: memoryview) -> None:
        member = self._current
        assert member is not None
        if not data:
            return
        member.written += len(data)
        self._budget.written += len(data)
        if member.written > member.size or self._budget.written > self._budget.limit:
            raise zipbomb.ZipBombError("more bytes than declared")
        member.computed_crc = zlib.crc32(data, member.computed_crc)
        if self._output is None:
            return
        view = data
        while view:
            view = view[os.write(self._output, view):]
        self._unsynced += len(data)
        if self._unsynced >= _SYNC_EVERY:
            os.fdatasync(self._output)
            self._unsynced = 0

    def _end_member(self) -> None:
        member = self._current
        assert member is not None
        if self._inflater is not None:
            if not self._inflater.eof or self._inflater.unused_data:
                raise zipbomb.ZipBombError("the deflate stream does not end with the member")
            self._inflater = None
        if member.written != member.size or member.computed_crc != member.crc:
            raise zipbomb.ZipBombError("size or CRC differs from the local header")
        self._close_output(sync=True)
        self._unsynced = 0
        self._current = None

    def _close_output(self, *, sync: bool) -> None:
        if self._output is not None:
            descriptor, self._output = self._output, None
            try:
                if sync:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def stop(self, why: str) -> None:
        """Stop streaming: the classic unpack will run after the download."""
        self.stopped = why
        self._buffer.clear()
        self._inflater = None
        with contextlib.suppress(OSError):
            self._close_output(sync=False)
        log.debug("streaming unpack stopped: %s; unpacking after the download", why)

    # -- once the package verified ----------------------------------------------

    def finish(self, archive: Path, destination: Path) -> bool:
        """Given the whole archive and the empty directory to unpack into, fill it; return
        True if the streamed files were used, False if the classic unpack ran. Raise
        ArchiveError as the classic unpack does; let OSError through."""
        limit = self._budget.limit
        if self.stopped is None and self._central_offset is None:
            self.stop("the archive ended inside a member")
        if self.stopped is None:
            with archive_errors(archive), zipfile.ZipFile(archive) as bundle:
                members = checked_members(bundle, archive, limit)
                mismatch = self._mismatch(bundle, [info for info, _parts in members])
                if mismatch is None:
                    self._place(members, destination)
                    return True
                self.stop(mismatch)
        self.close()
        unpack(archive, destination, limit)
        return False

    def _mismatch(self, bundle: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> str | None:
        if len(infos) != len(self._members):
            return "the central directory lists other members than the local headers"
        if bundle.start_dir != self._central_offset:
            return "bytes between the last member and the central directory"
        for info, member in zip(infos, self._members, strict=True):
            if (info.header_offset, info.filename, info.flag_bits, info.compress_type, info.CRC,
                    info.compress_size, info.file_size) != (
                    member.offset, member.name, member.flags, member.method, member.crc,
                    member.packed, member.size):
                return f"member {info.filename} differs from its local header"
        return None

    def _place(self, members: list[tuple[zipfile.ZipInfo, tuple[str, ...]]], destination: Path) -> None:
        directories = {destination}
        for position, (info, parts) in enumerate(members, start=1):
            if not parts:
                continue
            if info.is_dir():
                make_directories(destination, parts, directories)
                continue
            make_directories(destination, parts[:-1], directories)
            target = destination.joinpath(*parts)
            provisional = self._work / str(position)
            try:
                os.link(provisional, target, follow_symlinks=False)  # never replaces a member
            except FileExistsError as error:  # named by the member, as the classic unpack does
                raise FileExistsError(error.errno, error.strerror, str(target)) from None
            os.unlink(provisional)
            mode = member_mode(info)
            if mode != _PROVISIONAL_MODE:
                descriptor = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.fchmod(descriptor, mode)
                    os.fsync(descriptor)
                finally:
                    os.close(descriptor)
        fsync_directories(directories)

    def close(self) -> None:
        """Drop the provisional files (the work directory stays for its owner to remove)."""
        if self.stopped is None:
            self.stopped = "closed"
        with contextlib.suppress(OSError):
            self._close_output(sync=False)
        for entry in os.scandir(self._work):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
