"""Detached CMS signature verification with real openssl, and the AUTree test builder."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from imss_updater.source import serverini, signature
from imss_updater.source.signature import SignatureError, verify_detached
from tests.support.autree import AUTree, SigningPKI


@pytest.fixture(scope="module")
def unknown_pki(tmp_path_factory: pytest.TempPathFactory, signing_pki: SigningPKI) -> SigningPKI:
    return signing_pki.unknown(tmp_path_factory.mktemp("unknown-pki"))


@pytest.fixture(scope="module")
def expired_pki(tmp_path_factory: pytest.TempPathFactory, signing_pki: SigningPKI) -> SigningPKI:
    return signing_pki.expired(tmp_path_factory.mktemp("expired-pki"))


@pytest.fixture
def content(tmp_path: Path) -> Path:
    path = tmp_path / "vsapi697.zip"
    path.write_bytes(b"PK\x03\x04 pretend zip " * 1000)
    return path


def _signed(pki: SigningPKI, content: Path, *, include_intermediate: bool = True) -> Path:
    sig = content.with_suffix(".sig")
    pki.sign_file(content, sig, include_intermediate=include_intermediate)
    return sig


def _reason(content: Path, sig: Path, trust: Path | None) -> str:
    with pytest.raises(SignatureError) as raised:
        verify_detached(content, sig, trust)
    return raised.value.reason


def test_good_signature_verifies(signing_pki: SigningPKI, content: Path) -> None:
    verify_detached(content, _signed(signing_pki, content), signing_pki.trust_file)


def test_changed_content_is_reported_as_not_matching(
    signing_pki: SigningPKI, content: Path
) -> None:
    sig = _signed(signing_pki, content)
    data = bytearray(content.read_bytes())
    data[len(data) // 2] ^= 0x01
    content.write_bytes(bytes(data))
    assert _reason(content, sig, signing_pki.trust_file) == signature.CONTENT_MISMATCH


def test_missing_intermediate_is_reported_as_unknown_signer(
    signing_pki: SigningPKI, content: Path
) -> None:
    sig = _signed(signing_pki, content, include_intermediate=False)
    reason = _reason(content, sig, signing_pki.trust_file)
    assert reason.startswith("unknown signer: missing root or intermediate certificate")
    assert "unable to get local issuer certificate" in reason


def test_intermediate_from_the_trust_file_completes_the_chain(
    signing_pki: SigningPKI, content: Path
) -> None:
    sig = _signed(signing_pki, content, include_intermediate=False)
    verify_detached(content, sig, signing_pki.chain_file)


def test_signer_from_another_root_is_unknown(
    signing_pki: SigningPKI, unknown_pki: SigningPKI, content: Path
) -> None:
    reason = _reason(content, _signed(unknown_pki, content), signing_pki.trust_file)
    assert reason.startswith("unknown signer: missing root or intermediate certificate (")


def test_certificates_in_the_system_ca_directory_are_not_trusted(
    signing_pki: SigningPKI,
    unknown_pki: SigningPKI,
    content: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Put the other root in a hashed CA directory that OpenSSL would use by default.
    system_dir = tmp_path / "certs"
    system_dir.mkdir()
    (system_dir / "other-root.pem").write_bytes(unknown_pki.trust_file.read_bytes())
    subprocess.run(["openssl", "rehash", str(system_dir)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_DIR", str(system_dir))
    monkeypatch.setenv("SSL_CERT_FILE", str(unknown_pki.trust_file))

    reason = _reason(content, _signed(unknown_pki, content), signing_pki.trust_file)

    assert reason.startswith("unknown signer")


def test_expired_signer_is_reported(
    signing_pki: SigningPKI, expired_pki: SigningPKI, content: Path
) -> None:
    reason = _reason(content, _signed(expired_pki, content), signing_pki.trust_file)
    assert reason == signature.EXPIRED


@pytest.mark.parametrize("garbage", [b"", b"this is not a signature", b"\x30\x82\x01\x00junk"])
def test_garbage_signature_is_malformed(
    signing_pki: SigningPKI, content: Path, garbage: bytes
) -> None:
    sig = content.with_suffix(".sig")
    sig.write_bytes(garbage)
    assert _reason(content, sig, signing_pki.trust_file) == signature.MALFORMED


def test_without_trust_anchors_nothing_verifies(
    signing_pki: SigningPKI, content: Path, tmp_path: Path
) -> None:
    sig = _signed(signing_pki, content)
    assert _reason(content, sig, None) == signature.NO_TRUST
    assert _reason(content, sig, tmp_path / "missing.pem") == signature.NO_TRUST


def test_trust_file_without_certificates_is_named(
    signing_pki: SigningPKI, content: Path, tmp_path: Path
) -> None:
    trust = tmp_path / "empty.pem"
    trust.write_text("not a certificate\n")
    reason = _reason(content, _signed(signing_pki, content), trust)
    assert reason == f"cannot load signature trust anchors from {trust}: no certificate found"


def test_missing_signature_file_is_named(
    signing_pki: SigningPKI, content: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "none.sig"
    reason = _reason(content, missing, signing_pki.trust_file)
    assert reason == f"signature file not found: {missing}"


def test_rsa_signatures_verify_too(tmp_path: Path, content: Path) -> None:
    rsa_pki = SigningPKI(tmp_path / "rsa", key_type="rsa")
    verify_detached(content, _signed(rsa_pki, content), rsa_pki.trust_file)


# -- who may sign (SPEC 3.1) --------------------------------------------------------------


def test_signer_carrying_the_code_signing_usage_is_accepted(signing_pki: SigningPKI, content: Path) -> None:
    verify_detached(content, _signed(signing_pki, content), signing_pki.trust_file)


def test_signer_with_only_the_tls_server_usage_is_refused(
    signing_pki: SigningPKI, content: Path, tmp_path: Path
) -> None:
    reason = _reason(content, _signed(signing_pki.tls_signer(tmp_path / "tls"), content),
                     signing_pki.trust_file)

    assert reason == (f"{signature.NOT_CODE_SIGNING} (has: TLS Web Server Authentication) "
                      "(CN=TLS Signer,O=imss-updater tests)")


def test_intermediate_ca_signing_with_its_own_key_is_refused(
    signing_pki: SigningPKI, content: Path, tmp_path: Path
) -> None:
    reason = _reason(content, _signed(signing_pki.ca_signer(tmp_path / "ca"), content),
                     signing_pki.trust_file)

    assert reason == f"{signature.CA_SIGNER} (CN=Test Update Intermediate CA,O=imss-updater tests)"


def test_signer_without_any_extended_key_usage_is_refused() -> None:
    text = "subject=CN=Plain\nX509v3 Basic Constraints: critical\n    CA:FALSE\n"

    assert signature.signer_problem(text) == (
        f"{signature.NOT_CODE_SIGNING} (has: no extended key usage) (CN=Plain)"
    )


def test_code_signing_among_several_usages_is_enough() -> None:
    text = ("subject=CN=Both\nX509v3 Extended Key Usage: \n"
            "    TLS Web Client Authentication, Code Signing\n")

    assert signature.signer_problem(text) is None


# -- the AUTree builder ------------------------------------------------------------------


def test_au_tree_signs_server_ini_and_replays_an_old_one_byte_for_byte(
    au_tree: AUTree, signing_pki: SigningPKI
) -> None:
    au_tree.sign_index = True
    au_tree.add_pattern("P.4", "1569700")
    au_tree.write_ini()
    verify_detached(au_tree.ini_path(), au_tree.index_signature_file(), signing_pki.trust_file)
    old = au_tree.snapshot_index()
    au_tree.add_pattern("P.4", "1569800")
    au_tree.write_ini()
    assert au_tree.snapshot_index() != old

    au_tree.restore_index(old)

    assert au_tree.snapshot_index() == old
    verify_detached(au_tree.ini_path(), au_tree.index_signature_file(), signing_pki.trust_file)


def test_au_tree_writes_a_server_ini_the_parser_reads(au_tree: AUTree) -> None:
    pattern = au_tree.add_pattern("P.4", "1569700")
    engine = au_tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    text = au_tree.write_ini(pattern_lines=["P.4.MergeCount=0"]).read_text()

    index = serverini.parse(text)

    assert pattern.path == "pattern/vsapi697.zip"
    assert engine.path == "engine/vsapi_linux_x64_v21001008.zip"
    assert "E.1=VSAPI_LINUX_X86_64,engine/vsapi_linux_x64_v21001008.zip,21.0.1008," in text
    assert index.patterns["P.4"].size == au_tree.payload_path("P.4").stat().st_size
    assert index.engines["VSAPI_LINUX_X86_64"].path == engine.path
    assert au_tree.signature_file("P.4") == au_tree.directory / "pattern" / "vsapi697.sig"


def test_au_tree_signatures_verify_and_tampering_breaks_them(
    au_tree: AUTree, signing_pki: SigningPKI
) -> None:
    au_tree.add_pattern("P.8", "123456", files={"ssaptn.123": b"spyware"})
    payload, sig = au_tree.payload_path("P.8"), au_tree.signature_file("P.8")
    verify_detached(payload, sig, signing_pki.trust_file)

    au_tree.corrupt_payload("P.8")

    assert _reason(payload, sig, signing_pki.trust_file) == signature.CONTENT_MISMATCH


def test_au_tree_large_payload_is_streamed_and_verifies(
    au_tree: AUTree, signing_pki: SigningPKI
) -> None:
    entry = au_tree.add_engine("ATSE_LINUX_X86_64", "1.2.3", size_bytes=8 * 1024 * 1024)
    assert entry.size > 8 * 1024 * 1024
    verify_detached(au_tree.payload_path(entry.key), au_tree.signature_file(entry.key),
                    signing_pki.trust_file)


def test_au_tree_tamper_helpers_change_only_what_they_name(
    au_tree: AUTree, signing_pki: SigningPKI
) -> None:
    au_tree.add_pattern("P.4", "1569700")
    au_tree.add_pattern("P.16", "170100")
    au_tree.add_engine("TMUFE_LINUX_X86_64", "3.0.1")

    au_tree.add_zip_slip("P.4")
    au_tree.remove_signature("P.16")
    au_tree.override_size("TMUFE_LINUX_X86_64", 42)
    au_tree.set_path("P.16", "../x.zip")
    index = serverini.parse(au_tree.write_ini().read_text())

    with zipfile.ZipFile(au_tree.payload_path("P.4")) as archive:
        assert "../../evil" in archive.namelist()
    verify_detached(au_tree.payload_path("P.4"), au_tree.signature_file("P.4"),
                    signing_pki.trust_file)
    assert index.patterns["P.4"].size == au_tree.payload_path("P.4").stat().st_size
    assert not (au_tree.directory / "pattern" / "tmblack701.sig").exists()
    assert index.engines["TMUFE_LINUX_X86_64"].size == 42
    with pytest.raises(serverini.PathEscapeError):
        serverini.payload_url("http://127.0.0.1/au", index.patterns["P.16"].path)


def test_unsigned_tree_writes_no_signatures(tmp_path: Path) -> None:
    tree = AUTree(tmp_path / "cm", None)
    tree.add_pattern(sign=False)
    assert tree.payload_path("P.4").exists()
    assert not tree.signature_file("P.4").exists()


def _streamed_reason(content: Path, sig: Path, trust: Path) -> str | None:
    """Feed ``content`` to a StreamedVerification in odd chunks; return its reason or None."""
    verification = signature.StreamedVerification(sig, trust)
    data = content.read_bytes()
    for start in range(0, len(data), 777):
        verification.feed(data[start:start + 777])
    try:
        verification.finish()
    except SignatureError as error:
        return error.reason
    return None


@pytest.mark.parametrize("case", ["good", "changed", "expired", "unknown", "no intermediate"])
def test_a_streamed_verification_gives_the_verdict_of_the_file_verification(
    case: str, signing_pki: SigningPKI, expired_pki: SigningPKI, unknown_pki: SigningPKI,
    content: Path,
) -> None:
    signer = {"expired": expired_pki, "unknown": unknown_pki}.get(case, signing_pki)
    sig = _signed(signer, content, include_intermediate=case != "no intermediate")
    if case == "changed":
        data = bytearray(content.read_bytes())
        data[-1] ^= 0x01
        content.write_bytes(bytes(data))
    try:
        verify_detached(content, sig, signing_pki.trust_file)
        expected = None
    except SignatureError as error:
        expected = error.reason

    assert _streamed_reason(content, sig, signing_pki.trust_file) == expected
    assert (expected is None) == (case == "good")
