"""Install a component crash-safely, keeping exactly one previous generation to roll back to.

Layout under the install root ``R`` (one filesystem, so every rename is atomic):

- ``R/lib/.generations/<component id>/<seq>-<version>/`` — complete, read-only-by-convention
  copies of a component. A directory with such a name exists only once it is complete: it is
  born by renaming a fully written and fsynced staging directory, and it dies by being
  renamed into staging before it is deleted.
- ``R/lib/.staging/`` — unpacking and deletion happen here; everything in it is garbage
  once no operation is running.
- the component's live path (``Component.live_path``, e.g. ``lib/pattern/vsapi``) — a
  relative symbolic link to the current generation, switched with ``os.replace``.

The rules that make any crash recoverable: *current* is the live link's target;
*previous* is the generation with the highest seq below current; every other generation
(higher seq than current: an interrupted install or a rolled-back generation; lower than
previous) and every staging entry is garbage that ``repair()`` removes. Seq 0 is reserved
for a pre-existing real directory adopted on the first install.

Callers hold the download lock (``imss_updater.store.lock``) around every mutating call; the
store itself does no locking.

Another user may be able to write ``R/lib`` or a live path's parent: every change is made
in the directories as opened and checked by ``imss_updater.store.layout``, so no link that
user plants is ever followed.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path

from imss_updater.i18n import N_, Reason
from imss_updater.store.generations import ADOPTED_SEQ, ADOPTED_VERSION, remove_tree
from imss_updater.store.generations import Generation as Generation  # callers use install's
from imss_updater.store.generations import InstalledState as InstalledState
from imss_updater.store.layout import open_staging
from imss_updater.store.layout import staging_root as staging_root  # callers use install's
from imss_updater.store.repair import RepairMixin
from imss_updater.store.unpack import ArchiveError, fsync_directory, unpack

log = logging.getLogger(__name__)

_VERSION_PATTERN = re.compile(r"[0-9]+(?:\.[0-9]+)*\Z")


class InstallError(Exception):
    """An install or rollback failed; ``why`` is one line an administrator can act on (a
    Reason when the updater worded it), ``reason`` the same in English."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)


