"""import: a package brought in by hand installs through the same crash-safe path."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from imss_updater import i18n
from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.database.db import Database
from imss_updater.run.importer import PackageError, identify, import_package, signature_beside
from imss_updater.run.updater import RunError, RunReport
from imss_updater.store import lock
from tests.support.autree import SigningPKI
from tests.support.gateway import Gateway


def make_package(directory: Path, name: str, files: dict[str, bytes], pki: SigningPKI | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    package = directory / name
    with zipfile.ZipFile(package, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    if pki is not None:
        pki.sign_file(package, signature_beside(package))
    return package


def run_import(gateway: Gateway, package: Path, **options: object) -> RunReport:
    with Database(gateway.dsn) as database:
        return import_package(
            database, gateway.root, package,
            component_id=options.pop("component_id", None),  # type: ignore[arg-type]
            version=options.pop("version", None),  # type: ignore[arg-type]
            **options,  # type: ignore[arg-type]
        )


def reasons(gateway: Gateway) -> list[str | None]:
    with Database(gateway.dsn) as database:
        return [event.reason for event in reversed(database.events(limit=100))]


def current(gateway: Gateway, component_id: str) -> str | None:
    with Database(gateway.dsn) as database:
        state = database.component_states()[component_id]
        return state.current_version


@pytest.fixture
def media(tmp_path: Path) -> Path:
    return tmp_path / "usb"


def test_signed_package_installs_restarts_and_is_logged_as_manual(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"pattern 697\n"}, signing_pki)
    report = run_import(gateway, package)
    assert report.ok, report.as_json()
    assert (gateway.live("lib/pattern/vsapi") / "vsapi.697").read_text() == "pattern 697\n"
    assert gateway.restarts() == ["scan"]
    assert gateway.events() == [("manual", "virus_pattern", "15.697.00", "success")]
    assert reasons(gateway) == [f"imported from {package}"]
    assert current(gateway, "virus_pattern") == "1569700"
    assert not list((gateway.root / "lib" / ".staging").iterdir())
    status = gateway.cli("status", "--json")
    assert '"last_run"' in status.stdout and "virus_pattern-1569700.zip" in status.stdout


def test_engine_package_named_with_underscore_restarts_both_services(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "virus_engine_21.0.1008.zip", {"libvsapi.so": b"engine\n"}, signing_pki)
    assert run_import(gateway, package).ok
    assert gateway.restarts() == ["scan", "policy"]
    assert gateway.events() == [("manual", "virus_engine", "21.0.1008", "success")]


def test_tampered_package_is_rejected_with_the_reason_and_nothing_changes(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    good = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"pattern 697\n"}, signing_pki)
    assert run_import(gateway, good).ok
    restarts = gateway.restarts()
    package = make_package(media, "virus_pattern-1569800.zip", {"vsapi.698": b"pattern 698\n" * 50},
                           signing_pki)
    data = bytearray(package.read_bytes())
    data[len(data) // 2] ^= 0xFF
    package.write_bytes(bytes(data))
    report = run_import(gateway, package)
    assert not report.ok
    assert str(report.outcomes[0].reason) == "signature invalid: content does not match the signature"
    assert (gateway.live("lib/pattern/vsapi") / "vsapi.697").exists()
    assert not (gateway.live("lib/pattern/vsapi") / "vsapi.698").exists()
    assert current(gateway, "virus_pattern") == "1569700"
    assert gateway.restarts() == restarts
    assert gateway.events()[-1] == ("manual", "virus_pattern", "15.698.00", "failure")
    assert not list((gateway.root / "lib" / ".staging").iterdir())


def test_unsigned_package_is_refused_when_signatures_are_required_and_flagged_when_auto(
    gateway: Gateway, media: Path
) -> None:
    package = make_package(media, "spyware_pattern-240100.zip", {"ssaptn.401": b"spy\n"}, None)
    gateway.set("Update", "VerifySignature", "yes")
    report = run_import(gateway, package)
    assert not report.ok
    assert str(report.outcomes[0].reason) == (
        "no signature beside the package (spyware_pattern-240100.sig) and Update/VerifySignature=yes"
    )
    assert current(gateway, "spyware_pattern") is None
    gateway.set("Update", "VerifySignature", "auto")
    assert run_import(gateway, package).ok
    with Database(gateway.dsn) as database:
        assert database.component_states()["spyware_pattern"].unsigned is True


def test_package_signed_by_an_unknown_signer_is_rejected(
    gateway: Gateway, media: Path, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    stranger = signing_pki.unknown(tmp_path / "stranger")
    package = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"x\n"}, stranger)
    report = run_import(gateway, package)
    assert not report.ok
    assert str(report.outcomes[0].reason or "").startswith("unknown signer: missing root or intermediate")


def test_options_identify_a_package_whose_name_says_nothing(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "vsapi697.zip", {"vsapi.697": b"pattern\n"}, signing_pki)
    with pytest.raises(PackageError, match="give --component"):
        run_import(gateway, package)
    with pytest.raises(PackageError, match="give --version"):
        run_import(gateway, package, component_id="virus_pattern")
    assert run_import(gateway, package, component_id="virus_pattern", version="15.697.00").ok
    assert current(gateway, "virus_pattern") == "1569700"


def test_file_names_are_identified_by_the_longest_catalog_id() -> None:
    catalog = list(DEFAULT_CATALOG)
    cases = {
        "virus_pattern-1569700.zip": ("virus_pattern", "1569700"),
        "virus_pattern_1569700.zip": ("virus_pattern", "1569700"),
        "virus_pattern-15.697.80.zip": ("virus_pattern", "1569780"),
        "intellitrap_exception_123400.zip": ("intellitrap_exception", "123400"),
        "intellitrap_pattern-123400.zip": ("intellitrap_pattern", "123400"),
        "spam_engine-9.2.1045.zip": ("spam_engine", "9.2.1045"),
    }
    for name, (component_id, raw) in cases.items():
        component, version = identify(Path(name), catalog, None, None)
        assert (component.id, version.raw) == (component_id, raw), name


def test_unknown_component_and_bad_versions_are_refused_before_anything_is_recorded(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "mystery_pattern-1.0.zip", {"a": b"a"}, signing_pki)
    with pytest.raises(PackageError, match="cannot tell the component"):
        run_import(gateway, package)
    with pytest.raises(PackageError, match="unknown component 'mystery_pattern'"):
        run_import(gateway, package, component_id="mystery_pattern")
    bad = make_package(media, "virus_pattern-latest.zip", {"a": b"a"}, signing_pki)
    with pytest.raises(PackageError, match="not a version"):
        run_import(gateway, bad)
    with pytest.raises(PackageError, match="no such file"):
        run_import(gateway, media / "virus_pattern-1569700.zip")
    assert gateway.events() == []


def test_older_or_equal_version_is_refused_unless_forced(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    newer = make_package(media, "virus_pattern-1569800.zip", {"vsapi.698": b"698\n"}, signing_pki)
    older = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"697\n"}, signing_pki)
    assert run_import(gateway, newer).ok
    for package, why in ((newer, "is the installed version"), (older, "older than the installed 15.698.00")):
        report = run_import(gateway, package)
        assert not report.ok
        assert why in str(report.outcomes[0].reason or "")
        assert "--force" in str(report.outcomes[0].reason or "")
    assert current(gateway, "virus_pattern") == "1569800"
    assert run_import(gateway, older, force=True).ok
    assert current(gateway, "virus_pattern") == "1569700"
    assert (gateway.live("lib/pattern/vsapi") / "vsapi.697").exists()


def test_unlicensed_component_is_refused(gateway: Gateway, media: Path, signing_pki: SigningPKI) -> None:
    gateway.set("License", "Antispam", "")
    package = make_package(media, "antispam_pattern-1234500.zip", {"tmase": b"p\n"}, signing_pki)
    report = run_import(gateway, package)
    assert not report.ok
    assert str(report.outcomes[0].reason) == "Antispam license is not activated"
    assert not gateway.live("lib/pattern/tmase").exists()
    assert gateway.restarts() == []


def test_failed_restart_rolls_the_import_back(gateway: Gateway, media: Path, signing_pki: SigningPKI) -> None:
    first = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"697\n"}, signing_pki)
    assert run_import(gateway, first).ok
    gateway.fail_flag.touch()
    second = make_package(media, "virus_pattern-1569800.zip", {"vsapi.698": b"698\n"}, signing_pki)
    report = run_import(gateway, second)
    assert not report.ok
    assert "scan service restart failed" in str(report.restart_error or "")
    assert "rolled back to 15.697.00" in str(report.outcomes[0].reason or "")
    assert report.outcomes[0].reason is not None and not isinstance(report.outcomes[0].reason, str)
    assert "スキャンサービスの再起動に失敗しました" in report.outcomes[0].reason.render("ja")
    assert current(gateway, "virus_pattern") == "1569700"


def test_import_while_another_process_downloads_fails_with_the_lock_message(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"697\n"}, signing_pki)
    with lock.download_lock(gateway.root), pytest.raises(RunError, match=lock.LOCK_MESSAGE_EN):
        # flock is per open file description: a second open in this process is refused too.
        run_import(gateway, package)
    assert current(gateway, "virus_pattern") is None


def test_a_package_imported_under_another_version_than_it_was_installed_as_is_refused(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"pattern 697\n"}, signing_pki)
    assert run_import(gateway, package).ok
    relabelled = media / "virus_pattern-1569800.zip"
    relabelled.write_bytes(package.read_bytes())
    signature_beside(relabelled).write_bytes(signature_beside(package).read_bytes())

    report = run_import(gateway, relabelled)

    assert not report.ok
    assert reasons(gateway)[-1] == "package already seen as virus_pattern 15.697.00"
    assert current(gateway, "virus_pattern") == "1569700"


def test_the_same_package_imported_again_with_force_is_no_replay(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    package = make_package(media, "virus_pattern-1569700.zip", {"vsapi.697": b"pattern 697\n"}, signing_pki)
    assert run_import(gateway, package).ok

    report = run_import(gateway, package, force=True)

    assert report.ok, report.as_json()


# -- a raw pattern file as seed 000 obtains it (lpt$vpn.###) ---------------------------------------


def raw_pattern(directory: Path, name: str, data: bytes, pki: SigningPKI | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    if pki is not None:
        pki.sign_file(path, signature_beside(path))
    return path


def installed_pattern(gateway: Gateway, media: Path, pki: SigningPKI, version: str) -> None:
    package = make_package(media, f"virus_pattern-{version}.zip", {"lpt$vpn.old": b"old\n"}, pki)
    assert run_import(gateway, package).ok


def test_a_raw_pattern_file_is_the_virus_pattern_at_the_number_in_its_name_with_the_installed_roll(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    installed_pattern(gateway, media, signing_pki, "1569700")
    path = raw_pattern(media, "lpt$vpn.698", b"raw pattern 698\n", signing_pki)
    assert signature_beside(path).name == "lpt$vpn.698.sig"

    result = gateway.cli("import", str(path))

    assert result.code == 0, result.stderr
    assert (gateway.live("lib/pattern/vsapi") / "lpt$vpn.698").read_bytes() == b"raw pattern 698\n"
    assert [p.name for p in gateway.live("lib/pattern/vsapi").iterdir()] == ["lpt$vpn.698"]
    assert current(gateway, "virus_pattern") == "1569800"
    assert gateway.events()[-1] == ("manual", "virus_pattern", "15.698.00", "success")
    assert gateway.restarts()[-1] == "scan"
    assert not list((gateway.root / "lib" / ".staging").iterdir())


def test_a_raw_pattern_number_past_999_rolls_over_and_an_older_one_needs_force(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    installed_pattern(gateway, media, signing_pki, "1599800")
    assert run_import(gateway, raw_pattern(media, "LPT$VPN.001", b"001\n", signing_pki)).ok  # any case
    assert current(gateway, "virus_pattern") == "1600100"  # 15.998.00 -> 16.001.00
    older = raw_pattern(media, "lpt$vpn.999", b"999\n", signing_pki)
    report = run_import(gateway, older)
    assert not report.ok
    assert reasons(gateway)[-1] == (
        "15.999.00 is older than the installed 16.001.00; use --force to install it anyway")


def test_a_raw_pattern_with_nothing_installed_needs_its_version_and_the_number_must_match(
    gateway: Gateway, media: Path, signing_pki: SigningPKI
) -> None:
    path = raw_pattern(media, "lpt$vpn.697", b"697\n", signing_pki)
    with pytest.raises(PackageError, match=r"pattern number 697 but not its roll.*give --version") as refused:
        run_import(gateway, path)
    assert i18n.render(refused.value.reason, "ja").endswith("--version を指定してください (例: 15.697.00)")
    with pytest.raises(PackageError, match=r"pattern number 697, --version says 15\.698\.00"):
        run_import(gateway, path, version="15.698.00")
    with pytest.raises(PackageError, match="raw virus_pattern file, --component says spyware_pattern"):
        run_import(gateway, path, component_id="spyware_pattern", version="15.697.00")
    assert gateway.events() == []
    assert run_import(gateway, path, version="15.697.00").ok
    assert current(gateway, "virus_pattern") == "1569700"


def test_a_raw_pattern_follows_the_same_signature_rules_as_a_package(
    gateway: Gateway, media: Path, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    installed_pattern(gateway, media, signing_pki, "1569700")  # signed: the component is pinned
    unsigned = raw_pattern(media, "lpt$vpn.698", b"698\n", None)
    report = run_import(gateway, unsigned)
    assert not report.ok
    assert "signed before" in str(report.outcomes[0].reason or "")
    gateway.set("Update", "VerifySignature", "yes")
    assert str(run_import(gateway, unsigned).outcomes[0].reason) == (
        "no signature beside the package (lpt$vpn.698.sig) and Update/VerifySignature=yes")
    stranger = raw_pattern(tmp_path / "other", "lpt$vpn.698", b"698\n", signing_pki.unknown(tmp_path / "x"))
    assert str(run_import(gateway, stranger).outcomes[0].reason or "").startswith("unknown signer")
    tampered = raw_pattern(tmp_path / "tampered", "lpt$vpn.698", b"698\n", signing_pki)
    tampered.write_bytes(b"699\n")
    assert not run_import(gateway, tampered).ok
    assert current(gateway, "virus_pattern") == "1569700"


def test_the_same_raw_pattern_renamed_to_another_number_is_refused_as_a_replay(
    gateway: Gateway, media: Path, signing_pki: SigningPKI, tmp_path: Path
) -> None:
    installed_pattern(gateway, media, signing_pki, "1569700")
    first = raw_pattern(media, "lpt$vpn.698", b"698\n", signing_pki)
    assert run_import(gateway, first).ok
    renamed = tmp_path / "renamed" / "lpt$vpn.699"
    renamed.parent.mkdir()
    renamed.write_bytes(first.read_bytes())
    signature_beside(renamed).write_bytes(signature_beside(first).read_bytes())
    assert not run_import(gateway, renamed).ok
    assert reasons(gateway)[-1] == "package already seen as virus_pattern 15.698.00"


def test_the_roll_of_a_raw_pattern_is_the_one_nearest_the_installed_version() -> None:
    from imss_updater.run.raw_pattern import parse_name, version_for
    from imss_updater.versions import Version

    installed = Version.parse("1569700")
    assert version_for(698, installed).display == "15.698.00"
    assert version_for(690, installed).display == "15.690.00"
    assert version_for(1, Version.parse("1599800")).display == "16.001.00"
    assert version_for(999, Version.parse("1600200")).display == "15.999.00"
    assert parse_name("lpt$vpn.123") == ("virus_pattern", 123)
    assert parse_name("lpt$vpn.12") is None and parse_name("lpt$vpn.1234") is None
    assert parse_name("other.123") is None
