"""Notification texts: token substitution (pure) and the default templates (catalog msgids).

Tokens (SPEC section 4): ``%COMPONENT%``, ``%VERSION%``, ``%RESULT%``, ``%REASON%`` (one
value per component) and ``%DATE%``, ``%HOST%``, ``%SOURCE%`` (one per message). In a
message body, each run of consecutive lines that holds a per-component token is repeated
once per component, so a template written for one component lists them all; in a subject
the per-component values are joined. An unknown token such as ``%FOO%`` is left as it is,
visible to whoever reads the message, and never drops the message.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imss_updater.i18n import N_, gettext

TOKEN = re.compile(r"%([A-Z_]+)%")
PER_ITEM = frozenset({"COMPONENT", "VERSION", "RESULT", "REASON"})

# The words for %RESULT% (per outcome) and the default subjects and messages, as msgids of the
# gettext catalog (imss_updater/i18n.py), rendered in Notification/Language.
RESULT_WORDS: Mapping[str, str] = {
    "success": N_("updated successfully"),
    "failure": N_("update failed"),
    "stale": N_("not updated for too long"),
    "fresh": N_("updated again"),
    "test": N_("test"),
    "recovered": N_("updated successfully again"),
    "down": N_("down"),
    "up": N_("up again"),
}
UNKNOWN_VERSION = N_("Unknown")

# English defaults: the same texts as the rows of sql/defaults.sql, used when a row is empty
# (or still holds the English default while Notification/Language asks for another language).
_DEFAULTS: dict[tuple[str, str], tuple[str, str]] = {
    ("pattern", "success"): (
        N_("[%HOST%] Pattern file update succeeded"),
        N_("Scheduled pattern file update on %HOST% at %DATE% from %SOURCE%:\n"
           "%COMPONENT% %VERSION%: %RESULT%"),
    ),
    ("pattern", "failure"): (
        N_("[%HOST%] Pattern file update FAILED"),
        N_("Scheduled pattern file update on %HOST% at %DATE% from %SOURCE% failed:\n"
           "%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%"),
    ),
    ("engine", "success"): (
        N_("[%HOST%] Scan engine update succeeded"),
        N_("Scheduled scan engine update on %HOST% at %DATE% from %SOURCE%:\n"
           "%COMPONENT% %VERSION%: %RESULT%"),
    ),
    ("engine", "failure"): (
        N_("[%HOST%] Scan engine update FAILED"),
        N_("Scheduled scan engine update on %HOST% at %DATE% from %SOURCE% failed:\n"
           "%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%"),
    ),
    ("spam", "success"): (
        N_("[%HOST%] Antispam component update succeeded"),
        N_("Scheduled antispam component update on %HOST% at %DATE% from %SOURCE%:\n"
           "%COMPONENT% %VERSION%: %RESULT%"),
    ),
    ("spam", "failure"): (
        N_("[%HOST%] Antispam component update FAILED"),
        N_("Scheduled antispam component update on %HOST% at %DATE% from %SOURCE% failed:\n"
           "%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%"),
    ),
}

# The "recovered" message (Notification/NotifyRecovery): the first success of a group after
# a notified failure. It has no rows of its own; %REASON% is the failure last notified.
_RECOVERED: dict[str, tuple[str, str]] = {
    "pattern": (
        N_("[%HOST%] Pattern file update recovered"),
        N_("Scheduled pattern file update on %HOST% at %DATE% from %SOURCE% succeeded after a failure"
           " that was notified:\n%COMPONENT% %VERSION%: %RESULT%\nLast failure: %REASON%"),
    ),
    "engine": (
        N_("[%HOST%] Scan engine update recovered"),
        N_("Scheduled scan engine update on %HOST% at %DATE% from %SOURCE% succeeded after a failure"
           " that was notified:\n%COMPONENT% %VERSION%: %RESULT%\nLast failure: %REASON%"),
    ),
    "spam": (
        N_("[%HOST%] Antispam component update recovered"),
        N_("Scheduled antispam component update on %HOST% at %DATE% from %SOURCE% succeeded after a"
           " failure that was notified:\n%COMPONENT% %VERSION%: %RESULT%\nLast failure: %REASON%"),
    ),
}

# Built-in texts for events that have no settings rows: stale components, fleet nodes going
# down or coming back (sent by the leader, %HOST%; the node is %COMPONENT%, its last
# heartbeat %REASON%) and test messages.
_BUILT_IN: dict[str, tuple[str, str]] = {
    "stale": (
        N_("[%HOST%] %COMPONENT% is out of date"),
        N_("%COMPONENT% %VERSION% on %HOST%: %RESULT%\nReason: %REASON%\nDetected at %DATE%."),
    ),
    "fresh": (
        N_("[%HOST%] %COMPONENT% is up to date again"),
        N_("%COMPONENT% %VERSION% on %HOST%: %RESULT%\nDetected at %DATE%."),
    ),
    "down": (
        N_("[%HOST%] Fleet node %COMPONENT% is down"),
        N_("Fleet node %COMPONENT% has sent no heartbeat since %REASON%: its updater is not running"
           " or cannot reach the database.\nDetected by the leader %HOST% at %DATE%."),
    ),
    "up": (
        N_("[%HOST%] Fleet node %COMPONENT% is up again"),
        N_("Fleet node %COMPONENT% sends heartbeats again (last heartbeat %REASON%).\n"
           "Detected by the leader %HOST% at %DATE%."),
    ),
    "test": (
        N_("[%HOST%] imss-updater test message"),
        N_("This is a test message from imss-updater on %HOST% at %DATE%.\n"
           "Update notifications will reach you the same way."),
    ),
}


def _translated(pair: tuple[str, str], language: str) -> tuple[str, str]:
    return gettext(language, pair[0]), gettext(language, pair[1])


def built_in(language: str, event: str) -> tuple[str, str]:
    """Given a language and "stale", "fresh", "down", "up" or "test", return its (subject,
    message)."""
    return _translated(_BUILT_IN[event], language)


def is_english_default(group: str, outcome: str, subject: str, message: str) -> tuple[bool, bool]:
    """Whether a rule's subject and message rows still hold the English defaults."""
    english = _DEFAULTS[(group, outcome)]
    return subject.strip() == english[0], message.strip() == english[1].strip()


