"""What a run tells its caller: each component's report, each outcome, the run's summary,
and the exceptions that end a run or a component."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from imss_updater.i18n import N_, Reason, render
from imss_updater.run.planner import Restarts
from imss_updater.versions import Version, VersionError

Progress = Callable[[str, str, int, int], None]
"""progress(component_id, phase, done, total): phases downloading, verifying, installing,
restarting, done, failed."""


class RunError(Exception):
    """A run could not start at all (settings invalid, lock busy); the message says why."""


class RunCancelled(RunError):
    """The daemon is stopping: the run stopped at a safe point and cleaned up after itself."""

    def __init__(self) -> None:
        super().__init__("the update was interrupted because the updater is stopping")


@dataclass(frozen=True)
class ComponentReport:
    """One component as ``check`` and ``status`` show it."""

    id: str
    name: str
    name_ja: str
    kind: str
    current: str | None
    previous: str | None
    available: str | None  # display text, "0.0" when not offered, None when Unknown
    update_available: bool
    licensed: bool
    enabled: bool
    scheduled: bool
    unsigned: bool
    available_reason: str | None
    checked_at: datetime.datetime | None
    last_success_at: datetime.datetime | None
    stale: bool = False
    authenticated: bool = False  # the available version came from a signed index (SPEC 3.1)
    signed_before: bool = False  # installed from a signed package: unsigned ones are refused

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "name_ja": self.name_ja,
            "kind": self.kind,
            "current": self.current,
            "previous": self.previous,
            "available": self.available,
            "update_available": self.update_available,
            "licensed": self.licensed,
            "enabled": self.enabled,
            "scheduled": self.scheduled,
            "unsigned": self.unsigned,
            "available_reason": self.available_reason,
            "checked_at": iso(self.checked_at),
            "last_success_at": iso(self.last_success_at),
            "stale": self.stale,
            "authenticated": self.authenticated,
            "signed_before": self.signed_before,
        }


@dataclass(frozen=True)
class Outcome:
    component: str
    version: str | None
    ok: bool
    message: str
    reason: str | Reason | None = None  # a Reason renders in each language (str(): English)
    message_ja: str = ""  # ``message`` in Japanese (the CLI's --lang ja), when known

    def message_in(self, language: str) -> str:
        return self.message_ja if language == "ja" and self.message_ja else self.message


@dataclass(frozen=True)
class RunProblem:
    """Why a run as a whole failed: ``step`` is where (settings, check, plan, lock, record,
    run), ``reason`` the one-line cause in English, ``why`` the same as a Reason when it has
    one (rendered per language)."""

    step: str
    reason: str
    why: str | Reason | None = None

    def reason_in(self, language: str) -> str:
        return render(self.why if self.why is not None else self.reason, language)


@dataclass
class RunReport:
    kind: str
    outcomes: list[Outcome] = field(default_factory=list)
    restarts: Restarts = field(default_factory=lambda: Restarts(False, False))
    restart_error: str | Reason | None = None  # a Reason renders in each language
    up_to_date: bool = False
    problem: RunProblem | None = None  # the run failed as a whole (every wanted component)
    skipped: str | None = None  # a scheduled run left to the next one (the lock busy once)

    @property
    def ok(self) -> bool:
        return (self.restart_error is None and self.problem is None
                and all(outcome.ok for outcome in self.outcomes))

    def summary(self) -> str:
        """One line in English: see ``summary_reason``."""
        return str(self.summary_reason())

    def summary_reason(self) -> Reason:
        """One line, in any language: the counts, the first failure's reason, the restart and
        the run's problem (recorded as a Reason, so the console shows it in Japanese too)."""
        if self.up_to_date and not self.outcomes and self.problem is None:
            return Reason(N_("All components are up to date."))
        if self.skipped is not None and not self.outcomes:
            return Reason(N_("skipped: %(reason)s"), {"reason": self.skipped})
        done = sum(1 for outcome in self.outcomes if outcome.ok)
        failed = len(self.outcomes) - done
        text = Reason(N_("%(done)s succeeded, %(failed)s failed"), {"done": done, "failed": failed})
        first = next((outcome for outcome in self.outcomes if not outcome.ok), None)
        if self.problem is not None:
            text = Reason(N_("%(text)s; the update run failed: %(reason)s"),
                          {"text": text, "reason": self.problem.why or self.problem.reason})
        elif first is not None and first.reason:
            text = Reason(N_("%(text)s (%(component)s: %(reason)s)"),
                          {"text": text, "component": first.component, "reason": first.reason})
        if self.restart_error:
            text = Reason(N_("%(text)s; restart failed: %(reason)s"),
                          {"text": text, "reason": self.restart_error})
        return text

    def failure_reason(self, language: str = "en") -> str | None:
        """The one line a command prints on stderr when the run failed (None when it did not):
        the run's problem, else the restart's failure, else the first failed component's."""
        if self.ok:
            return None
        if self.problem is not None:
            return self.problem.reason_in(language)
        if self.restart_error:
            return render(self.restart_error, language)
        failed = [outcome for outcome in self.outcomes if not outcome.ok]
        return failed[0].message_in(language) if failed else self.summary_reason().render(language)

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            "summary": self.summary(),
            "restarted": {"scan": self.restarts.scan, "policy": self.restarts.policy},
            "restart_error": str(self.restart_error) if self.restart_error else None,
            "problem": None if self.problem is None else {"step": self.problem.step,
                                                          "reason": self.problem.reason},
            "results": [
                {
                    "component": outcome.component,
                    "version": outcome.version,
                    "outcome": "success" if outcome.ok else "failure",
                    "message": outcome.message,
                    "reason": str(outcome.reason) if outcome.reason is not None else None,
                }
                for outcome in self.outcomes
            ],
        }


class ComponentFailure(Exception):
    """One component could not be updated; ``reason`` is the one-line cause (a Reason when
    the cause is worded by the updater, rendered per language)."""

    def __init__(self, reason: str | Reason) -> None:
        super().__init__(str(reason))
        self.reason = reason


def iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None



def parse_or_none(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version.parse(text)
    except VersionError:
        return None


def display(raw: str | None) -> str:
    version = parse_or_none(raw)
    return version.display if version else (raw or "none")
