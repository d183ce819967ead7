"""Diagnosis steps as data, the reports made of them, and the recorder every check adds to."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imss_updater.catalog import Component
from imss_updater.run.updater import INDEX_NAME

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class Step:
    """One diagnosis step: ``ok`` True (PASS), False (FAIL) or None (SKIP: an earlier step
    failed). ``hint`` says what to do about a failure (may be empty on PASS)."""

    name: str
    ok: bool | None
    detail: str
    hint: str = ""

    @property
    def result(self) -> str:
        return SKIP if self.ok is None else PASS if self.ok else FAIL


def passed(steps: Sequence[Step]) -> bool:
    """Return True when no step failed (skipped steps do not count: each follows a failure)."""
    return all(step.ok is not False for step in steps)


def to_json(steps: Sequence[Step]) -> dict[str, object]:
    """Given the steps, return ``{"ok": bool, "steps": [{name, result, detail, hint}]}``."""
    return {
        "ok": passed(steps),
        "steps": [
            {"name": step.name, "result": step.result, "detail": step.detail, "hint": step.hint}
            for step in steps
        ],
    }


def to_text(steps: Sequence[Step]) -> str:
    """Given the steps, return the report people read: one line per step, hints indented."""
    lines = []
    for step in steps:
        lines.append(f"{step.result}  {step.name}: {step.detail}")
        if step.hint and step.ok is not True:
            lines.append(f"      -> {step.hint}")
    failures = sum(1 for step in steps if step.ok is False)
    lines.append("all checks passed" if not failures else f"{failures} check(s) failed")
    return "\n".join(lines)


@dataclass
class Source:
    base_url: str
    setting_names: list[str]
    components: list[Component]

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/{INDEX_NAME}"


class Recorder:
    """The steps recorded so far, and what every check needs (root, known addresses, today)."""

    def __init__(self, root: Path, known_addresses: dict[str, str], today: datetime.date) -> None:
        self.root = root
        self.known_addresses = known_addresses
        self.today = today
        self.steps: list[Step] = []
        self._done: dict[str, Step] = {}  # shared steps (a proxy used by two sources) run once

    def add(self, name: str, ok: bool | None, detail: str, hint: str = "") -> Step:
        step = Step(name, ok, detail, hint)
        self.steps.append(step)
        self._done[name] = step
        if ok is False:
            log.info("diagnose: FAIL %s: %s", name, detail)
        return step

    def skip(self, name: str, because: str) -> None:
        self.add(name, None, f"skipped: {because}")

    def shared(self, name: str, check: Callable[[], str | None]) -> str | None:
        """Run a step shared by several sources once; return why later steps are blocked."""
        done = self._done.get(name)
        if done is None:
            return check()
        return None if done.ok else f"{name.split(':')[0]} failed"


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
