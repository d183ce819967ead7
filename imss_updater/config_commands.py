"""``config get / set / list``: settings rows for an administrator, secrets never shown, and
a close match suggested for a misspelled row."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from imss_updater.i18n import N_, gettext
from imss_updater.settings import SECRET_NAMES

Row = tuple[str, str]


def shown(section: str, name: str, value: str) -> str:
    """The value as it may be printed: ``***`` for a secret that is set."""
    return "***" if (section, name) in SECRET_NAMES and value else value


def listing(rows: Mapping[Row, str], section: str | None) -> list[dict[str, str]]:
    """Every row (of ``section``, any case, when given), sorted, secrets masked."""
    wanted = section.lower() if section else None
    return [
        {"section": row_section, "name": name, "value": shown(row_section, name, value)}
        for (row_section, name), value in sorted(rows.items())
        if wanted is None or row_section.lower() == wanted
    ]


def unknown_row(section: str, name: str, rows: Iterable[Row], language: str = "en") -> str:
    """The one-line reason for a row that does not exist, with the closest real row."""
    known = {f"{row_section}/{row_name}": (row_section, row_name) for row_section, row_name in rows}
    asked = f"{section}/{name}"
    exact = [text for text in known if text.lower() == asked.lower()]
    close = exact or difflib.get_close_matches(asked, list(known), n=1, cutoff=0.75)
    if not close:
        by_name = {row_name: text for text, (_s, row_name) in known.items()}
        close = [by_name[match] for match in difflib.get_close_matches(name, list(by_name), n=1,
                                                                       cutoff=0.75)]
    if close:
        return gettext(language, N_("no setting %(row)s; did you mean %(close)s?"), row=asked, close=close[0])
    return gettext(language, N_("no setting %(row)s (`imss-updater config list` shows every row)"), row=asked)


def unknown_section(section: str, rows: Iterable[Row], language: str = "en") -> str:
    sections = sorted({row_section for row_section, _name in rows})
    close = difflib.get_close_matches(section, sections, n=1, cutoff=0.6)
    if close:
        return gettext(language, N_("no section %(section)s; did you mean %(close)s?"), section=section,
                       close=close[0])
    return gettext(language, N_("no section %(section)s (sections: %(sections)s)"), section=section,
                   sections=", ".join(sections))