class ComponentStore(RepairMixin):
    """The generations of one component under one install root."""

    # ----------------------------------------------------------------- changing

    def install(
        self, archive: Path, version: str, *, max_unpacked_bytes: int,
        fill: Callable[[Path], None] | None = None,
    ) -> InstalledState:
        """Given a zip archive and its version, make it the current generation and keep the
        one before it as previous; return the new state.

        With ``fill``, ``fill(staging)`` makes the new generation's files in the empty
        staging directory instead of unpacking ``archive`` there (the download pipeline
        streams into it, and returns only once the package verified); whatever it raises
        goes through, after the same cleanup as a failed unpack.

        Raise InstallError if the version is malformed, the archive is not a sound zip, a
        member is unsafe (absolute, ``..``, symbolic link, device file), the unpacked size
        exceeds ``max_unpacked_bytes``, or the disk fails; the current generation is then
        untouched and no staging is left.
        """
        if not _VERSION_PATTERN.match(version):
            raise InstallError(f"invalid version {version!r}: digits and dots only")
        try:
            with self._directories():
                return self._install(archive, version, max_unpacked_bytes, fill)
        except OSError as error:  # opening or closing the directories
            raise InstallError(self._reason(error, "preparing the install")) from error

    def _install(
        self, archive: Path, version: str, max_unpacked_bytes: int,
        fill: Callable[[Path], None] | None,
    ) -> InstalledState:
        assert self._opened is not None
        try:
            self._repair()
            self._adopt_if_needed()
            before = self._current()
            staging = Path(tempfile.mkdtemp(prefix=f"{self._id}.unpack-",
                                            dir=self._opened.staging))
        except OSError as error:
            raise InstallError(self._reason(error, "preparing the install")) from error
        generation: Generation | None = None
        doing = "unpacking"
        try:
            # mkdtemp makes it 0700; the scan service, maybe another user, reads it.
            os.chmod(staging, 0o755)  # noqa: S103
            try:
                if fill is None:
                    unpack(archive, staging, max_unpacked_bytes)
                else:
                    fill(staging)
            except ArchiveError as error:
                raise InstallError(error.why) from error
            doing = "installing"
            generation = self._commit(staging, version)
            self._switch(generation)
        except BaseException as error:  # cleaned up whatever failed; OSError gets its reason
            self._abandon(staging, generation, before)
            if isinstance(error, OSError):
                raise InstallError(self._reason(error, doing)) from error
            raise
        log.info("%s: installed version %s as generation %s", self._id, version,
                 generation.path.name)
        self._prune(generation)
        return self.state()

    def rollback(self) -> InstalledState:
        """Make the previous generation current and delete the one rolled away from; return
        the new state. Raise InstallError if there is no previous generation or the disk
        fails."""
        try:
            with self._directories():
                self._repair()
                before = self.state()
                if before.current is None or before.previous is None:
                    raise InstallError(Reason(N_("no previous generation to roll back to")))
                self._switch(before.previous)
                log.info("%s: rolled back from generation %s to %s", self._id,
                         before.current.path.name, before.previous.path.name)
                self._discard(before.current.path.name)
        except OSError as error:
            raise InstallError(self._reason(error, "rolling back")) from error
        return self.state()

    def _adopt_if_needed(self) -> None:
        """Move a pre-existing real live directory into the generations as seq 0."""
        if not (self._live.is_dir() and not self._live.is_symlink()):
            return
        directory = self._generations_dir(create=True)
        live_dir = self._live_dir(create=True)
        assert directory is not None and live_dir is not None  # created when missing
        name = f"{ADOPTED_SEQ}-{ADOPTED_VERSION}"
        adopted = Generation(ADOPTED_SEQ, ADOPTED_VERSION, self._generations / name)
        switch = live_dir / self._switch_name
        if os.path.lexists(switch):
            os.unlink(switch)
        os.symlink(os.path.relpath(adopted.path, self._live.parent), switch)
        # A directory cannot be atomically replaced by a link: between these two renames
        # the live path is missing, and repair() relinks it to the adopted generation.
        os.rename(live_dir / self._live.name, directory / name)
        os.replace(switch, live_dir / self._live.name)
        fsync_directory(directory)
        fsync_directory(live_dir)
        log.info("%s: adopted existing directory %s as generation %s", self._id, self._live,
                 adopted.path.name)

    def _commit(self, staging: Path, version: str) -> Generation:
        """Rename a complete staging directory into the generations under the next seq."""
        directory = self._generations_dir(create=True)
        assert directory is not None  # created when missing
        existing = self._generations_list()
        seq = max([ADOPTED_SEQ, *(generation.seq for generation in existing)]) + 1
        generation = Generation(seq, version, self._generations / f"{seq}-{version}")
        os.rename(staging, directory / generation.path.name)
        fsync_directory(directory)
        fsync_directory(staging.parent)
        return generation

    def _abandon(
        self, staging: Path, generation: Generation | None, before: Generation | None
    ) -> None:
        """Best-effort cleanup after a failed install, back to ``before``; repair() finishes
        what this cannot."""
        try:
            if generation is not None:
                if self._current() == generation and before is not None:
                    self._switch(before)
                if self._current() != generation:
                    self._discard(generation.path.name)
            elif os.path.lexists(staging):
                remove_tree(staging)
            live_dir = self._live_dir(create=False)
            if live_dir is not None and os.path.lexists(live_dir / self._switch_name):
                os.unlink(live_dir / self._switch_name)
        except OSError as error:
            log.warning("%s: could not clean up after the failed install: %s", self._id, error)

    def _prune(self, current: Generation) -> None:
        """Keep only current and previous; a failure here leaves garbage, not a failed
        install, so it is logged and left to the next repair()."""
        keep = [current]
        previous = self._previous_of(current, self._generations_list())
        if previous is not None:
            keep.append(previous)
        try:
            for line in self._remove_generations_except(keep):
                log.debug("prune: %s", line)
        except OSError as error:
            log.warning("%s: could not remove an old generation: %s", self._id, error)


def repair_all(root: Path, components: Iterable[tuple[str, str]]) -> list[str]:
    """Given the install root and (component id, live path) pairs, repair each component and
    remove staging entries that belong to none; return one line per fix. A component whose
    repair fails is reported as a line and the others are still repaired."""
    fixes: list[str] = []
    known: set[str] = set()
    for component_id, live_path in components:
        known.add(component_id)
        try:
            fixes.extend(ComponentStore(root, component_id, live_path).repair())
        except (OSError, ValueError) as error:
            log.error("repair of %s failed: %s", component_id, error)
            fixes.append(f"{component_id}: repair failed: {error}")
    with ExitStack() as stack:
        staging = open_staging(stack, root)
        for entry in os.scandir(staging):
            if entry.name.partition(".")[0] not in known:
                shown = root / "lib" / ".staging" / entry.name
                try:
                    remove_tree(staging / entry.name)
                except OSError as error:
                    fixes.append(f"could not remove leftover staging {shown}: {error}")
                    continue
                fixes.append(f"removed leftover staging {shown}")
                log.info("repair: removed leftover staging %s", shown)
    return fixes


IN_FLIGHT = ("download-*", "*.unpack-*", "*.stream-*")  # a run's download and its streamed unpack


def remove_in_flight(root: Path) -> None:
    """Remove what an unfinished run has in staging (its download and the directories it
    streams into), for a daemon leaving a blocked run behind; the next run's repair() would
    remove them too. Logs what it cannot remove."""
    staging = staging_root(root)
    for pattern in IN_FLIGHT:
        for leftover in staging.glob(pattern):
            try:
                remove_tree(leftover)
            except OSError as error:
                log.warning("cannot remove %s: %s", leftover, error)

