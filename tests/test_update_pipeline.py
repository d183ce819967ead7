"""The download pipeline end to end (run.fetch, run.pipeline): the package's bytes are
hashed, checked against their signature and unpacked as they arrive, and nothing is
installed unless all of them arrived and verified. Real HTTP server, real openssl, real
PostgreSQL; the installed pattern must stay current and the staging empty after each
refusal."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import psycopg2
import pytest

from imss_updater.source.signature import CONTENT_MISMATCH, EXPIRED
from tests.support.autree import SigningPKI
from tests.support.gateway import Gateway

PATTERN_LIVE = "lib/pattern/vsapi"
SIZE = 3 * 1024 * 1024


def install_first(gateway: Gateway) -> None:
    gateway.set("Update", "VerifySignature", "yes")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 0, result.stderr


def publish_large(gateway: Gateway) -> Path:
    """Publish 1569800 with a 3 MiB member; return the package's path."""
    entry = gateway.tree.add_pattern("P.4", "1569800", size_bytes=SIZE)
    gateway.publish()
    return gateway.tree.directory / entry.path


def package_requests(gateway: Gateway, path: str) -> int:
    return len([r for r in gateway.server.requests if r.path == "/" + path and r.method == "GET"])


def assert_first_still_installed(gateway: Gateway) -> None:
    with gateway.database() as database:
        assert database.component_states()["virus_pattern"].current_version == "1569700"
    assert (gateway.live(PATTERN_LIVE) / "vsapi.697").read_text() == "pattern P.4 1569700\n"
    assert not list((gateway.root / "lib" / ".staging").iterdir())


def recorded_digests(gateway: Gateway) -> set[str]:
    connection = psycopg2.connect(gateway.dsn)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT sha256 FROM tb_package_seen")
        found = {row[0] for row in cursor.fetchall()}
    connection.close()
    return found


def test_a_large_package_is_installed_whole_with_the_sha256_of_its_bytes(gateway: Gateway) -> None:
    install_first(gateway)
    package = publish_large(gateway)

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 0, result.stderr
    assert (gateway.live(PATTERN_LIVE) / "p.4.bin").stat().st_size == SIZE
    assert hashlib.sha256(package.read_bytes()).hexdigest() in recorded_digests(gateway)
    assert not list((gateway.root / "lib" / ".staging").iterdir())


def test_a_download_cut_midway_is_retried_and_streamed_afresh(gateway: Gateway) -> None:
    install_first(gateway)
    package = publish_large(gateway)
    path = gateway.tree.entries["P.4"].path
    gateway.server.cut_first("/" + path)

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 0, result.stderr
    assert package_requests(gateway, path) == 2, "the cut answer, then the whole one"
    installed = gateway.live(PATTERN_LIVE) / "p.4.bin"
    with zipfile.ZipFile(package) as bundle:
        assert installed.read_bytes() == bundle.read("p.4.bin")
    assert hashlib.sha256(package.read_bytes()).hexdigest() in recorded_digests(gateway)


def test_a_transfer_cut_every_time_installs_nothing(gateway: Gateway) -> None:
    install_first(gateway)
    publish_large(gateway)
    gateway.server.cut("/" + gateway.tree.entries["P.4"].path)

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 1
    assert "connection closed" in result.stderr, result.stderr
    assert_first_still_installed(gateway)


def test_a_package_changed_after_signing_is_refused_although_it_unpacked_as_it_arrived(
    gateway: Gateway,
) -> None:
    install_first(gateway)
    package = publish_large(gateway)
    rewritten = io.BytesIO()  # a sound zip of the same size, other bytes, the genuine .sig
    with zipfile.ZipFile(package) as genuine, zipfile.ZipFile(rewritten, "w") as forged:
        for info in genuine.infolist():
            data = genuine.read(info)
            forged.writestr(info, data[:-6] + b"forged" if len(data) > 6 else data)
    package.write_bytes(rewritten.getvalue())

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 1
    assert CONTENT_MISMATCH in result.stderr, result.stderr
    assert_first_still_installed(gateway)


def test_a_package_whose_signer_expired_is_refused_while_its_bytes_arrive(
    gateway: Gateway, signing_pki: SigningPKI, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    install_first(gateway)
    package = publish_large(gateway)
    # openssl judges the signer before it reads the content, and stops reading it.
    signing_pki.expired(tmp_path_factory.mktemp("expired")).sign_file(
        package, gateway.tree.signature_file("P.4"))

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 1
    assert EXPIRED in result.stderr, result.stderr
    assert_first_still_installed(gateway)


def test_a_missing_signature_under_verify_yes_is_refused_before_the_package_is_fetched(
    gateway: Gateway,
) -> None:
    install_first(gateway)
    publish_large(gateway)
    gateway.tree.signature_file("P.4").unlink()

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 1
    assert "no signature published" in result.stderr, result.stderr
    assert package_requests(gateway, gateway.tree.entries["P.4"].path) == 0
    assert_first_still_installed(gateway)
