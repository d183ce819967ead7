"""Templates, events and the notification settings loader: pure code, no I/O."""

from __future__ import annotations

import datetime

import pytest

from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.notify import config, events, templates
from imss_updater.run.updater import Outcome, RunReport
from imss_updater.settings import SettingsError
from tests.data import DEFAULTS_SQL

MOMENT = datetime.datetime(2026, 11, 22, 3, 0, 12, tzinfo=datetime.UTC)


def context(*items: templates.Item, language: str = "en") -> templates.Context:
    return templates.Context(items, MOMENT, "gw1", "http://au.example/japan", language)


def test_unknown_token_is_left_visible_and_known_ones_substituted() -> None:
    text = templates.render_body("%HOST% %FOO% 100%% %SOURCE%", context())
    assert text == "gw1 %FOO% 100%% http://au.example/japan\n"


def test_block_of_component_lines_is_repeated_for_every_component() -> None:
    template = "Failed on %HOST%:\n%COMPONENT% %VERSION%: %RESULT%\nReason: %REASON%\n-- end"
    body = templates.render_body(
        template,
        context(
            templates.Item("Virus Pattern", "15.697.00", "failure", "signature invalid"),
            templates.Item("Spyware Pattern", None, "failure", "source unreachable"),
        ),
    )
    assert body == (
        "Failed on gw1:\n"
        "Virus Pattern 15.697.00: update failed\nReason: signature invalid\n"
        "Spyware Pattern Unknown: update failed\nReason: source unreachable\n"
        "-- end\n"
    )


def test_subject_joins_component_values_on_one_line() -> None:
    subject = templates.render_subject(
        "[%HOST%] %COMPONENT% %RESULT%",
        context(templates.Item("A", "1", "failure", "x"), templates.Item("B", "2", "failure", "y")),
    )
    assert subject == "[gw1] A, B update failed"


def test_japanese_defaults_use_japanese_names_and_words() -> None:
    catalog = {component.id: component for component in DEFAULT_CATALOG}
    report = RunReport("scheduled", [Outcome("virus_pattern", "15.697.00", False, "x", "署名が不正です")])
    [event] = events.from_run(DEFAULT_CATALOG, report, time=MOMENT, host="gw1", sources={})
    subject, message = templates.default_templates("ja")[("pattern", "failure")]
    subject_text, body = events.compose(event, subject, message, "ja")
    assert subject_text == "[gw1] パターンファイルのアップデートに失敗しました"
    assert f"{catalog['virus_pattern'].name_ja} 15.697.00: アップデートに失敗しました" in body
    assert "理由: 署名が不正です" in body
    assert "%" not in body


def test_english_defaults_match_the_rows_of_defaults_sql() -> None:
    text = DEFAULTS_SQL.read_text(encoding="utf-8")
    for name, value in templates.default_rows("en").items():
        escaped = value.replace("\n", "\\n")
        assert f"'{name}', E'{escaped}'" in text or f"'{name}', '{escaped}'" in text, name


def test_run_events_group_components_per_group_and_outcome() -> None:
    report = RunReport(
        "scheduled",
        [
            Outcome("spyware_pattern", "2.402.00", False, "m", "size mismatch"),
            Outcome("virus_pattern", "15.697.00", False, "m", "signature invalid"),
            Outcome("virus_engine", "21.0.1008", True, "m"),
            Outcome("antispam_pattern", "1.100.00", True, "m"),
        ],
    )
    found = events.from_run(DEFAULT_CATALOG, report, time=MOMENT, host="gw1", sources={})
    assert [(e.group, e.outcome, [i.component for i in e.items]) for e in found] == [
        ("pattern", "failure", ["virus_pattern", "spyware_pattern"]),
        ("engine", "success", ["virus_engine"]),
        ("spam", "success", ["antispam_pattern"]),
    ]
    assert found[0].items[0].reason == "signature invalid"
    assert found[1].items[0].reason is None


def test_up_to_date_run_makes_no_event() -> None:
    report = RunReport("scheduled", up_to_date=True)
    assert events.from_run(DEFAULT_CATALOG, report, time=MOMENT, host="gw1", sources={}) == []


