"""``--help`` and usage errors follow the CLI's language: ``--lang ja`` or ``LANG=ja_JP.UTF-8``.

Every command's help is read from the real CLI (a process of its own); the commands are found
by walking the parser, so a new command is covered without touching this file.
"""

from __future__ import annotations

import argparse
import contextlib
import gettext
import inspect
import io
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from imss_updater import cli, i18n
from imss_updater.commands import arguments, parser_language
from imss_updater.commands.parser_language import ARGPARSE_TEXTS, columns, wrap
from tests.support.gateway import REPO
from tests.support.language import clean_environment

HOW = ("option", "environment")
ENGLISH_HEADINGS = ("usage:", "options:", "positional arguments:", "show this help message and exit")


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command path (``()``, ``("config",)``, ``("config", "get")``, ...) and its parser."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, (*path, name))


def parser_at(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> argparse.ArgumentParser:
    return dict(walk(parser))[path]


def help_texts(parser: argparse.ArgumentParser) -> list[str]:
    """The texts of ours that ``parser``'s help shows: its description, every option's and
    positional's help and each subcommand's help line."""
    texts = [parser.description or ""]
    for action in parser._actions:
        texts.append(action.help or "")
        if isinstance(action, argparse._SubParsersAction):
            texts += [choice.help or "" for choice in action._choices_actions]
    return [text for text in texts if text and text != argparse.SUPPRESS]


COMMANDS = [path for path, _parser in walk(arguments.build_parser())]


def cli_process(*args: str, how: str | None = None, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, asking for Japanese the way ``how`` says (English when None)."""
    env = {**clean_environment(), "PYTHONPATH": str(REPO), "COLUMNS": "80", **environment}
    if how == "environment":
        env["LANG"] = "ja_JP.UTF-8"
    language = ["--lang", "ja"] if how == "option" else []
    return subprocess.run([sys.executable, "-m", "imss_updater.cli", *args, *language],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_the_walk_finds_the_commands_and_their_subcommands() -> None:
    expected = {(), ("status",), ("config", "get"), ("trust", "reset-index"), ("fleet", "status")}
    assert expected <= set(COMMANDS)
    assert len(COMMANDS) > 25


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "imss-updater")
def test_every_commands_help_is_in_japanese_with_the_contracts_names_kept(
        path: tuple[str, ...], how: str) -> None:
    result = cli_process(*path, "--help", how=how)

    assert result.returncode == 0, result.stderr
    shown = result.stdout
    english = parser_at(arguments.build_parser(), path)
    assert shown.startswith("使い方: imss-updater")
    assert "オプション:" in shown and "このヘルプを表示して終了します" in shown
    if english._get_positional_actions():
        assert "位置引数:" in shown
    for heading in ENGLISH_HEADINGS:
        assert heading not in shown
    usage = shown.split("\n\n")[0].splitlines()  # continuation lines under the first option
    indent = columns("使い方: ") + len(" ".join(("imss-updater", *path))) + 1
    assert all(columns(line) <= 80 or "{" in line for line in usage), usage
    assert all(len(line) - len(line.lstrip()) == indent for line in usage[1:]), usage
    for text in help_texts(english):
        assert flat(text) not in flat(shown), f"left in English: {text!r}"
    for action in english._actions:  # option names, metavars and subcommands are the contract
        for name in action.option_strings:
            assert name in shown
        if isinstance(action, argparse._SubParsersAction):
            assert all(name in shown for name in action.choices)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "imss-updater")
def test_every_help_text_has_a_japanese_translation(path: tuple[str, ...]) -> None:
    english = help_texts(parser_at(arguments.build_parser(), path))
    with parser_language.speaking("ja"):
        japanese = help_texts(parser_at(arguments.build_parser("ja"), path))
    assert len(japanese) == len(english)
    for en, ja in zip(english, japanese, strict=True):
        assert ja and ja != en and any(columns(char) == 2 for char in ja), en


@pytest.mark.parametrize("how", HOW)
def test_an_unknown_command_is_a_usage_error_in_japanese(how: str) -> None:
    result = cli_process("nosuch", how=how)

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("使い方: imss-updater")
    last = result.stderr.splitlines()[-1]
    assert last.startswith("imss-updater: エラー: 引数 COMMAND: 'nosuch' は選択できません (")
    assert "'status'" in last and "から選んでください)" in last


@pytest.mark.parametrize("how", HOW)
def test_a_missing_argument_and_a_bad_value_are_usage_errors_in_japanese(how: str) -> None:
    missing = cli_process("config", "get", how=how)
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        "imss-updater config get: エラー: 次の引数を指定してください: section, name")
    bad = cli_process("logs", "--limit", "many", how=how)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == (
        "imss-updater logs: エラー: 引数 --limit: int の値として正しくありません: 'many'")
    unknown = cli_process("status", "--colour", how=how)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines()[-1] == "imss-updater: エラー: 認識できない引数です: --colour"


def test_the_help_stays_english_without_a_japanese_locale_and_lc_all_wins_over_lang() -> None:
    plain = cli_process("--help")
    assert plain.stdout.startswith("usage: imss-updater")
    assert "Keeps the gateway's scan engines and pattern files up to date." in plain.stdout
    overridden = cli_process("status", "--help", LANG="ja_JP.UTF-8", LC_ALL="C.UTF-8")
    assert overridden.stdout.startswith("usage: imss-updater status")
    assert "current state, without contacting sources" in overridden.stdout
    asked = cli_process("status", "--help", "--lang=en", LANG="ja_JP.UTF-8")
    assert asked.stdout.startswith("usage: imss-updater status")


def in_process(*args: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main(list(args))
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, stdout.getvalue(), stderr.getvalue()


def test_english_help_and_errors_are_unchanged_after_a_japanese_parse_in_the_same_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith(("LANG", "LC_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "80")
    before = in_process("update", "--help")
    error_before = in_process("config", "get")

    japanese = in_process("update", "--help", "--lang", "ja")
    japanese_error = in_process("config", "get", "--lang=ja")

    assert japanese[1].startswith("使い方: ") and "エラー: " in japanese_error[2]
    assert in_process("update", "--help") == before
    assert in_process("config", "get") == error_before
    assert before[1].startswith("usage: imss-updater update")
    assert error_before[0] == 2 and "the following arguments are required: section, name" in error_before[2]
    assert vars(argparse)["_"] is gettext.gettext  # argparse's own lookup is back


def test_the_lang_option_is_found_before_parsing_as_argparse_would_read_it() -> None:
    given = arguments.language_given
    assert given(["status", "--lang", "ja"]) == "ja"
    assert given(["--lang=ja", "status"]) == "ja"
    assert given(["--lang", "ja", "status", "--lang", "en"]) == "en"  # the last one wins
    assert given(["status"]) is None
    assert given(["status", "--lang", "fr"]) is None  # the parser reports it
    assert given(["status", "--lang"]) is None
    assert given(["config", "set", "--", "--lang", "ja"]) is None
    for argv in (["status", "--lang", "ja"], ["--lang=ja", "status"],
                 ["--lang", "ja", "status", "--lang", "en"]):
        assert arguments.parse(argv, "en").lang == given(argv)


def test_argparse_still_uses_the_texts_the_catalog_translates() -> None:
    source = inspect.getsource(argparse)
    for text in ARGPARSE_TEXTS:
        assert repr(text) in source or f'"{text}"' in source, text
        assert i18n.gettext("ja", text) != text


def test_japanese_help_is_wrapped_by_terminal_columns_and_not_before_a_closing_mark() -> None:
    text = ("このゲートウェイがリーダーのときにフリートのミラーを提供する host:port "
            "(既定値: $IMSS_MIRROR、なければ提供しません)")
    lines = wrap(text, 30)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(columns(line) <= 30 for line in lines), lines
    assert len(lines) > 2
    assert not any(line[0] in "、。)" for line in lines)
    assert wrap("host:port and words", 10) == ["host:port", "and words"]
