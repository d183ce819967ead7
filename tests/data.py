"""Plain test data shared by unit tests: the default settings rows, as db init writes them."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

from imss_updater.catalog import DEFAULT_IDS

DEFAULTS_SQL = Path(__file__).resolve().parent.parent / "imss_updater" / "sql" / "defaults.sql"


def default_rows(today: datetime.date | None = None) -> dict[tuple[str, str], str]:
    """Return the rows of sql/defaults.sql as a dict, without a database."""
    today = today or datetime.date.today()
    rows: dict[tuple[str, str], str] = {}
    text = DEFAULTS_SQL.read_text(encoding="utf-8")
    row = re.compile(r"\('([^']*)', '([^']*)', (E?'(?:[^']|'')*'|to_char\([^)]*\))\)")
    for section, name, value in row.findall(text):
        if value.startswith("to_char"):
            value = today.replace(year=today.year + 1).isoformat()
        else:
            value = value.lstrip("E")[1:-1].replace("''", "'").replace("\\n", "\n")
        rows[(section, name)] = value
    return rows


KNOWN = DEFAULT_IDS
