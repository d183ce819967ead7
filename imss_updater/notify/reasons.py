"""Delivery results as Reasons (rendered in the reader's language) and the words around them.

A delivery error is decided when the attempt ends and read later, in the CLI's or the
console's language: it is an ``i18n.Reason`` whose English text is what the attempt log has
always said. What a server or a library answered (an SMTP reply, an SNMP error indication,
an OS error) is a parameter, shown as it came.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from imss_updater import i18n
from imss_updater.i18n import N_, Reason, Value
from imss_updater.settings import Problem

# the same msgids as the console's "channel" labels (web/labels.py)
CHANNELS = {"mail": N_("Mail"), "trap": N_("SNMP trap")}
OUTCOMES = {"sent": N_("sent"), "failed": N_("failed"), "retry": N_("retry"), "pending": N_("pending")}


def channel_word(channel: str, language: str) -> str:
    """``mail``/``trap`` as the text outputs say it: as it is in English (the word the
    outputs always had), the channel's label in another language."""
    if language == i18n.DEFAULT_LANGUAGE or channel not in CHANNELS:
        return channel
    return i18n.gettext(language, CHANNELS[channel])


def outcome_word(outcome: str, language: str) -> str:
    """``sent``/``failed``/``retry`` in ``language``."""
    return i18n.gettext(language, OUTCOMES[outcome]) if outcome in OUTCOMES else outcome


def channel_cell(channel: str, language: str) -> str:
    """The channel word padded to the widest one in ``language``, for a column."""
    return cell(channel_word(channel, language), [channel_word(name, language) for name in CHANNELS])


def outcome_cell(outcome: str, language: str) -> str:
    """The outcome word padded to the widest attempt outcome (sent, retry, failed) in ``language``."""
    return cell(outcome_word(outcome, language),
                [outcome_word(name, language) for name in ("sent", "retry", "failed")])


def cell(text: str, column: Sequence[str]) -> str:
    """``text`` padded to the widest of ``column`` in display columns (a Japanese character
    takes two), so that the next column lines up in a terminal."""
    return text + " " * max(0, max(map(_width, column)) - _width(text))


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def problem_reason(problem: Problem) -> Reason:
    """``str(problem)`` (``Section/Name: why``) as a Reason whose English is exactly that;
    the row's reason stays English text when no msgid says it word for word."""
    candidates: list[Reason] = []
    if problem.cause is not None:
        candidates.append(Reason(N_("not accepted, it would leave %(cause)s"),
                                 {"cause": problem_reason(problem.cause)}))
    if problem.key is not None:
        candidates.append(Reason(problem.key, dict(problem.values)))
    if problem.reason is not None:
        candidates.append(problem.reason)
    why: Reason | str = next((reason for reason in candidates if str(reason) == problem.why), problem.why)
    return Reason(N_("%(row)s: %(why)s"), {"row": f"{problem.section}/{problem.name}", "why": why})


def joined(parts: Sequence[Reason | str]) -> Reason | str:
    """``parts`` separated by "; " (in English as ``"; ".join``), each in the reader's language."""
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return Reason(N_("%(first)s; %(rest)s"), {"first": parts[0], "rest": joined(parts[1:])})


def problems_reason(problems: Sequence[Problem]) -> Reason | str:
    """The problems of a channel's rows, "; "-separated (``Section/Name: why; ...``)."""
    return joined([problem_reason(problem) for problem in problems])


def masked(reason: Reason, secrets: Sequence[str]) -> Reason:
    """``reason`` with each secret in its parameters (a server's answer quoting a password,
    say) replaced by ``***``, in nested Reasons too."""
    def hide(value: Value | Reason) -> Value | Reason:
        if isinstance(value, Reason):
            return masked(value, secrets)
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, "***")
        return value

    return Reason(reason.msgid, {name: hide(value) for name, value in reason.params.items()})


def shown(reason: Reason | None, language: str) -> str | None:
    """``reason`` in ``language`` (None stays None)."""
    return reason.render(language) if reason is not None else None
