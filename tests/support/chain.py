"""A certificate chain root -> intermediate -> server (seed 003: a missing root and a missing
intermediate told apart), and HTTPS servers started with it, stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.servers import SERVER_HOSTNAMES, StaticServer


@pytest.fixture(scope="module")
def chain_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def chain_leaf(chain_ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate issued by an intermediate of ``chain_ca`` (root -> intermediate -> leaf)."""
    return chain_ca.create_child_ca().issue_cert(*SERVER_HOSTNAMES)


@pytest.fixture
def servers() -> Iterator[list[StaticServer]]:
    """Servers the test starts (append them); each is stopped after the test."""
    started: list[StaticServer] = []
    yield started
    for server in started:
        server.stop()


def pem_file(path: Path, *blobs: trustme.Blob) -> Path:
    path.write_bytes(b"".join(blob.bytes() for blob in blobs))
    return path