@dataclass(frozen=True)
class Item:
    """One component in a message: display name, version (None: unknown), outcome, reason."""

    name: str
    version: str | None
    outcome: str  # success, failure, stale, fresh, test, recovered, down, up
    reason: str | None = None


@dataclass(frozen=True)
class Context:
    items: Sequence[Item]
    time: datetime.datetime
    host: str
    source: str
    language: str = "en"


def default_templates(language: str) -> Mapping[tuple[str, str], tuple[str, str]]:
    """Given "en" or "ja", return (group, outcome) -> (subject, message) defaults."""
    return {key: _translated(pair, language) for key, pair in _DEFAULTS.items()}


def recovered_templates(language: str, group: str) -> tuple[str, str]:
    """Given "en" or "ja" and an event group, return the (subject, message) of its
    "recovered" message."""
    return _translated(_RECOVERED[group], language)


def default_rows(language: str) -> dict[str, str]:
    """Given "en" or "ja", return the ``Notification`` template rows (name -> text), e.g.
    for a command that switches the templates to Japanese."""
    rows: dict[str, str] = {}
    for (group, outcome), (subject, message) in default_templates(language).items():
        prefix = f"{group.capitalize()}Update{outcome.capitalize()}"
        rows[f"{prefix}Subject"] = subject
        rows[f"{prefix}Message"] = message
    return rows


def format_date(moment: datetime.datetime) -> str:
    """Return ``moment`` in local time as ``2026-11-22 03:00:12 +0900``."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def _item_values(item: Item, language: str) -> dict[str, str]:
    word = RESULT_WORDS.get(item.outcome)
    return {
        "COMPONENT": item.name,
        "VERSION": item.version or gettext(language, UNKNOWN_VERSION),
        "RESULT": gettext(language, word) if word else item.outcome,
        "REASON": item.reason or "",
    }


def _substitute(text: str, values: Mapping[str, str]) -> str:
    return TOKEN.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def _message_values(context: Context) -> dict[str, str]:
    return {"DATE": format_date(context.time), "HOST": context.host, "SOURCE": context.source}


def render_subject(template: str, context: Context) -> str:
    """Given a subject template, return one line: per-component values joined with ", "
    (each distinct value once), the others substituted, unknown tokens kept."""
    values = _message_values(context)
    per_item = [_item_values(item, context.language) for item in context.items]
    for token in PER_ITEM:
        joined = list(dict.fromkeys(entry[token] for entry in per_item if entry[token]))
        values[token] = ", ".join(joined)
    return " ".join(_substitute(template, values).split())  # one line, no stray spaces


def render_body(template: str, context: Context) -> str:
    """Given a message template, return the plain-text body: each run of consecutive lines
    holding a per-component token repeated for every component, unknown tokens kept."""
    values = _message_values(context)
    lines = template.replace("\r\n", "\n").split("\n")
    output: list[str] = []
    block: list[str] = []

    def flush() -> None:
        for item in context.items:
            item_values = {**values, **_item_values(item, context.language)}
            output.extend(_substitute(line, item_values).rstrip() for line in block)
        block.clear()

    for line in lines:
        if any(match.group(1) in PER_ITEM for match in TOKEN.finditer(line)):
            block.append(line)
            continue
        if block:
            flush()
        output.append(_substitute(line, values))
    if block:
        flush()
    return "\n".join(output).rstrip() + "\n"
