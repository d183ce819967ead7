"""The texts of a diagnosis step: Reasons from the one catalog (``i18n``), rendered in the
language the report is read in, and the few parameters worded outside the catalog.

A step's name, detail and hint are each a ``Text``: a Reason (its English is the msgid, its
Japanese in ``messages.po``) or a plain string shown as it is in every language (a server's
own message, a path). Three kinds of parameter are not catalog texts and are Reasons that
render themselves:
- ``Words``: a text worded elsewhere in each language (a component's names from
  tb_component, the lock module's message), English when the language has none; also a
  step whose Japanese says more than its English (two msgids: the English report keeps its
  words, the Japanese one names the service or the host);
- ``Column``: a database column written by ``i18n.stored`` (a Reason's JSON, or an older
  plain text), shown through ``i18n.stored_text``;
- ``Joined``: a list of texts joined by a separator that is itself a msgid (``LIST`` reads
  ", " in English and the Japanese list mark in Japanese).
Steps are rendered, never stored: these subclasses do not survive ``Reason.to_json``.
"""

from __future__ import annotations

from collections.abc import Iterable

from imss_updater.i18n import DEFAULT_LANGUAGE, N_, Reason, gettext, render, stored_text

Text = str | Reason

LIST = N_(", ")  # the separator of a list of names
SEMICOLON = "; "  # the separator of a list of findings, the same in every language


class Words(Reason):
    """A text worded outside the catalog, by language: ``Words("", {"en": ..., "ja": ...})``."""

    def render(self, language: str) -> str:
        value = self.params.get(language, self.params.get(DEFAULT_LANGUAGE))
        return render(value, language) if isinstance(value, (str, Reason)) else str(value or "")


class Column(Reason):
    """A column written by ``i18n.stored`` (kept in ``msgid``), shown by ``i18n.stored_text``."""

    def render(self, language: str) -> str:
        return stored_text(self.msgid, language)


class Joined(Reason):
    """Texts (the params, in order) joined by the separator ``msgid`` in the language shown."""

    def render(self, language: str) -> str:
        separator = gettext(language, self.msgid) if self.msgid == LIST else self.msgid
        return separator.join(render(value, language) if isinstance(value, (str, Reason)) else str(value)
                              for value in self.params.values())


def words(english: Text, japanese: Text) -> Words:
    return Words("", {"en": english, "ja": japanese})


def joined(items: Iterable[Text], separator: str = SEMICOLON) -> Joined:
    return Joined(separator, {str(number): item for number, item in enumerate(items)})