def base_rows() -> dict[tuple[str, str], str]:
    rows = {("Notification", name): value for name, value in {
        "SMTPServer": "", "SMTPPort": "25", "SMTPSecurity": "none", "SMTPUser": "",
        "SMTPPassword": "", "MailFrom": "", "MailTo": "", "SNMPServer": "", "SNMPVersion": "2c",
        "SNMPCommunity": "public", "SNMPv3User": "", "SNMPv3AuthPassword": "",
        "SNMPv3PrivPassword": "",
    }.items()}
    for group in config.GROUPS:
        for outcome in config.OUTCOMES:
            prefix = config.row_prefix(group, outcome)
            wanted = "yes" if outcome == "failure" else "no"
            rows[("Notification", f"{prefix}Mail")] = wanted
            rows[("Notification", f"{prefix}Trap")] = wanted
            rows[("Notification", f"{prefix}Subject")] = ""
            rows[("Notification", f"{prefix}Message")] = ""
    return rows


def test_defaults_ask_for_failures_only_and_no_channel_is_configured() -> None:
    settings = config.load_strict(base_rows(), host="gw1")
    assert settings.mail is None and settings.trap is None
    assert settings.rules[("engine", "failure")].mail and settings.rules[("engine", "failure")].trap
    assert not settings.rules[("spam", "success")].mail
    assert settings.rules[("pattern", "failure")].subject == "[%HOST%] Pattern file update FAILED"


def test_every_bad_notification_row_is_reported_at_once_without_secrets() -> None:
    rows = base_rows()
    rows.update({
        ("Notification", "SMTPServer"): "relay.example",
        ("Notification", "SMTPPort"): "smtp",
        ("Notification", "SMTPSecurity"): "tls",
        ("Notification", "MailTo"): "ops@example, not an address",
        ("Notification", "SNMPServer"): "nms.example:99999",
        ("Notification", "SNMPVersion"): "3",
        ("Notification", "SNMPv3AuthPassword"): "short",
        ("Notification", "PatternUpdateFailureMail"): "maybe",
    })
    with pytest.raises(SettingsError) as caught:
        config.load_strict(rows, host="gw1")
    named = {problem.name for problem in caught.value.problems}
    assert named >= {"SMTPPort", "SMTPSecurity", "MailFrom", "MailTo", "SNMPServer", "SNMPv3User",
                     "SNMPv3AuthPassword", "SNMPv3PrivPassword", "PatternUpdateFailureMail"}
    assert "short" not in str(caught.value)
    settings, _problems = config.load(rows, host="gw1")
    assert settings.rules[("pattern", "failure")].mail is True  # a bad rule falls back to the default
    assert settings.mail is None and settings.trap is None


def test_receivers_take_default_port_and_ipv6_brackets() -> None:
    assert config.parse_receivers("nms1, nms2:1162, [::1]:2162") == (
        config.Receiver("nms1", 162), config.Receiver("nms2", 1162), config.Receiver("::1", 2162),
    )


def test_config_set_validation_refuses_a_bad_notification_row_only() -> None:
    rows = base_rows()
    with pytest.raises(SettingsError, match="SMTPSecurity"):
        config.validate_value("Notification", "SMTPSecurity", "tls", rows)
    config.validate_value("Notification", "SMTPSecurity", "starttls", rows)
    config.validate_value("Update", "Anything", "x", rows)


def test_language_ja_turns_the_default_rows_into_the_japanese_defaults_but_keeps_edited_rows() -> None:
    from tests.data import default_rows

    rows = {**default_rows(), ("Notification", "Language"): "ja",
            ("Notification", "EngineUpdateFailureSubject"): "[%HOST%] my own subject"}
    settings, _problems = config.load(rows, host="gw1")
    pattern = settings.rules[("pattern", "failure")]
    assert pattern.subject == "[%HOST%] パターンファイルのアップデートに失敗しました"
    assert "理由: %REASON%" in pattern.message
    assert settings.rules[("engine", "failure")].subject == "[%HOST%] my own subject"
    assert templates.built_in("ja", "test")[0] == "[%HOST%] imss-updater テストメッセージ"
