"""Kill a real install/rollback process at every filesystem call and check what is left.

Each scenario prepares a template tree once, then for N = 1, 2, ... copies it, runs the
action in a child process (tests/support/crashing.py) that SIGKILLs itself at its N-th
filesystem call, and checks: the live path shows exactly the old or the new contents;
repair() leaves only current and previous and no staging; a further install works. The
loop ends when the child finishes without being killed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
from collections.abc import Mapping
from pathlib import Path

import pytest

from imss_updater.store.install import ComponentStore, staging_root
from tests.support.crashing import read_tree, run_child, write_zip

COMPONENT = "virus_pattern"
LIVE = "lib/pattern/vsapi"
LIMIT = 1 << 20
MAX_CALLS = 1000

ADOPTED = {"lpt$vpn.600": b"factory", "conf/vsapi.ini": b"[old]"}
V1 = {"lpt$vpn.696": b"696" * 100, "conf/vsapi.ini": b"[696]"}
V2 = {"lpt$vpn.697": b"697" * 100, "conf/vsapi.ini": b"[697]", "notes.txt": b"new"}
V3 = {"lpt$vpn.698": b"698"}


def _install(root: Path, archive: Path, version: str) -> None:
    ComponentStore(root, COMPONENT, LIVE).install(archive, version, max_unpacked_bytes=LIMIT)


def _generation_contents(root: Path) -> dict[str, dict[str, bytes]]:
    generations = root / "lib/.generations" / COMPONENT
    if not generations.exists():
        return {}
    return {entry.name: read_tree(entry) for entry in generations.iterdir()}


def _crash_every_step(
    tmp_path: Path,
    template: Path,
    request: Mapping[str, object],
    old: dict[str, bytes],
    new: dict[str, bytes],
    expected_after_repair: dict[str, list[dict[str, dict[str, bytes]]]],
    archive_next: Path,
) -> tuple[int, int]:
    """Run the kill loop; ``expected_after_repair`` maps "old"/"new" (what the live path
    showed after the kill) to the allowed sets of generations repair() leaves. Return the
    number of kills and how many of them left the live path missing (adoption only)."""
    missing = 0
    for kill_at in itertools.count(1):
        assert kill_at < MAX_CALLS, "the child never finished"
        root = tmp_path / f"run-{kill_at}"
        shutil.copytree(template, root, symlinks=True)
        result = run_child({**request, "root": str(root)}, kill_at)
        if result.returncode == 0:
            assert read_tree(root / LIVE) == new
            shutil.rmtree(root)
            return kill_at - 1, missing
        assert result.returncode == -signal.SIGKILL, result.stderr

        live = root / LIVE
        store = ComponentStore(root, COMPONENT, LIVE)
        adoption_window = not os.path.lexists(live) and "0-0" in _generation_contents(root)
        if adoption_window:
            # Only between moving the adopted directory away and linking it back.
            assert _generation_contents(root)["0-0"] == old
            seen = "old"
            missing += 1
        else:
            shown = read_tree(live)
            assert shown in (old, new), f"kill at call {kill_at}: mixed or missing contents"
            seen = "old" if shown == old else "new"
            current = store.state().current
            assert current is not None
            assert read_tree(current.path) == shown

        store.repair()

        assert read_tree(live) == (old if seen == "old" else new), f"kill at call {kill_at}"
        assert _generation_contents(root) in expected_after_repair[seen], f"kill at {kill_at}"
        assert list(staging_root(root).iterdir()) == []
        assert not os.path.lexists(live.parent / f".{live.name}.switch")
        assert store.repair() == []
        state = store.install(archive_next, "1569800", max_unpacked_bytes=LIMIT)
        assert state.current is not None and state.current.version == "1569800"
        assert read_tree(live) == V3
        shutil.rmtree(root)
    raise AssertionError("unreachable")


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, Path]:
    return {
        "v1": write_zip(tmp_path / "v1.zip", V1),
        "v2": write_zip(tmp_path / "v2.zip", V2),
        "v3": write_zip(tmp_path / "v3.zip", V3),
    }


def test_install_killed_at_any_step_leaves_old_or_new_and_repairs(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    # Two generations to start with, so the prune of the oldest is crashed into as well.
    template = tmp_path / "template"
    _install(template, write_zip(tmp_path / "v0.zip", {"lpt$vpn.695": b"695"}), "1569500")
    _install(template, archives["v1"], "1569600")
    request = {"component": COMPONENT, "live_path": LIVE, "action": "install",
               "archive": str(archives["v2"]), "version": "1569700",
               "max_unpacked_bytes": LIMIT}
    expected = {
        "old": [{"1-1569500": {"lpt$vpn.695": b"695"}, "2-1569600": V1}],
        "new": [{"2-1569600": V1, "3-1569700": V2}],
    }

    kills, missing = _crash_every_step(tmp_path, template, request, V1, V2, expected,
                                       archives["v3"])

    assert kills > 20, "the harness must see the install's filesystem calls"
    assert missing == 0


def test_rollback_killed_at_any_step_leaves_old_or_new_and_repairs(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    template = tmp_path / "template"
    _install(template, archives["v1"], "1569600")
    _install(template, archives["v2"], "1569700")
    request = {"component": COMPONENT, "live_path": LIVE, "action": "rollback"}
    expected = {
        "old": [{"1-1569600": V1, "2-1569700": V2}],
        "new": [{"1-1569600": V1}],
    }

    kills, missing = _crash_every_step(tmp_path, template, request, V2, V1, expected,
                                       archives["v3"])

    assert kills > 5
    assert missing == 0


def test_adoption_killed_at_any_step_leaves_old_or_new_and_repairs(
    tmp_path: Path, archives: dict[str, Path]
) -> None:
    template = tmp_path / "template"
    for name, content in ADOPTED.items():
        path = template / LIVE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    request = {"component": COMPONENT, "live_path": LIVE, "action": "install",
               "archive": str(archives["v1"]), "version": "1569600",
               "max_unpacked_bytes": LIMIT}
    expected = {
        # Killed before the move the live path is still the real directory (no
        # generations); after it, the adopted generation 0 is current.
        "old": [{}, {"0-0": ADOPTED}],
        "new": [{"0-0": ADOPTED, "1-1569600": V1}],
    }

    kills, missing = _crash_every_step(tmp_path, template, request, ADOPTED, V1, expected,
                                       archives["v3"])

    assert kills > 20
    # A real directory cannot be swapped for a link atomically with os calls alone: one
    # kill point (between the two renames) leaves it missing, and repair() relinks it.
    assert missing == 1
