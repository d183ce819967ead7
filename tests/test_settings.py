import datetime

import pytest

from imss_updater.catalog import DEFAULT_IDS
from imss_updater.settings import SettingsError, load
from imss_updater.settings_check import validate_value
from tests.data import KNOWN, default_rows


def test_default_rows_load_into_typed_settings() -> None:
    settings = load(default_rows(), KNOWN)
    assert settings.update_server.startswith("http://imsva91-p.activeupdate.trendmicro.co.jp/")
    assert settings.tmase_server == settings.update_server
    assert settings.proxy is None
    assert settings.schedule_frequency == "15min"
    assert settings.scheduled_components == DEFAULT_IDS
    assert settings.verify_signature == "auto"
    assert settings.max_download_bytes == 1024 * 1024 * 1024
    assert settings.scan_restart == ("/opt/trend/imss/script/S99IMSS", "restart")
    assert settings.features == {"ATSEEnabled": True, "SmartScanEnabled": False}
    assert settings.license_active("Antivirus", datetime.date.today())


def test_every_bad_value_is_reported_at_once() -> None:
    rows = default_rows()
    rows[("Update", "UpdateServer")] = "ftp://nowhere"
    rows[("Update", "ScheduleFrequency")] = "monthly"
    rows[("Update", "MaxDownloadMB")] = "lots"
    rows[("License", "Antispam")] = "31/12/2027"
    del rows[("Update", "ScheduleTime")]
    with pytest.raises(SettingsError) as caught:
        load(rows, KNOWN)
    found = {(p.section, p.name) for p in caught.value.problems}
    assert found == {
        ("Update", "UpdateServer"), ("Update", "ScheduleFrequency"), ("Update", "MaxDownloadMB"),
        ("License", "Antispam"), ("Update", "ScheduleTime"),
    }
    assert "missing row" in str(caught.value)


def test_proxy_is_used_only_when_switched_on() -> None:
    rows = default_rows()
    rows[("Proxy", "ProxyHost")] = "proxy.local"
    rows[("Proxy", "ProxyPort")] = "3128"
    rows[("Proxy", "ProxyPassword")] = "s3cr@t"
    assert load(rows, KNOWN).proxy is None
    rows[("Update", "UseProxySetting")] = "yes"
    proxy = load(rows, KNOWN).proxy
    assert proxy is not None and proxy.port == 3128
    assert "s3cr@t" not in repr(proxy)


def test_proxy_switched_on_without_host_is_an_error() -> None:
    rows = default_rows()
    rows[("Update", "UseProxySetting")] = "yes"
    with pytest.raises(SettingsError, match="ProxyHost"):
        load(rows, KNOWN)


def test_empty_license_means_not_activated_and_past_date_expired() -> None:
    rows = default_rows()
    rows[("License", "Antivirus")] = ""
    rows[("License", "Antispam")] = "2020-01-01"
    settings = load(rows, KNOWN)
    today = datetime.date(2026, 11, 22)
    assert not settings.license_active("Antivirus", today)
    assert not settings.license_active("Antispam", today)


def test_unknown_scheduled_component_is_refused() -> None:
    rows = default_rows()
    rows[("Update", "ScheduledComponents")] = "virus_pattern,nonsense"
    with pytest.raises(SettingsError, match="nonsense"):
        load(rows, KNOWN)


def test_restart_command_must_be_an_absolute_program() -> None:
    rows = default_rows()
    rows[("Service", "ScanServiceRestart")] = "S99IMSS restart"
    with pytest.raises(SettingsError, match="absolute path"):
        load(rows, KNOWN)


def test_validate_value_refuses_only_the_changed_row() -> None:
    rows = default_rows()
    with pytest.raises(SettingsError, match="ScheduleMinute"):
        validate_value("Update", "ScheduleMinute", "17", rows, KNOWN)
    validate_value("Update", "ScheduleMinute", "45", rows, KNOWN)
    validate_value("Notification", "PatternUpdateFailureSubject", "anything %X%", rows, KNOWN)


def test_secret_values_never_appear_in_errors() -> None:
    rows = default_rows()
    rows[("Update", "UseProxySetting")] = "yes"
    rows[("Proxy", "ProxyHost")] = "p"
    rows[("Proxy", "ProxyPort")] = "99999"
    rows[("Proxy", "ProxyPassword")] = "hunter2"
    with pytest.raises(SettingsError) as caught:
        load(rows, KNOWN)
    assert "hunter2" not in str(caught.value)
