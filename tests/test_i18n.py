"""The one gettext catalog: every extracted msgid has a Japanese translation, and the module
renders texts, plurals, dates and reasons per language outside Flask too."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from imss_updater import i18n
from imss_updater.i18n import N_, Reason

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "imss_updater" / "translations" / "ja" / "LC_MESSAGES" / "messages.po"


def extract(tmp_path: Path) -> Path:
    """Run pybabel extract over the package and the templates (babel.cfg) into tmp_path."""
    pybabel = shutil.which("pybabel", path=str(Path(sys.executable).parent)) or "pybabel"
    target = tmp_path / "messages.pot"
    keywords = ["-k", "N_", "-k", "Reason", "-k", "tr", "-k", "trn:1,2"]  # as babel.cfg says
    subprocess.run([pybabel, "extract", "-F", "babel.cfg", *keywords, "-o", str(target), "."],
                   cwd=ROOT, check=True, capture_output=True)
    return target


def test_every_extracted_message_has_a_japanese_translation_that_is_not_fuzzy(tmp_path: Path) -> None:
    with extract(tmp_path).open("rb") as handle:
        template = read_po(handle)
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="ja")
    ids = [message.id for message in template if message.id]
    assert len(ids) > 250  # the extraction found the package and the templates
    problems = []
    for msgid in ids:
        entry = catalog.get(msgid)
        strings = entry.string if entry is not None and isinstance(entry.string, tuple) else (
            (entry.string,) if entry is not None else ("",))
        if entry is None or not all(strings):
            problems.append(f"no ja translation: {msgid!r}")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
    assert problems == [], "run scripts/update-catalog and translate the empty msgstrs"


def test_japanese_keeps_every_placeholder_of_the_english_text() -> None:
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="ja")
    for message in catalog:
        if not message.id:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        japanese = message.string if isinstance(message.string, str) else message.string[0]
        placeholders = re.compile(r"%\((\w+)\)")
        assert sorted(placeholders.findall(english)) == sorted(placeholders.findall(japanese)), english


def test_texts_plurals_and_languages_outside_flask() -> None:
    assert i18n.gettext("ja", "Unknown") == "不明"
    assert i18n.gettext("en", "Unknown") == "Unknown"
    assert i18n.gettext("fr", "Unknown") == "Unknown"
    assert i18n.ngettext("en", "%(num)d day", "%(num)d days", 1) == "1 day"
    assert i18n.ngettext("en", "%(num)d day", "%(num)d days", 3) == "3 days"
    assert i18n.ngettext("ja", "%(num)d day", "%(num)d days", 3) == "3日"
    assert i18n.gettext("ja", "Manual update succeeded.") == "手動アップデートに成功しました"


def test_a_reason_is_rendered_in_each_language_with_nested_reasons() -> None:
    reason = Reason(N_("Started: %(kind)s."), {"kind": Reason(N_("manual update"))})
    assert str(reason) == "Started: manual update."
    assert reason.render("ja") == "手動アップデートを開始しました。"
    assert Reason.from_json(reason.to_json()) == reason
    assert i18n.stored_text(i18n.stored(reason), "ja") == "手動アップデートを開始しました。"
    assert i18n.stored_text("an older plain text", "ja") == "an older plain text"


def test_the_language_follows_the_posix_locale_variables() -> None:
    assert i18n.environment_language({"LANG": "ja_JP.UTF-8"}) == "ja"
    assert i18n.environment_language({"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}) == "en"
    assert i18n.environment_language({}) == "en"
    assert i18n.normalize("ja-JP") == "ja"


def test_a_moment_is_shown_in_local_time_with_its_zone() -> None:
    moment = datetime.datetime(2026, 11, 22, 3, 0, 12, tzinfo=datetime.UTC)
    zone = moment.astimezone().strftime("%Z")
    assert i18n.format_moment(moment, "en").endswith(f" {zone}")
    assert i18n.format_moment(moment, "ja").startswith("2026/11/")
