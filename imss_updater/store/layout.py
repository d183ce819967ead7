"""Where the store keeps its directories under the install root, opened so that no other
user can redirect them.

``R/lib/.staging`` and ``R/lib/.generations/<component id>`` must be real directories of
root's that nobody else can write. Each operation opens them once, checks them, and works
through their pinned paths (``imss_updater.store.ownership.pinned``): if another user can
write ``R/lib`` or a live path's parent, renaming or swapping an entry there meanwhile
redirects nothing, and a link planted there is never followed.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path, PurePosixPath

from imss_updater.store import ownership

STAGING = ".staging"
GENERATIONS = ".generations"


def staging_root(root: Path) -> Path:
    """Given the install root, return ``R/lib/.staging``, creating it if missing and
    replacing whatever is there if another user could have put it there or can change it (a
    link, a file, a directory not root's), with a log line. Raise OSError if it cannot."""
    with ExitStack() as stack:
        open_staging(stack, root)
    return root / "lib" / STAGING


def generations_root(root: Path) -> Path:
    """Given the install root, return ``R/lib/.generations``."""
    return root / "lib" / GENERATIONS


def _open_lib(stack: ExitStack, root: Path) -> int:
    root.mkdir(parents=True, exist_ok=True)
    descriptor = ownership.open_beneath(root, "lib", create=True)
    assert descriptor is not None  # created when missing
    stack.callback(os.close, descriptor)
    return descriptor


def open_staging(
    stack: ExitStack, root: Path, lib: int | None = None, *, for_children: bool = False
) -> Path:
    """Open ``R/lib/.staging`` as a directory of ours (see staging_root), closed with
    ``stack``; return its pinned path (``for_children``: one the commands this process runs
    can use too), so that swapping ``.staging`` meanwhile redirects nothing."""
    parent = _open_lib(stack, root) if lib is None else lib
    descriptor = ownership.open_private(parent, STAGING, shown=root / "lib" / STAGING,
                                        create=True, replace=True)
    assert descriptor is not None  # created when missing
    stack.callback(os.close, descriptor)
    return ownership.pinned_for_children(descriptor) if for_children else ownership.pinned(descriptor)


class Directories:
    """The directories one operation on one component works in, open until ``close()``:
    ``staging`` at once, the generations and the live path's parent on first use."""

    def __init__(self, root: Path, component_id: str, live: Path) -> None:
        """Open ``R/lib`` and ``R/lib/.staging``. Raise OSError (UntrustedPathError for a
        directory another user controls) if they cannot be opened."""
        self._stack = ExitStack()
        self._root = root
        self._id = component_id
        self._live = live
        try:
            self._lib = _open_lib(self._stack, root)
            self.staging = open_staging(self._stack, root, self._lib)
        except BaseException:
            self._stack.close()
            raise
        self._generations: Path | None = None
        self._live_parent: Path | None = None
        self._shown = {str(self.staging): str(root / "lib" / STAGING)}

    def close(self) -> None:
        self._stack.close()

    def generations(self, *, create: bool) -> Path | None:
        """Return the pinned ``.generations/<id>``, or None if missing and not ``create``.
        Raise UntrustedPathError if it or ``.generations`` is not a directory of root's."""
        if self._generations is None:
            shown = generations_root(self._root)
            parent = ownership.open_private(self._lib, GENERATIONS, shown=shown, create=create,
                                            replace=False)
            if parent is None:
                return None
            self._stack.callback(os.close, parent)
            descriptor = ownership.open_private(parent, self._id, shown=shown / self._id,
                                                create=create, replace=False)
            if descriptor is None:
                return None
            self._stack.callback(os.close, descriptor)
            self._generations = ownership.pinned(descriptor)
            self._shown[str(self._generations)] = str(shown / self._id)
        return self._generations

    def live_parent(self, *, create: bool) -> Path | None:
        """Return the pinned parent of the live path, or None if missing and not ``create``.
        Raise UntrustedPathError for a link on the way in a directory another user can
        write."""
        if self._live_parent is None:
            relative = PurePosixPath(self._live.parent.relative_to(self._root))
            descriptor = ownership.open_beneath(self._root, str(relative), create=create)
            if descriptor is None:
                return None
            self._stack.callback(os.close, descriptor)
            self._live_parent = ownership.pinned(descriptor)
            self._shown[str(self._live_parent)] = str(self._live.parent)
        return self._live_parent

    def show(self, text: str) -> str:
        """Return ``text`` with pinned paths replaced by the paths an administrator knows."""
        for pinned, shown in self._shown.items():
            text = text.replace(pinned, shown)
        return text
