"""The update channel against a hostile network (SPEC 3.1), end to end.

Each attack is built only from genuine files the attacker could copy from the real source
(packages and signatures made by the genuine signer, old indexes it signed) or from
certificates the same CA issued for other purposes; the attacker rewrites server.ini,
deletes or swaps files. Each one is refused with its reason while the component installed
before stays installed and working. The tests named ``test_attack_*`` are the attacks the
README counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.autree import SigningPKI
from tests.support.gateway import CliResult, Gateway

PATTERN_LIVE = "lib/pattern/vsapi"


def components(gateway: Gateway) -> dict[str, dict[str, object]]:
    result = gateway.cli("status", "--json")
    assert result.code == 0, result.stderr
    return {item["id"]: item for item in json.loads(result.stdout)["components"]}


def last_reason(gateway: Gateway) -> str | None:
    with gateway.database() as database:
        return database.events(limit=1)[0].reason


def install_pattern(gateway: Gateway, version: str = "1569700") -> None:
    gateway.tree.add_pattern("P.4", version)
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 0, result.stderr


def assert_refused(result: CliResult, reason: str) -> None:
    assert result.code == 1, result.stdout
    assert reason in result.stderr, result.stderr


def assert_pattern_still(gateway: Gateway, version: str, serial: str) -> None:
    """The pattern installed before is still current, on disk and in the status."""
    assert components(gateway)["virus_pattern"]["current"] == version
    live = gateway.live(PATTERN_LIVE) / f"vsapi.{serial}"
    assert live.read_text() == f"pattern P.4 {version.replace('.', '')}\n"
    assert not list((gateway.root / "lib" / ".staging").iterdir())


# -- a signature proves who made the bytes, not which component or version they are --------------

def test_attack_freeze_by_relabel_an_old_signed_package_as_99_999_99_is_refused(gateway: Gateway) -> None:
    gateway.set("Update", "VerifySignature", "yes")
    install_pattern(gateway, "1569700")
    gateway.tree.entries["P.4"].version = "9999999"  # the same signed zip and .sig, relabelled
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "package already seen as virus_pattern 15.697.00")
    assert last_reason(gateway) == "package already seen as virus_pattern 15.697.00"
    assert_pattern_still(gateway, "15.697.00", "697")
    # Not frozen: the genuine next release still installs once the attacker is gone.
    install_pattern(gateway, "1569800")
    assert components(gateway)["virus_pattern"]["current"] == "15.698.00"


def test_attack_relabel_in_a_signed_index_breaks_its_signature_and_is_refused(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.set("Update", "VerifyIndexSignature", "yes")
    install_pattern(gateway, "1569700")
    gateway.tree.sign_index = False  # the attacker cannot sign: the old server.ini.sig stays
    gateway.tree.entries["P.4"].version = "9999999"
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "index signature rejected: signature invalid: content does not match")
    assert_pattern_still(gateway, "15.697.00", "697")
    assert components(gateway)["virus_pattern"]["available"] is None  # Unknown, not 99.999.99


def test_attack_swap_the_signed_engine_package_announced_as_the_virus_pattern_is_refused(
    gateway: Gateway,
) -> None:
    gateway.set("Update", "VerifySignature", "yes")
    gateway.tree.add_pattern("P.4", "1569700")
    engine = gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    assert gateway.cli("update", "--all").code == 0
    gateway.tree.entries["P.4"].path = engine.path  # the engine's zip (and its .sig) as the pattern
    gateway.tree.entries["P.4"].size = engine.size
    gateway.tree.entries["P.4"].version = "1569800"
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "package already seen as virus_engine 21.0.1008")
    assert_pattern_still(gateway, "15.697.00", "697")


# -- signed once, signed always -------------------------------------------------------------------

def test_attack_strip_the_sig_of_a_component_signed_before_is_refused_until_trust_reset(
    gateway: Gateway,
) -> None:
    install_pattern(gateway, "1569700")  # VerifySignature=auto (the default), validly signed
    assert components(gateway)["virus_pattern"]["signed_before"] is True
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.tree.remove_signature("P.4")  # the .sig now answers 404
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "this component was signed before; refusing an unsigned package")
    assert_pattern_still(gateway, "15.697.00", "697")
    reset = gateway.cli("trust", "reset", "virus_pattern")
    assert reset.code == 0, reset.stderr
    assert "unsigned packages accepted again" in reset.stdout
    assert gateway.cli("update", "virus_pattern").code == 0
    after = components(gateway)["virus_pattern"]
    assert (after["current"], after["unsigned"], after["signed_before"]) == ("15.698.00", True, False)


def test_attack_import_of_an_unsigned_package_for_a_component_signed_before_is_refused(
    gateway: Gateway, tmp_path: Path
) -> None:
    install_pattern(gateway, "1569700")
    gateway.tree.add_pattern("P.4", "1569800", sign=False)
    media = tmp_path / "usb"
    media.mkdir()
    package = media / "virus_pattern-1569800.zip"
    package.write_bytes(gateway.tree.payload_path("P.4").read_bytes())

    result = gateway.cli("import", str(package))

    assert_refused(result, "this component was signed before; refusing an unsigned package")
    assert_pattern_still(gateway, "15.697.00", "697")


# -- the index signature --------------------------------------------------------------------------

def test_attack_replay_of_an_old_signed_index_is_refused(gateway: Gateway) -> None:
    gateway.tree.sign_index = True  # VerifyIndexSignature=auto: verified, then pinned
    install_pattern(gateway, "1569700")
    old_index = gateway.tree.snapshot_index()
    install_pattern(gateway, "1569800")
    gateway.tree.restore_index(old_index)  # genuine, signed, and stale

    result = gateway.cli("check", "--json")

    assert result.code == 1
    reason = ("replayed index: server.ini announces pattern P.4 15.697.00, older than 15.698.00 "
              "in the signed index accepted before")
    assert reason in json.loads(result.stdout)["last_check"]["result"]
    assert_refused(gateway.cli("update", "virus_pattern"), reason)
    assert_pattern_still(gateway, "15.698.00", "698")


def test_attack_unsigned_index_under_verify_index_signature_yes_is_refused(gateway: Gateway) -> None:
    install_pattern(gateway, "1569700")
    gateway.set("Update", "VerifyIndexSignature", "yes")
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()  # no server.ini.sig

    result = gateway.cli("update", "--all")

    reason = (f"no index signature published ({gateway.base_url}/server.ini.sig) and "
              "Update/VerifyIndexSignature=yes")
    assert_refused(result, reason)
    assert_pattern_still(gateway, "15.697.00", "697")
    with gateway.database() as database:
        failed = {event.component for event in database.events(outcome="failure")}
    assert {"virus_pattern", "virus_engine"} <= failed  # every component of that source fails


def test_attack_index_signature_removed_after_pinning_is_refused_under_auto(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    install_pattern(gateway, "1569700")
    gateway.tree.sign_index = False
    gateway.tree.remove_index_signature()
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "this source signed its index before; refusing an unsigned index")
    assert_pattern_still(gateway, "15.697.00", "697")
    # The administrator who knows the source stopped signing clears the pin.
    assert gateway.cli("trust", "reset-index", gateway.base_url).code == 0
    assert gateway.cli("update", "virus_pattern").code == 0
    assert components(gateway)["virus_pattern"]["authenticated"] is False


def test_attack_index_signed_by_a_tls_certificate_is_refused(
    gateway: Gateway, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    install_pattern(gateway, "1569700")
    gateway.set("Update", "VerifyIndexSignature", "yes")
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    gateway.tree.sign_ini(signing_pki.tls_signer(tmp_path / "tls"))

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "index signature rejected: signer certificate lacks the code-signing")
    assert_pattern_still(gateway, "15.697.00", "697")


# -- who may sign ---------------------------------------------------------------------------------

def test_attack_package_signed_by_a_tls_server_certificate_is_refused(
    gateway: Gateway, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    install_pattern(gateway, "1569700")
    gateway.tree.add_pattern("P.4", "1569800", sign=False)
    signing_pki.tls_signer(tmp_path / "tls").sign_file(
        gateway.tree.payload_path("P.4"), gateway.tree.signature_file("P.4"))
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "signer certificate lacks the code-signing extended key usage "
                           "(has: TLS Web Server Authentication)")
    assert_pattern_still(gateway, "15.697.00", "697")


def test_attack_package_signed_with_the_intermediate_ca_key_is_refused(
    gateway: Gateway, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    install_pattern(gateway, "1569700")
    gateway.tree.add_pattern("P.4", "1569800", sign=False)
    signing_pki.ca_signer(tmp_path / "ca").sign_file(
        gateway.tree.payload_path("P.4"), gateway.tree.signature_file("P.4"))
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, "signer certificate is a CA certificate (basicConstraints CA:TRUE)")
    assert_pattern_still(gateway, "15.697.00", "697")


# -- zip bombs (signed, so only the unpacking can refuse them) -------------------------------------

@pytest.mark.parametrize(
    ("name", "files", "reason"),
    [
        ("size", {"zeros": bytes(5 * 1024 * 1024)},
         "unpacked size 5242880 bytes exceeds the limit of 4194304 bytes"),
        ("ratio", {"zeros": bytes(3 * 1024 * 1024)}, "zip bomb refused: member zeros would unpack"),
        ("count", {f"m{number}": b"" for number in range(10_001)},
         "zip bomb refused: 10001 members, over the limit of 10000"),
    ],
)
def test_attack_zip_bomb_is_refused_with_why(
    gateway: Gateway, name: str, files: dict[str, bytes], reason: str
) -> None:
    install_pattern(gateway, "1569700")
    gateway.set("Update", "MaxDownloadMB", "1")  # unpacks to at most 4 MB
    gateway.tree.add_pattern("P.4", "1569800", files=files)
    gateway.publish()

    result = gateway.cli("update", "virus_pattern")

    assert_refused(result, reason)
    assert_pattern_still(gateway, "15.697.00", "697")
