"""The component catalog: what can be updated, where it comes from, where it lives.

The catalog is data (SPEC section 2). Its defaults below seed the ``tb_component`` table
at ``db init``; the run reads the table, so an administrator can correct an entry (a
renamed AU key, another install directory) with SQL and no new release.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    ENGINE = "engine"
    PATTERN = "pattern"


class SourceRole(StrEnum):
    """Which base URL setting serves a component."""

    UPDATE = "update"  # Update/UpdateServer
    TMASE = "tmase"  # Update/TMASEServerurl


class EventGroup(StrEnum):
    """Notification event groups (SPEC section 2)."""

    PATTERN = "pattern"
    ENGINE = "engine"
    SPAM = "spam"


@dataclass(frozen=True)
class Component:
    """One updatable component.

    ``au_key`` is the ENGINE name (``VSAPI_LINUX_X86_64``) for an engine and the
    ``P.<id>`` key for a pattern. ``live_path`` is the directory the scanner reads,
    relative to the install root; the updater keeps it a symbolic link to the current
    generation. ``feature`` names the ``Scan`` setting that must be ``yes`` for the
    component to be used (None: always used). ``on_control_manager`` is False for a
    component that a Control Manager never offers.
    """

    id: str
    name_en: str
    name_ja: str
    kind: Kind
    source: SourceRole
    au_key: str
    license: str
    feature: str | None
    event_group: EventGroup
    live_path: str
    sort_order: int
    on_control_manager: bool = True

    @property
    def is_engine(self) -> bool:
        return self.kind is Kind.ENGINE


DEFAULT_CATALOG: tuple[Component, ...] = (
    Component("virus_engine", "Virus Scan Engine", "ウイルス検索エンジン", Kind.ENGINE,
              SourceRole.UPDATE, "VSAPI_LINUX_X86_64", "Antivirus", None, EventGroup.ENGINE,
              "lib/engine/vsapi", 10),
    Component("atse", "Advanced Threat Scan Engine", "高度な脅威検索エンジン", Kind.ENGINE,
              SourceRole.UPDATE, "ATSE_LINUX_X86_64", "Antivirus", "ATSEEnabled",
              EventGroup.ENGINE, "lib/engine/atse", 20),
    Component("virus_pattern", "Virus Pattern", "ウイルスパターンファイル", Kind.PATTERN,
              SourceRole.UPDATE, "P.4", "Antivirus", None, EventGroup.PATTERN,
              "lib/pattern/vsapi", 30),
    Component("spyware_pattern", "Spyware Pattern", "スパイウェアパターンファイル", Kind.PATTERN,
              SourceRole.UPDATE, "P.8", "Antivirus", None, EventGroup.PATTERN,
              "lib/pattern/spyware", 40),
    Component("intellitrap_pattern", "IntelliTrap Pattern", "IntelliTrapパターンファイル",
              Kind.PATTERN, SourceRole.UPDATE, "P.16", "Antivirus", None, EventGroup.PATTERN,
              "lib/pattern/intellitrap", 50),
    Component("intellitrap_exception", "IntelliTrap Exception Pattern",
              "IntelliTrap除外パターンファイル", Kind.PATTERN, SourceRole.UPDATE, "P.32",
              "Antivirus", None, EventGroup.PATTERN, "lib/pattern/intellitrap_exception", 60),
    Component("spam_engine", "Spam Scan Engine", "スパムメール検索エンジン", Kind.ENGINE,
              SourceRole.TMASE, "TMASE_LINUX_X86_64", "Antispam", None, EventGroup.SPAM,
              "lib/engine/tmase", 70),
    Component("antispam_pattern", "Antispam Pattern", "スパムメール対策パターンファイル",
              Kind.PATTERN, SourceRole.TMASE, "P.10001", "Antispam", None, EventGroup.SPAM,
              "lib/pattern/tmase", 80),
    Component("url_filter_engine", "URL Filtering Engine", "URLフィルタエンジン", Kind.ENGINE,
              SourceRole.UPDATE, "TMUFE_LINUX_X86_64", "Antispam", None, EventGroup.ENGINE,
              "lib/engine/tmufe", 90, on_control_manager=False),
    Component("smart_scan_pattern", "Smart Scan Agent Pattern",
              "スマートスキャンエージェントパターンファイル", Kind.PATTERN, SourceRole.UPDATE,
              "P.48020000", "Antivirus", "SmartScanEnabled", EventGroup.PATTERN,
              "lib/pattern/smartscan", 100),
)

DEFAULT_IDS: tuple[str, ...] = tuple(component.id for component in DEFAULT_CATALOG)
