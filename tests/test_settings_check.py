"""Settings are checked as a whole before they are written (``config set``, the settings
pages): proxy host and port, the PEM files, and what one change does to the other rows;
the refusal names the field typed, in the page's language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from imss_updater.settings import SettingsError
from imss_updater.settings_check import problems, validate_value
from tests.data import KNOWN, default_rows
from tests.support.autree import SigningPKI
from tests.support.browser import csrf_of
from tests.support.gateway import Gateway


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def token(client: FlaskClient, path: str) -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


def refusal(section: str, name: str, value: str, rows: dict[tuple[str, str], str] | None = None) -> str:
    with pytest.raises(SettingsError) as caught:
        validate_value(section, name, value, rows or default_rows(), KNOWN)
    return str(caught.value)


def test_switching_the_proxy_on_without_a_host_is_refused_under_the_switch() -> None:
    message = refusal("Update", "UseProxySetting", "yes")
    assert message.startswith("invalid settings: Update/UseProxySetting: not accepted")
    assert "Proxy/ProxyHost: empty while UseProxySetting=yes" in message


def test_a_proxy_host_is_a_host_not_a_url_even_while_the_proxy_is_off() -> None:
    for url in ("http://proxy.example:3128/", "proxy.example:3128", "user@proxy", "proxy example"):
        assert "Proxy/ProxyHost" in refusal("Proxy", "ProxyHost", url)
    validate_value("Proxy", "ProxyHost", "proxy.example", default_rows(), KNOWN)
    validate_value("Proxy", "ProxyHost", "::1", default_rows(), KNOWN)


def test_a_proxy_port_outside_1_to_65535_is_refused() -> None:
    for port in ("0", "65536", "80a"):
        assert "1 to 65535" in refusal("Proxy", "ProxyPort", port)
    validate_value("Proxy", "ProxyPort", "3128", default_rows(), KNOWN)


def test_ca_files_must_be_readable_pem_files(tmp_path: Path, signing_pki: SigningPKI) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    for name in ("CAFile", "SignatureCAFile"):
        assert f"{tmp_path}/missing.pem: the file does not exist" in refusal(
            "Update", name, str(tmp_path / "missing.pem"))
        assert "is a directory" in refusal("Update", name, str(tmp_path))
        assert "not a PEM certificate file" in refusal("Update", name, str(not_pem))
        validate_value("Update", name, str(signing_pki.trust_file), default_rows(), KNOWN)


def test_a_problem_already_there_does_not_block_fixing_another_row() -> None:
    rows = default_rows()
    rows[("Update", "CAFile")] = "/nonexistent/ca.pem"  # broken earlier, with psql
    validate_value("Update", "ScheduleMinute", "30", rows, KNOWN)
    assert [(p.section, p.name) for p in problems(rows, KNOWN)] == [("Update", "CAFile")]


def test_required_signatures_without_trust_anchors_are_refused() -> None:
    message = refusal("Update", "VerifySignature", "yes")
    assert "Update/SignatureCAFile: empty while Update/VerifySignature=yes" in message


def test_config_set_refuses_with_one_line_naming_the_row_typed(gateway: Gateway) -> None:
    result = gateway.cli("config", "set", "Update", "UseProxySetting", "yes")
    assert result.code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("imss-updater: invalid settings: Update/UseProxySetting: ")
    assert "Proxy/ProxyHost" in result.stderr
    assert gateway.get("Update", "UseProxySetting") == "no"
    result = gateway.cli("config", "set", "Update", "CAFile", "/nonexistent/ca.pem")
    assert result.code == 2 and "/nonexistent/ca.pem: the file does not exist" in result.stderr
    assert gateway.get("Update", "CAFile") == ""
    assert gateway.cli("config", "set", "Proxy", "ProxyHost", "proxy.example").code == 0
    assert gateway.cli("config", "set", "Proxy", "ProxyPort", "3128").code == 0
    assert gateway.cli("config", "set", "Update", "UseProxySetting", "yes").code == 0


PROXY = {"use": "yes", "user": "", "password": ""}


@pytest.mark.parametrize(("form", "english", "japanese"), [
    ({"host": "", "port": "3128"},
     "Proxy server (Proxy/ProxyHost): enter the proxy server&#39;s host name or address",
     "プロキシサーバ (Proxy/ProxyHost): プロキシを使用する場合は、プロキシサーバのホスト名"),
    ({"host": "http://proxy.example/", "port": "3128"},
     "Proxy server (Proxy/ProxyHost): http://proxy.example/ is not a host name or address",
     "プロキシサーバ (Proxy/ProxyHost): http://proxy.example/ はホスト名またはアドレスではありません"),
    ({"host": "proxy.example", "port": "99999"},
     "Port (Proxy/ProxyPort): must be a port number from 1 to 65535",
     "ポート (Proxy/ProxyPort): 1から65535までのポート番号を指定してください"),
])
def test_proxy_page_names_the_field_in_the_page_language(
    logged_in: FlaskClient, gateway: Gateway, form: dict[str, str], english: str, japanese: str
) -> None:
    data = {"csrf_token": token(logged_in, "/settings/proxy"), **PROXY, **form}
    response = logged_in.post("/settings/proxy", data=data)
    assert response.status_code == 400
    assert english in text(response)
    response = logged_in.post("/settings/proxy", data=data, headers={"Accept-Language": "ja"})
    assert response.status_code == 400
    assert japanese in text(response)
    assert gateway.get("Update", "UseProxySetting") == "no"


def test_source_page_refuses_a_missing_signature_ca_file_in_japanese(
    logged_in: FlaskClient, gateway: Gateway
) -> None:
    data = {"csrf_token": token(logged_in, "/settings/source"), "source": "au", "protocol": "http",
            "tmase": "same", "verify": "auto", "ca_file": "", "signature_ca_file": "/nonexistent/trust.pem",
            "max_mb": "1024"}
    response = logged_in.post("/settings/source", data=data, headers={"Accept-Language": "ja"})
    assert response.status_code == 400
    expected = ("署名の信頼アンカー (PEMファイル) (Update/SignatureCAFile): "
                "ファイル /nonexistent/trust.pem が存在しません")
    assert expected in text(response)
    response = logged_in.post("/settings/source", data=data)
    assert "(Update/SignatureCAFile): the file /nonexistent/trust.pem does not exist" in text(response)


def test_status_page_says_a_ca_file_deleted_after_it_was_set(
    logged_in: FlaskClient, gateway: Gateway, tmp_path: Path, signing_pki: SigningPKI
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(signing_pki.trust_file.read_bytes())
    assert gateway.cli("config", "set", "Update", "CAFile", str(bundle)).code == 0
    bundle.unlink()
    page = text(logged_in.get("/"))
    assert f"(Update/CAFile): the file {bundle} does not exist" in page
