"""Diagnosis steps as data, the reports made of them, and the recorder every check adds to."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from imss_updater.catalog import Component
from imss_updater.diagnose.texts import Text
from imss_updater.i18n import N_, Reason, gettext, render
from imss_updater.run.updater import INDEX_NAME

log = logging.getLogger(__name__)

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class Step:
    """One diagnosis step: ``ok`` True (PASS), False (FAIL) or None (SKIP: an earlier step
    failed, or there is nothing to check yet). ``hint`` says what to do about a failure (may
    be empty on PASS). Each text is a Reason from the catalog (or a plain string shown as it
    is), rendered in the report's language by ``texts``; ``name``, ``detail`` and ``hint``
    are the English ones (``--json``, the log, tests)."""

    title: Text
    ok: bool | None
    said: Text
    advice: Text = ""

    @property
    def name(self) -> str:
        return str(self.title)

    @property
    def detail(self) -> str:
        return str(self.said)

    @property
    def hint(self) -> str:
        return str(self.advice)

    @property
    def result(self) -> str:
        return SKIP if self.ok is None else PASS if self.ok else FAIL

    def texts(self, language: str = "en") -> tuple[str, str, str]:
        """Return (name, detail, hint) in ``language``."""
        return render(self.title, language), render(self.said, language), render(self.advice, language)


def passed(steps: Sequence[Step]) -> bool:
    """Return True when no step failed (skipped steps do not count: each follows a failure)."""
    return all(step.ok is not False for step in steps)


def to_json(steps: Sequence[Step], language: str = "en") -> dict[str, object]:
    """Given the steps, return ``{"ok": bool, "steps": [{name, result, detail, hint}]}``
    (texts in ``language``; with ``ja`` each step also keeps its English ``id``, the name)."""
    shown = []
    for step in steps:
        name, detail, hint = step.texts(language)
        entry = {"name": name, "result": step.result, "detail": detail, "hint": hint}
        if language == "ja":
            entry["id"] = step.name
        shown.append(entry)
    return {"ok": passed(steps), "steps": shown}


def to_text(steps: Sequence[Step], language: str = "en") -> str:
    """Given the steps, return the report people read: one line per step, hints indented."""
    lines = []
    for step in steps:
        name, detail, hint = step.texts(language)
        lines.append(f"{step.result}  {name}: {detail}")
        if hint and step.ok is not True:
            lines.append(f"      -> {hint}")
    failures = sum(1 for step in steps if step.ok is False)
    lines.append(gettext(language, N_("%(count)s check(s) failed"), count=failures) if failures
                 else gettext(language, N_("all checks passed")))
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

    def __init__(self, root: Path, known_addresses: dict[str, str], today: datetime.date,
                 steps: list[Step] | None = None) -> None:
        self.root = root
        self.known_addresses = known_addresses
        self.today = today
        # Appended to as each step finishes: a caller that stops waiting still has the steps so far.
        self.steps: list[Step] = steps if steps is not None else []
        self._done: dict[str, Step] = {}  # shared steps (a proxy used by two sources) run once

    def add(self, name: Text, ok: bool | None, detail: Text, hint: Text = "") -> Step:
        step = Step(name, ok, detail, hint)
        self.steps.append(step)
        self._done[step.name] = step
        if ok is False:
            log.info("diagnose: FAIL %s: %s", step.name, step.detail)
        return step

    def skip(self, name: Text, because: Text) -> None:
        self.add(name, None, Reason(N_("skipped: %(because)s"), {"because": because}))

    def done(self, name: Text) -> bool:
        return str(name) in self._done

    def shared(self, name: Text, check: Callable[[], Text | None], failed: Text) -> Text | None:
        """Run a step shared by several sources once; return why later steps are blocked
        (``failed`` when the step already ran and failed)."""
        done = self._done.get(str(name))
        if done is None:
            return check()
        return None if done.ok else failed


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
