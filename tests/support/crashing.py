"""Crash harness for the install store, plus small zip/tree helpers the install tests share.

``python -m tests.support.crashing '<json request>'`` runs one ``install`` or ``rollback``
of ``imss_updater.store.install.ComponentStore`` in this process after wrapping the filesystem
calls of ``os`` and ``shutil`` so that call number ``kill_at`` SIGKILLs the process before
it happens. Nothing in the production code knows about this: the wrapping replaces module
attributes, which every call site looks up at call time.

Exit status: 0 when the action finished (stdout: ``{"calls": <count>}``), 3 when it raised
InstallError (stdout: the reason), -SIGKILL when killed.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]

# Every call that changes the disk or the descriptors used to change it. os.* wrappers also
# catch the calls that shutil.rmtree, tempfile and pathlib make internally.
_OS_CALLS = (
    "replace", "rename", "symlink", "fsync", "unlink", "remove", "rmdir", "mkdir",
    "open", "close", "write", "pwrite", "ftruncate", "chmod", "fchmod",
)
_SHUTIL_CALLS = ("rmtree", "copyfileobj")


def write_zip(path: Path, files: Mapping[str, bytes]) -> Path:
    """Given a path and {member name: content}, write a deflated zip there; return the path."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, content in files.items():
            bundle.writestr(name, content)
    return path


def read_tree(directory: Path) -> dict[str, bytes]:
    """Given a directory (links followed at the top), return {relative file path: content}."""
    found = {}
    for path in sorted(Path(os.path.realpath(directory)).rglob("*")):
        if path.is_file():
            found[path.relative_to(os.path.realpath(directory)).as_posix()] = path.read_bytes()
    return found


def run_child(request: Mapping[str, Any], kill_at: int) -> subprocess.CompletedProcess[str]:
    """Run the harness in a child Python process that kills itself at call ``kill_at``."""
    return subprocess.run(
        [sys.executable, "-m", "tests.support.crashing",
         json.dumps({**request, "kill_at": kill_at})],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _arm(kill_at: int) -> Callable[[], int]:
    count = 0

    def wrap(module: Any, name: str) -> None:
        original = getattr(module, name)

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal count
            count += 1
            if count == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        setattr(module, name, counted)

    for name in _OS_CALLS:
        wrap(os, name)
    for name in _SHUTIL_CALLS:
        wrap(shutil, name)
    return lambda: count


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    from imss_updater.store.install import ComponentStore, InstallError

    store = ComponentStore(Path(request["root"]), request["component"], request["live_path"])
    calls = _arm(int(request["kill_at"]))
    try:
        if request["action"] == "install":
            store.install(Path(request["archive"]), request["version"],
                          max_unpacked_bytes=int(request["max_unpacked_bytes"]))
        elif request["action"] == "rollback":
            store.rollback()
        else:
            raise SystemExit(f"unknown action {request['action']!r}")
    except InstallError as error:
        print(error.reason)
        return 3
    print(json.dumps({"calls": calls()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
