"""Event-log texts, worded as on the appliance (SPEC section 1), from the gettext catalog.

Each event keeps its text in both languages (the events table's message and message_ja
columns), rendered here from one msgid: the component's name in that language, the version,
and the reason (a Reason is rendered in each language; a plain string is kept as it is).
"""

from __future__ import annotations

from dataclasses import dataclass

from imss_updater.catalog import Component
from imss_updater.i18n import N_, Reason, gettext, render


@dataclass(frozen=True)
class Text:
    en: str
    ja: str


def _both(component: Component, msgid: str, **values: str | Reason) -> Text:
    def one(language: str, name: str) -> str:
        shown = {key: render(value, language) for key, value in values.items()}
        return gettext(language, msgid, name=name, **shown)

    return Text(one("en", component.name_en), one("ja", component.name_ja))


def downloaded(component: Component, version: str) -> Text:
    return _both(component, N_("%(name)s %(version)s was downloaded successfully."), version=version)


def rolled_back(component: Component, version: str) -> Text:
    return _both(component, N_("%(name)s was rolled back to version %(version)s successfully."),
                 version=version)


def update_failed(component: Component, version: str | None, reason: str | Reason) -> Text:
    if version:
        return _both(component, N_("%(name)s %(version)s could not be updated: %(reason)s"),
                     version=version, reason=reason)
    return _both(component, N_("%(name)s could not be updated: %(reason)s"), reason=reason)


def rollback_failed(component: Component, reason: str | Reason) -> Text:
    return _both(component, N_("%(name)s could not be rolled back: %(reason)s"), reason=reason)
