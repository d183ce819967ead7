"""Help texts keep commands in Markdown-style backticks (translators never write HTML); the
``code_spans`` template filter shows them as ``<code>`` instead of literal backticks."""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_CODE = re.compile(r"`([^`]+)`")


def code_spans(text: str) -> Markup:
    """Escape ``text`` and turn each `command` into <code>command</code>."""
    return Markup(_CODE.sub(r"<code>\1</code>", str(escape(text))))  # noqa: S704 - escaped above
