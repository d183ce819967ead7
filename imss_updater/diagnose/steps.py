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


LANGUAGES = ("en", "ja")

# Japanese step names by the part before the colon ("TCP connect: host:port"). A step that
# carries its own Japanese texts (Step.ja) uses those; the others show an English detail.
NAMES_JA = {
    "database reachable": "データベース接続",
    "settings": "設定",
    "scheduled update": "予約アップデート",
    "components on the schedule": "予約アップデートの対象",
    "stale components": "更新されていないコンポーネント",
    "last check": "最後の確認",
    "available versions": "利用可能なバージョン",
    "licenses": "製品ライセンス",
    "source URLs": "アップデート元",
    "signature trust": "署名の検証",
    "update sources": "アップデート元",
    "name resolution": "名前解決",
    "TCP connect": "TCP 接続",
    "TCP connect to proxy": "プロキシへの TCP 接続",
    "proxy authentication": "プロキシ認証",
    "proxy tunnel": "プロキシのトンネル",
    "TLS handshake": "TLS ハンドシェイク",
    "HTTP status": "HTTP ステータス",
    "parse server.ini": "server.ini の解析",
    "lock file": "ロックファイル",
    "restart command": "再起動コマンド",
    "restart commands": "再起動コマンド",
    "service running": "サービスの稼働",
    "time limit": "制限時間",
}


@dataclass(frozen=True)
class Japanese:
    """A step's detail and hint in Japanese (its name comes from NAMES_JA)."""

    detail: str
    hint: str = ""


@dataclass(frozen=True)
class Step:
    """One diagnosis step: ``ok`` True (PASS), False (FAIL) or None (SKIP: an earlier step
    failed, or there is nothing to check yet). ``hint`` says what to do about a failure (may
    be empty on PASS); ``ja`` holds the same detail and hint in Japanese where written."""

    name: str
    ok: bool | None
    detail: str
    hint: str = ""
    ja: Japanese | None = None

    @property
    def result(self) -> str:
        return SKIP if self.ok is None else PASS if self.ok else FAIL

    def texts(self, language: str = "en") -> tuple[str, str, str]:
        """Return (name, detail, hint) in ``language`` (``en`` or ``ja``); a Japanese
        detail not yet written falls back to the English one."""
        if language != "ja":
            return self.name, self.detail, self.hint
        prefix, colon, rest = self.name.partition(":")
        name = NAMES_JA.get(prefix, prefix) + colon + rest
        if self.ja is not None:
            return name, self.ja.detail, self.ja.hint
        if self.ok is None and self.detail.startswith("skipped: "):
            return name, "スキップ: " + self.detail.removeprefix("skipped: "), self.hint
        return name, self.detail, self.hint


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
    if language == "ja":
        lines.append("すべての確認に合格しました" if not failures else f"{failures} 件の確認が失敗しました")
    else:
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

    def __init__(self, root: Path, known_addresses: dict[str, str], today: datetime.date,
                 steps: list[Step] | None = None) -> None:
        self.root = root
        self.known_addresses = known_addresses
        self.today = today
        # Appended to as each step finishes: a caller that stops waiting still has the steps so far.
        self.steps: list[Step] = steps if steps is not None else []
        self._done: dict[str, Step] = {}  # shared steps (a proxy used by two sources) run once

    def add(self, name: str, ok: bool | None, detail: str, hint: str = "", *,
            ja: Japanese | None = None) -> Step:
        step = Step(name, ok, detail, hint, ja)
        self.steps.append(step)
        self._done[name] = step
        if ok is False:
            log.info("diagnose: FAIL %s: %s", name, detail)
        return step

    def skip(self, name: str, because: str, because_ja: str | None = None) -> None:
        self.add(name, None, f"skipped: {because}",
                 ja=Japanese(f"スキップ: {because_ja}") if because_ja else None)

    def shared(self, name: str, check: Callable[[], str | None]) -> str | None:
        """Run a step shared by several sources once; return why later steps are blocked."""
        done = self._done.get(name)
        if done is None:
            return check()
        return None if done.ok else f"{name.split(':')[0]} failed"


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
