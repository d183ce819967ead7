"""Make one component's generations consistent after any interruption (the rules are in
``imss_updater.store.install``'s docstring): keep current and previous, remove the rest."""

from __future__ import annotations

import errno
import logging
import os
import secrets

from imss_updater.store.generations import ADOPTED_SEQ, Generation, Generations, remove_tree
from imss_updater.store.unpack import fsync_directory

log = logging.getLogger(__name__)


class RepairMixin(Generations):
    """Repair, and the removal of generations it shares with install and rollback."""

    def repair(self) -> list[str]:
        """Make the disk consistent after any interruption; return one line per fix.

        Keeps the live link's target and the previous generation, restores the live link
        of an interrupted adoption, and removes every other generation, this component's
        staging leftovers and a leftover temporary link. Raise OSError if the disk cannot
        be changed.
        """
        with self._directories():
            return self._repair()

    def _repair(self) -> list[str]:
        fixes: list[str] = []
        live_dir = self._live_dir(create=False)
        if live_dir is not None and os.path.lexists(live_dir / self._switch_name):
            os.unlink(live_dir / self._switch_name)
            fixes.append(f"{self._id}: removed leftover temporary link {self._switch_link}")
        fixes.extend(self._remove_staging_leftovers())

        generations = self._generations_list()
        keep: list[Generation] = []
        if self._live.is_dir() and not self._live.is_symlink():
            # A real directory is what the scanner uses; no generation can be current.
            pass
        else:
            current = self._current()
            if current is None:
                adopted = [g for g in generations if g.seq == ADOPTED_SEQ]
                if adopted:
                    # Only an adoption interrupted between moving the directory away and
                    # linking it back leaves the live path without a target.
                    self._switch(adopted[0])
                    fixes.append(
                        f"{self._id}: relinked {self._live} to adopted generation "
                        f"{adopted[0].path.name}"
                    )
                    current = adopted[0]
                elif self._live.is_symlink():
                    fixes.append(f"{self._id}: live link {self._live} points to no generation")
            if current is not None:
                keep.append(current)
                previous = self._previous_of(current, generations)
                if previous is not None:
                    keep.append(previous)
        fixes.extend(self._remove_generations_except(keep))
        for line in fixes:
            log.info("repair: %s", line)
        return fixes

    def _remove_staging_leftovers(self) -> list[str]:
        fixes = []
        with self._directories() as opened:
            for entry in os.scandir(opened.staging):
                if entry.name.partition(".")[0] == self._id:
                    remove_tree(opened.staging / entry.name)
                    shown = self._root / "lib" / ".staging" / entry.name
                    fixes.append(f"{self._id}: removed leftover staging {shown}")
        return fixes

    def _remove_generations_except(self, keep: list[Generation]) -> list[str]:
        """Remove every entry of the generations directory not named in ``keep``."""
        kept = {generation.path.name for generation in keep}
        fixes = []
        directory = self._generations_dir(create=False)
        if directory is None:
            return []
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        for entry in entries:
            if entry.name not in kept:
                self._discard(entry.name)
                fixes.append(f"{self._id}: removed generation {entry.name}")
        return fixes

    def _discard(self, name: str) -> None:
        """Delete generation ``name`` so that no partly deleted generation is ever visible:
        move it into staging first (atomic), then delete it there."""
        with self._directories() as opened:
            directory = self._generations_dir(create=False)
            if directory is None:
                return
            trash = opened.staging / f"{self._id}.trash-{secrets.token_hex(6)}"
            try:
                os.rename(directory / name, trash)
            except OSError as error:
                if error.errno != errno.EXDEV:
                    raise
                remove_tree(directory / name)
                return
            fsync_directory(directory)
            remove_tree(trash)
