"""Notification texts: token substitution (pure) and the default templates as data.

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

TOKEN = re.compile(r"%([A-Z_]+)%")
PER_ITEM = frozenset({"COMPONENT", "VERSION", "RESULT", "REASON"})

RESULT_WORDS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "success": "updated successfully",
        "failure": "update failed",
        "stale": "not updated for too long",
        "fresh": "updated again",
        "test": "test",
        "recovered": "updated successfully again",
        "down": "down",
        "up": "up again",
    },
    "ja": {
        "success": "正常にアップデートしました",
        "failure": "アップデートに失敗しました",
        "stale": "長期間アップデートされていません",
        "fresh": "再びアップデートされました",
        "test": "テスト",
        "recovered": "再び正常にアップデートできました",
        "down": "停止",
        "up": "復帰",
    },
}
UNKNOWN_VERSION: Mapping[str, str] = {"en": "Unknown", "ja": "不明"}

# English defaults: the same texts as the rows of sql/defaults.sql, used when a row is empty.
_EN: dict[tuple[str, str], tuple[str, str]] = {
    ("pattern", "success"): (
        "[%HOST%] Pattern file update succeeded",
        "Scheduled pattern file update on %HOST% at %DATE% from %SOURCE%:\n"
        "%COMPONENT% %VERSION%: %RESULT%",
    ),
    ("pattern", "failure"): (
        "[%HOST%] Pattern file update FAILED",
        "Scheduled pattern file update on %HOST% at %DATE% from %SOURCE% failed:\n"
        "%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%",
    ),
    ("engine", "success"): (
        "[%HOST%] Scan engine update succeeded",
        "Scheduled scan engine update on %HOST% at %DATE% from %SOURCE%:\n"
        "%COMPONENT% %VERSION%: %RESULT%",
    ),
    ("engine", "failure"): (
        "[%HOST%] Scan engine update FAILED",
        "Scheduled scan engine update on %HOST% at %DATE% from %SOURCE% failed:\n"
        "%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%",
    ),
    ("spam", "success"): (
        "[%HOST%] Antispam component update succeeded",
        "Scheduled antispam component update on %HOST% at %DATE% from %SOURCE%:\n"
        "%COMPONENT% %VERSION%: %RESULT%",
    ),
    ("spam", "failure"): (
        "[%HOST%] Antispam component update FAILED",
        "Scheduled antispam component update on %HOST% at %DATE% from %SOURCE% failed:\n"
        "%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%",
    ),
}

_JA_NOUNS = {
    "pattern": "パターンファイル",
    "engine": "検索エンジン",
    "spam": "スパムメール対策コンポーネント",
}
_JA: dict[tuple[str, str], tuple[str, str]] = {}
for _group, _noun in _JA_NOUNS.items():
    _JA[(_group, "success")] = (
        f"[%HOST%] {_noun}のアップデートに成功しました",
        f"%DATE%、%HOST%の予約アップデートで{_noun}をアップデートしました"
        "（アップデート元: %SOURCE%）。\n%COMPONENT% %VERSION%: %RESULT%",
    )
    _JA[(_group, "failure")] = (
        f"[%HOST%] {_noun}のアップデートに失敗しました",
        f"%DATE%、%HOST%の予約アップデートで{_noun}のアップデートに失敗しました"
        "（アップデート元: %SOURCE%）。\n%COMPONENT% %VERSION%: %RESULT%\n理由: %REASON%",
    )

DEFAULTS: Mapping[str, Mapping[tuple[str, str], tuple[str, str]]] = {"en": _EN, "ja": _JA}

# The "recovered" message (Notification/NotifyRecovery): the first success of a group after
# a notified failure. It has no rows of its own; %REASON% is the failure last notified.
_EN_NOUNS = {"pattern": "Pattern file", "engine": "Scan engine", "spam": "Antispam component"}
RECOVERED: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "en": {
        group: (
            f"[%HOST%] {noun} update recovered",
            f"Scheduled {noun.lower()} update on %HOST% at %DATE% from %SOURCE% succeeded"
            " after a failure that was notified:\n%COMPONENT% %VERSION%: %RESULT%\n"
            "Last failure: %REASON%",
        )
        for group, noun in _EN_NOUNS.items()
    },
    "ja": {
        group: (
            f"[%HOST%] {noun}のアップデートが復旧しました",
            f"%DATE%、%HOST%の予約アップデートで、通知済みの失敗の後、{noun}を再びアップデートできました"
            "（アップデート元: %SOURCE%）。\n%COMPONENT% %VERSION%: %RESULT%\n前回の失敗: %REASON%",
        )
        for group, noun in _JA_NOUNS.items()
    },
}

# Built-in texts for events that have no settings rows: stale components, fleet nodes going
# down or coming back (sent by the leader, %HOST%; the node is %COMPONENT%, its last
# heartbeat %REASON%) and test messages.
BUILT_IN: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "en": {
        "stale": (
            "[%HOST%] %COMPONENT% is out of date",
            "%COMPONENT% %VERSION% on %HOST%: %RESULT%\nReason: %REASON%\nDetected at %DATE%.",
        ),
        "fresh": (
            "[%HOST%] %COMPONENT% is up to date again",
            "%COMPONENT% %VERSION% on %HOST%: %RESULT%\nDetected at %DATE%.",
        ),
        "down": (
            "[%HOST%] Fleet node %COMPONENT% is down",
            "Fleet node %COMPONENT% has sent no heartbeat since %REASON%: its updater is not"
            " running or cannot reach the database.\nDetected by the leader %HOST% at %DATE%.",
        ),
        "up": (
            "[%HOST%] Fleet node %COMPONENT% is up again",
            "Fleet node %COMPONENT% sends heartbeats again (last heartbeat %REASON%).\n"
            "Detected by the leader %HOST% at %DATE%.",
        ),
        "test": (
            "[%HOST%] imss-updater test message",
            "This is a test message from imss-updater on %HOST% at %DATE%.\n"
            "Update notifications will reach you the same way.",
        ),
    },
    "ja": {
        "stale": (
            "[%HOST%] %COMPONENT%が最新ではありません",
            "%HOST%の%COMPONENT% %VERSION%: %RESULT%\n理由: %REASON%\n検出日時: %DATE%",
        ),
        "fresh": (
            "[%HOST%] %COMPONENT%が最新の状態に戻りました",
            "%HOST%の%COMPONENT% %VERSION%: %RESULT%\n検出日時: %DATE%",
        ),
        "down": (
            "[%HOST%] フリートのノード%COMPONENT%が停止しています",
            "フリートのノード%COMPONENT%から%REASON%以降ハートビートがありません。"
            "アップデーターが停止しているか、データベースに接続できません。\n"
            "検出したリーダー: %HOST%、検出日時: %DATE%",
        ),
        "up": (
            "[%HOST%] フリートのノード%COMPONENT%が復帰しました",
            "フリートのノード%COMPONENT%から再びハートビートが届いています"
            "（最新のハートビート: %REASON%）。\n"
            "検出したリーダー: %HOST%、検出日時: %DATE%",
        ),
        "test": (
            "[%HOST%] imss-updater テストメッセージ",
            "%HOST%のimss-updaterから%DATE%に送信したテストメッセージです。\n"
            "アップデートの通知も同じ経路で届きます。",
        ),
    },
}


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
    return DEFAULTS.get(language, _EN)


def recovered_templates(language: str, group: str) -> tuple[str, str]:
    """Given "en" or "ja" and an event group, return the (subject, message) of its
    "recovered" message."""
    return RECOVERED.get(language, RECOVERED["en"])[group]


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
    words = RESULT_WORDS.get(language, RESULT_WORDS["en"])
    return {
        "COMPONENT": item.name,
        "VERSION": item.version or UNKNOWN_VERSION.get(language, "Unknown"),
        "RESULT": words.get(item.outcome, item.outcome),
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
