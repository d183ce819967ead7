"""argparse in the CLI's language: its own words ("usage:", "options", its errors) from our catalog.

argparse looks each of its texts up at the moment it uses it, through its module-level ``_``
(``gettext.gettext``, the process-wide default domain and the POSIX locale, so ``--lang`` could
not reach it). ``speaking(language)`` binds that ``_`` to our catalog's translation of
``language`` while the parser is built and while it parses (help and usage errors are printed
during ``parse_args``), and puts argparse's own function back afterwards, also when parsing
ends in ``SystemExit``: an English parse afterwards is exactly the English of before. English
binds nothing. Subclassing cannot do this alone: the error texts ("the following arguments
are required", "invalid choice") are built inside argparse's private parsing methods.

``WideHelpFormatter`` wraps help texts by terminal columns (a Japanese character takes two)
and breaks between Japanese characters, where argparse's ``textwrap`` counts characters and
breaks only at spaces; it aligns the usage's continuation lines under the translated
"usage: " too.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import unicodedata
from collections.abc import Iterable, Iterator

from imss_updater import i18n
from imss_updater.i18n import N_

# argparse's own texts the CLI can show (Python 3.11 to 3.13 use the same msgids), listed so
# that pybabel extracts them into the catalog. Texts only a programming error reaches
# ("conflicting subparser", "dest= is required") stay English.
ARGPARSE_TEXTS = (
    N_("usage: "),
    N_("positional arguments"),
    N_("options"),
    N_("show this help message and exit"),
    N_("%(prog)s: error: %(message)s\n"),
    N_("argument %(argument_name)s: %(message)s"),
    N_("the following arguments are required: %s"),
    N_("unrecognized arguments: %s"),
    N_("invalid choice: %(value)r (choose from %(choices)s)"),
    N_("invalid %(type)s value: %(value)r"),
    N_("expected one argument"),
    N_("expected at most one argument"),
    N_("expected at least one argument"),
    N_("ambiguous option: %(option)s could match %(matches)s"),
    N_("ignored explicit argument %r"),
    N_("unexpected option string: %s"),
    N_("unknown parser %(parser_name)r (choices: %(choices)s)"),
    N_("not allowed with argument %s"),
    N_("one of the arguments %s is required"),
)


@contextlib.contextmanager
def speaking(language: str) -> Iterator[None]:
    """While inside, argparse's own texts come from the catalog in ``language``."""
    if language == i18n.DEFAULT_LANGUAGE:
        yield
        return
    namespace = vars(argparse)
    own = namespace["_"]
    namespace["_"] = i18n.translations(language).gettext
    try:
        yield
    finally:
        namespace["_"] = own


class WideHelpFormatter(argparse.HelpFormatter):
    """Wraps help texts by terminal columns, breaking between wide (CJK) characters too."""

    def _format_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                      groups: Iterable[argparse._MutuallyExclusiveGroup], prefix: str | None) -> str:
        # argparse measures "usage: " in characters (to wrap the usage and to indent its
        # continuation lines); a translated prefix in wide characters takes more columns
        shown: str = vars(argparse)["_"]("usage: ") if prefix is None else prefix
        extra = columns(shown) - len(shown)
        self._width -= extra
        try:
            text = super()._format_usage(usage, actions, groups, shown)
        finally:
            self._width += extra
        first, *rest = text.split("\n")
        return "\n".join([first, *(" " * extra + line if line.startswith(" ") else line for line in rest)])

    def _split_lines(self, text: str, width: int) -> list[str]:
        if not any(_wide(char) for char in text):
            return super()._split_lines(text, width)
        return wrap(text, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if not any(_wide(char) for char in text):
            return super()._fill_text(text, width, indent)
        return "\n".join(indent + line for line in wrap(text, width - len(indent)))


# Characters a Japanese line does not start with (closing marks, the prolonged sound mark)
# and those it does not end with (opening marks).
_NO_LINE_START = frozenset("、。，．）」』】〕ー・：；？！),.:;")
_NO_LINE_END = frozenset("（「『【〔(")


def wrap(text: str, width: int) -> list[str]:
    """Split ``text`` into lines of at most ``width`` terminal columns (a longer word keeps a
    line of its own): between words and between two wide characters, never before a closing
    mark."""
    lines: list[str] = []
    line, used, space = "", 0, False
    for piece in _pieces(re.sub(r"\s+", " ", text).strip()):
        if piece == " ":
            space = True
            continue
        size = columns(piece)
        extra = size + (1 if space and line else 0)
        if (line and used + extra > width and piece[0] not in _NO_LINE_START
                and line[-1] not in _NO_LINE_END):
            lines.append(line)
            line, used = piece, size
        else:
            line += (" " if space and line else "") + piece
            used += extra
        space = False
    return [*lines, line] if line else lines


def columns(text: str) -> int:
    """The terminal columns ``text`` takes: two for a wide character, one for the others."""
    return sum(2 if _wide(char) else 1 for char in text)


def _pieces(text: str) -> Iterator[str]:
    """Words of narrow characters, single wide characters and single spaces, in order."""
    word = ""
    for char in text:
        if char == " " or _wide(char):
            if word:
                yield word
                word = ""
            yield char
        else:
            word += char
    if word:
        yield word


def _wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
