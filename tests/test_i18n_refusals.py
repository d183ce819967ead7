"""Why a package is refused, in the administrator's language (issue 9, section 1): a signature
that does not verify, a zip member escaping the install directory, a zip bomb, an untrusted
path. ``update --lang ja`` and the event's Japanese message (what a Japanese notification
sends) say it in Japanese; the English output, ``--json`` and the English event column say
exactly what they said before. Real peers: signed ActiveUpdate trees served over HTTP, the
CLI against a real PostgreSQL, openssl, real zips on disk."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from imss_updater import i18n
from imss_updater.source import signature
from imss_updater.store import ownership
from imss_updater.store.install import ComponentStore, InstallError
from tests.support.autree import SigningPKI
from tests.support.gateway import Gateway

CONTENT_MISMATCH_JA = "署名が無効です: 内容が署名と一致しません"


def last_failure(gateway: Gateway) -> tuple[str | None, str]:
    """The newest failure event: its English reason column and its Japanese message."""
    with gateway.database() as database:
        event = database.events(outcome="failure", limit=1)[0]
    return event.reason, event.message_ja or ""


def refused_in_both_languages(gateway: Gateway, english: str, japanese: str) -> None:
    """``update --lang ja`` says ``japanese`` (and not ``english``); the event keeps the
    English reason and a Japanese message; English and --json output say ``english``."""
    told = gateway.cli("update", "virus_pattern", "--lang", "ja")
    assert told.code == 1, told.stdout
    assert japanese in told.stderr, told.stderr
    assert english not in told.stderr
    reason, message_ja = last_failure(gateway)
    assert reason is not None and reason.endswith(english), reason
    assert japanese in message_ja, message_ja

    plain = gateway.cli("update", "virus_pattern")
    assert plain.code == 1
    assert english in plain.stderr, plain.stderr
    assert japanese not in plain.stderr
    payload = json.loads(gateway.cli("update", "virus_pattern", "--json").stdout)
    (result,) = [item for item in payload["results"] if item["component"] == "virus_pattern"]
    assert result["reason"].endswith(english), result
    assert japanese not in json.dumps(payload, ensure_ascii=False)


# -- signatures --------------------------------------------------------------------------------


def test_a_package_whose_content_was_tampered_with_is_refused_in_japanese_by_update_lang_ja(
    gateway: Gateway,
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.corrupt_payload("P.4")  # the .sig is the genuine one, over other bytes
    gateway.publish()

    refused_in_both_languages(gateway, signature.CONTENT_MISMATCH, CONTENT_MISMATCH_JA)
    reason, _ = last_failure(gateway)
    assert reason == signature.CONTENT_MISMATCH  # the English column: exactly as before


def test_an_imported_package_that_does_not_match_its_signature_is_refused_in_japanese(
    gateway: Gateway, tmp_path: Path
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    media = tmp_path / "usb"
    media.mkdir()
    package = media / "virus_pattern-1569700.zip"
    (media / "virus_pattern-1569700.sig").write_bytes(gateway.tree.signature_file("P.4").read_bytes())
    gateway.tree.corrupt_payload("P.4")  # the genuine .sig beside other bytes
    package.write_bytes(gateway.tree.payload_path("P.4").read_bytes())

    told = gateway.cli("import", str(package), "--lang", "ja")

    assert told.code == 1, told.stdout
    assert CONTENT_MISMATCH_JA in told.stderr, told.stderr
    reason, message_ja = last_failure(gateway)
    assert reason == signature.CONTENT_MISMATCH
    assert CONTENT_MISMATCH_JA in message_ja
    english = gateway.cli("import", str(package))
    assert signature.CONTENT_MISMATCH in english.stderr
    assert CONTENT_MISMATCH_JA not in english.stderr


def test_openssls_own_verdict_stays_as_it_said_it_inside_the_japanese_sentence(tmp_path: Path) -> None:
    stderr = ("40F7:error:1700006B:CMS routines:cms_verify:Verify error: "
              "unable to get local issuer certificate\n")
    reason = signature.classify(stderr, tmp_path / "trust.pem")

    assert str(reason) == signature.classify_failure(stderr, tmp_path / "trust.pem") == (
        "unknown signer: missing root or intermediate certificate (unable to get local issuer certificate)")
    assert reason.render("ja") == ("不明な署名者です: ルート証明書または中間証明書がありません "
                                   "(unable to get local issuer certificate)")


def test_a_signer_without_code_signing_is_named_in_japanese_with_its_subject(
    signing_pki: SigningPKI, tmp_path: Path
) -> None:
    tls = signing_pki.tls_signer(tmp_path / "tls")
    content = tmp_path / "payload.bin"
    content.write_bytes(b"payload\n")
    tls.sign_file(content, tmp_path / "payload.bin.sig")

    with pytest.raises(signature.SignatureError) as raised:
        signature.verify_detached(content, tmp_path / "payload.bin.sig", signing_pki.trust_file)

    assert raised.value.reason.startswith(
        signature.NOT_CODE_SIGNING + " (has: TLS Web Server Authentication) (")
    japanese = i18n.render(raised.value.why, "ja")
    assert japanese.startswith("署名者の証明書にコード署名の拡張キー使用法がありません "
                               "(現在の拡張キー使用法: TLS Web Server Authentication) (CN="), japanese


def test_an_unsigned_index_where_one_is_required_is_refused_in_japanese(gateway: Gateway) -> None:
    gateway.set("Update", "VerifyIndexSignature", "yes")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()  # no server.ini.sig
    url = f"{gateway.base_url}/server.ini.sig"

    refused_in_both_languages(
        gateway, f"no index signature published ({url}) and Update/VerifyIndexSignature=yes",
        f"インデックスの署名が公開されておらず ({url})、Update/VerifyIndexSignature=yes です")


# -- hostile zips ------------------------------------------------------------------------------


def test_a_zip_member_escaping_the_install_directory_is_refused_in_japanese(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_zip_slip("P.4", "../x")  # re-signed: only the member is wrong
    gateway.publish()

    refused_in_both_languages(
        gateway, "zip member escapes the install directory: ../x",
        "zip のメンバーがインストール先ディレクトリの外を指しています: ../x")
    assert not (gateway.root / "lib" / "pattern" / "x").exists()


@pytest.mark.parametrize(
    ("name", "files", "english", "japanese"),
    [
        ("members", {f"m{number}": b"" for number in range(10_001)},
         "zip bomb refused: 10001 members, over the limit of 10000",
         "zip 爆弾として拒否しました: メンバーが 10001 個あり、上限の 10000 個を超えています"),
        ("size", {"zeros": bytes(5 * 1024 * 1024)},
         "unpacked size 5242880 bytes exceeds the limit of 4194304 bytes",
         "展開後のサイズ 5242880 バイトが上限の 4194304 バイトを超えています"),
    ],
)
def test_a_zip_bomb_is_refused_in_japanese(
    gateway: Gateway, name: str, files: dict[str, bytes], english: str, japanese: str
) -> None:
    gateway.set("Update", "MaxDownloadMB", "1")  # unpacks to at most 4 MB
    gateway.tree.add_pattern("P.4", "1569700", files=files)  # signed: only unpacking refuses it
    gateway.publish()

    refused_in_both_languages(gateway, english, japanese)


def test_a_compression_ratio_only_a_bomb_has_is_refused_in_japanese_by_the_store(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("zeros", bytes(8 * 1024 * 1024))
    store = ComponentStore(tmp_path / "root", "virus_pattern", "lib/pattern/vsapi")

    with pytest.raises(InstallError) as raised:
        store.install(archive, "1569800", max_unpacked_bytes=64 * 1024 * 1024)

    assert raised.value.reason.startswith("zip bomb refused: member zeros would unpack ")
    japanese = i18n.render(raised.value.why, "ja")
    assert japanese.startswith("zip 爆弾として拒否しました: メンバー zeros の展開率が "), japanese
    assert japanese.endswith(f" -> {8 * 1024 * 1024} バイト) で、上限の 200:1 を超えています")


# -- untrusted paths ---------------------------------------------------------------------------


def test_a_file_that_is_a_symbolic_link_is_refused_in_japanese_and_english_stays_exact(
    tmp_path: Path,
) -> None:
    (tmp_path / "real").write_text("secret\n")
    (tmp_path / "planted").symlink_to(tmp_path / "real")

    with pytest.raises(ownership.UntrustedPathError) as raised:
        ownership.read_plain(tmp_path, "planted", owner=0)

    assert str(raised.value) == raised.value.reason == f"{tmp_path / 'planted'} is a symbolic link"
    assert i18n.render(raised.value.why, "ja") == f"{tmp_path / 'planted'} はシンボリックリンクです"
