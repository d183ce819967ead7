"""Event-log texts in English and Japanese, worded as on the appliance (SPEC section 1)."""

from __future__ import annotations

from dataclasses import dataclass

from imss_updater.catalog import Component


@dataclass(frozen=True)
class Text:
    en: str
    ja: str


def downloaded(component: Component, version: str) -> Text:
    return Text(
        f"{component.name_en} {version} was downloaded successfully.",
        f"{component.name_ja}{version}を正常にダウンロードしました。",
    )


def rolled_back(component: Component, version: str) -> Text:
    return Text(
        f"{component.name_en} was rolled back to version {version} successfully.",
        f"{component.name_ja}を正常にバージョン{version}にロールバックしました。",
    )


def update_failed(component: Component, version: str | None, reason: str) -> Text:
    shown = f" {version}" if version else ""
    return Text(
        f"{component.name_en}{shown} could not be updated: {reason}",
        f"{component.name_ja}{shown.strip()}の更新に失敗しました: {reason}",
    )


def rollback_failed(component: Component, reason: str) -> Text:
    return Text(
        f"{component.name_en} could not be rolled back: {reason}",
        f"{component.name_ja}のロールバックに失敗しました: {reason}",
    )
