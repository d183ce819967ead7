"""Test support: ActiveUpdate trees (SPEC section 3) signed by a test PKI.

``SigningPKI`` is a root CA -> intermediate CA -> leaf signer made with ``cryptography``;
the leaf carries the code-signing extended key usage (SPEC 3.1). ``trust.pem`` holds the
root only, so a signature verifies only when it carries the intermediate (the default).
``tls_signer`` and ``ca_signer`` give the same chain with a signer the updater must refuse.
``AUTree`` writes payload zips, their detached ``.sig`` files and ``server.ini`` (signed as
``server.ini.sig`` when ``sign_index`` is set) into a directory that an HTTP server can
serve as a base URL, and has helpers to break one entry in each way the updater must reject.

Fixtures: ``signing_pki`` (session) and ``au_tree`` (an AUTree in ``tmp_path/"au"``).
"""

from __future__ import annotations

import datetime
import hashlib
import mmap
import random
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from imss_updater.source.serverini import signature_path

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_DAY = datetime.timedelta(days=1)
_CHUNK = 1 << 20


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key(key_type: str) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r}")


def _certificate(
    subject: str,
    key: PrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey,
    *,
    ca: bool,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    extended_usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING,
) -> x509.Certificate:
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "imss-updater tests"),
        x509.NameAttribute(NameOID.COMMON_NAME, subject),
    ])
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca and issuer else None),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )
    else:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([extended_usage]), critical=False
        )
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificates: Sequence[x509.Certificate]) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


class SigningPKI:
    """A root CA, an intermediate CA and a leaf update signer, written to ``directory``.

    ``trust_file`` (``trust.pem``) holds the root only; ``chain_file`` the root and the
    intermediate. ``expired_signer=True`` makes a leaf whose validity ended yesterday;
    ``signer_usage`` is the leaf's extended key usage (code signing unless told).
    """

    def __init__(
        self,
        directory: Path,
        *,
        key_type: str = "ec",
        expired_signer: bool = False,
        signer_usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING,
        name: str = "Test Update",
        _root: tuple[x509.Certificate, PrivateKey] | None = None,
        _intermediate: tuple[x509.Certificate, PrivateKey] | None = None,
    ) -> None:
        self.directory = directory
        self.key_type = key_type
        directory.mkdir(parents=True, exist_ok=True)
        now = _now()
        if _root is None:
            root_key = _new_key(key_type)
            root = _certificate(f"{name} Root CA", root_key, None, root_key, ca=True,
                                not_before=now - _DAY, not_after=now + 3650 * _DAY)
            _root = (root, root_key)
        self.root, self.root_key = _root
        if _intermediate is None:
            intermediate_key = _new_key(key_type)
            intermediate = _certificate(
                f"{name} Intermediate CA", intermediate_key, self.root, self.root_key, ca=True,
                not_before=now - _DAY, not_after=now + 3650 * _DAY,
            )
            _intermediate = (intermediate, intermediate_key)
        self.intermediate, self.intermediate_key = _intermediate
        self.signer_key = _new_key(key_type)
        if expired_signer:
            not_before, not_after = now - 30 * _DAY, now - _DAY
        else:
            not_before, not_after = now - _DAY, now + 365 * _DAY
        self.signer = _certificate(
            f"{name} Signer", self.signer_key, self.intermediate, self.intermediate_key,
            ca=False, not_before=not_before, not_after=not_after, extended_usage=signer_usage,
        )
        self.trust_file = directory / "trust.pem"
        self.trust_file.write_bytes(_pem([self.root]))
        self.chain_file = directory / "chain.pem"
        self.chain_file.write_bytes(_pem([self.root, self.intermediate]))

    def unknown(self, directory: Path) -> SigningPKI:
        """Return another PKI with its own root: its signatures fail against this trust."""
        return SigningPKI(directory, key_type=self.key_type, name="Unknown")

    def expired(self, directory: Path) -> SigningPKI:
        """Return a PKI with this root and intermediate but a signer that has expired."""
        return SigningPKI(
            directory, key_type=self.key_type, expired_signer=True,
            _root=(self.root, self.root_key),
            _intermediate=(self.intermediate, self.intermediate_key),
        )

    def tls_signer(self, directory: Path) -> SigningPKI:
        """Return a PKI with this root and intermediate whose signer is a TLS server
        certificate (extended key usage serverAuth, not codeSigning)."""
        return SigningPKI(
            directory, key_type=self.key_type, signer_usage=ExtendedKeyUsageOID.SERVER_AUTH,
            name="TLS", _root=(self.root, self.root_key),
            _intermediate=(self.intermediate, self.intermediate_key),
        )

    def ca_signer(self, directory: Path) -> SigningPKI:
        """Return a PKI with this root and intermediate that signs with the intermediate
        CA's own certificate and key (a CA as signer)."""
        pki = SigningPKI(
            directory, key_type=self.key_type, name="CA", _root=(self.root, self.root_key),
            _intermediate=(self.intermediate, self.intermediate_key),
        )
        pki.signer, pki.signer_key = self.intermediate, self.intermediate_key
        return pki

    def signature(self, data: bytes | memoryview, *, include_intermediate: bool = True) -> bytes:
        """Return a detached DER CMS signature over ``data`` (SHA-256, binary mode)."""
        builder = pkcs7.PKCS7SignatureBuilder().set_data(data).add_signer(
            self.signer, self.signer_key, hashes.SHA256()
        )
        if include_intermediate:
            builder = builder.add_certificate(self.intermediate)
        return builder.sign(
            serialization.Encoding.DER,
            [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary],
        )

    def sign_file(
        self, content: Path, signature: Path, *, include_intermediate: bool = True
    ) -> None:
        """Write a detached DER CMS signature over the file ``content`` to ``signature``."""
        if content.stat().st_size == 0:
            signature.write_bytes(self.signature(b"", include_intermediate=include_intermediate))
            return
        # mmap: a large payload is paged in by the kernel, not copied into a bytes object.
        with (
            content.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
            memoryview(mapped) as view,
        ):
            signature.write_bytes(self.signature(view, include_intermediate=include_intermediate))


def write_random_file(path: Path, size: int, seed: str = "payload") -> None:
    """Write ``size`` pseudo-random (reproducible from ``seed``) bytes to ``path`` in chunks."""
    generator = random.Random(hashlib.sha256(seed.encode()).digest())
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            piece = generator.randbytes(min(_CHUNK, remaining))
            handle.write(piece)
            remaining -= len(piece)


@dataclass
class AUEntry:
    """One published component: ``key`` is ``P.<id>`` or an engine NAME."""

    key: str
    is_engine: bool
    path: str
    version: str
    size: int


_PATTERN_STEMS = {
    "P.4": "vsapi",
    "P.8": "ssaptn",
    "P.16": "tmblack",
    "P.32": "tmwhite",
    "P.10001": "tmase/tmase",
    "P.48020000": "icrc/ioth",
}


def default_pattern_path(key: str, version: str) -> str:
    """``P.4``, ``1569700`` -> ``pattern/vsapi697.zip``; smart scan uses the full version."""
    stem = _PATTERN_STEMS.get(key, "p" + key.removeprefix("P."))
    if key == "P.48020000":
        return f"pattern/{stem}{version}.zip"
    number = version[-5:-2] if len(version) >= 5 else version
    return f"pattern/{stem}{number}.zip"


def default_engine_path(name: str, version: str) -> str:
    """``VSAPI_LINUX_X86_64``, ``21.0.1008`` -> ``engine/vsapi_linux_x64_v21001008.zip``."""
    stem = name.lower().replace("_x86_64", "_x64")
    parts = version.split(".")
    digits = parts[0] + "".join(
        part.zfill(2) if index == 1 else part.zfill(4) for index, part in enumerate(parts) if index
    )
    return f"engine/{stem}_v{digits}.zip"


class AUTree:
    """An ActiveUpdate tree under ``directory``: payload zips, ``.sig`` files, server.ini.

    Signing needs ``pki``; with None every entry is unsigned (a Control Manager source).
    ``sign_index`` makes ``write_ini`` also write ``server.ini.sig`` over ``server.ini``.
    """

    def __init__(self, directory: Path, pki: SigningPKI | None, *, sign_index: bool = False) -> None:
        self.directory = directory
        self.pki = pki
        self.sign_index = sign_index
        self.entries: dict[str, AUEntry] = {}
        directory.mkdir(parents=True, exist_ok=True)

    # -- building -----------------------------------------------------------------------

    def add_pattern(
        self,
        key: str = "P.4",
        version: str = "1569700",
        files: Mapping[str, bytes] | None = None,
        size_bytes: int | None = None,
        *,
        sign: bool = True,
        path: str | None = None,
        include_intermediate: bool = True,
    ) -> AUEntry:
        """Publish pattern ``key``: write its zip and (with ``sign``) its ``.sig``."""
        if files is None and size_bytes is None:
            files = {f"vsapi.{version[-5:-2] or version}": f"pattern {key} {version}\n".encode()}
        return self._add(key, False, version, files, size_bytes, sign=sign,
                         path=path or default_pattern_path(key, version),
                         include_intermediate=include_intermediate)

    def add_engine(
        self,
        name: str = "VSAPI_LINUX_X86_64",
        version: str = "21.0.1008",
        files: Mapping[str, bytes] | None = None,
        size_bytes: int | None = None,
        *,
        sign: bool = True,
        path: str | None = None,
        include_intermediate: bool = True,
    ) -> AUEntry:
        """Publish engine ``name``: write its zip and (with ``sign``) its ``.sig``."""
        if files is None and size_bytes is None:
            files = {f"lib{name.lower()}.so": f"engine {name} {version}\n".encode()}
        return self._add(name, True, version, files, size_bytes, sign=sign,
                         path=path or default_engine_path(name, version),
                         include_intermediate=include_intermediate)

    def _add(
        self,
        key: str,
        is_engine: bool,
        version: str,
        files: Mapping[str, bytes] | None,
        size_bytes: int | None,
        *,
        sign: bool,
        path: str,
        include_intermediate: bool,
    ) -> AUEntry:
        payload = self.directory / path
        payload.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(payload, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for member, data in (files or {}).items():
                archive.writestr(member, data)
            if size_bytes is not None:
                # Random data does not compress: store it, streamed in chunks.
                blob = payload.with_name(payload.name + ".blob")
                write_random_file(blob, size_bytes, seed=f"{key}-{version}")
                try:
                    archive.write(blob, f"{key.lower()}.bin", compress_type=zipfile.ZIP_STORED)
                finally:
                    blob.unlink()
        entry = AUEntry(key, is_engine, path, version, payload.stat().st_size)
        self.entries[key] = entry
        if sign:
            self.sign(key, include_intermediate=include_intermediate)
        return entry

    def sign(self, key: str, *, include_intermediate: bool = True) -> None:
        """(Re)write the ``.sig`` of ``key`` over its current payload."""
        if self.pki is None:
            raise ValueError("this AUTree has no signing PKI")
        self.pki.sign_file(self.payload_path(key), self.signature_file(key),
                           include_intermediate=include_intermediate)

    def payload_path(self, key: str) -> Path:
        return self.directory / self.entries[key].path

    def signature_file(self, key: str) -> Path:
        return self.directory / signature_path(self.entries[key].path)

    def ini_path(self) -> Path:
        return self.directory / "server.ini"

    def index_signature_file(self) -> Path:
        return self.directory / "server.ini.sig"

    def sign_ini(self, pki: SigningPKI | None = None) -> None:
        """(Re)write ``server.ini.sig`` over the current ``server.ini`` (by ``pki``, else ours)."""
        signer = pki or self.pki
        if signer is None:
            raise ValueError("this AUTree has no signing PKI")
        signer.sign_file(self.ini_path(), self.index_signature_file())

    def remove_index_signature(self) -> None:
        self.index_signature_file().unlink(missing_ok=True)

    def snapshot_index(self) -> tuple[bytes, bytes | None]:
        """Return server.ini and its signature as published now (to replay them later)."""
        signature = self.index_signature_file()
        return self.ini_path().read_bytes(), signature.read_bytes() if signature.exists() else None

    def restore_index(self, snapshot: tuple[bytes, bytes | None]) -> None:
        """Publish a snapshot of server.ini and its signature again, byte for byte."""
        body, signature = snapshot
        self.ini_path().write_bytes(body)
        if signature is None:
            self.remove_index_signature()
        else:
            self.index_signature_file().write_bytes(signature)

    def write_ini(
        self,
        extra_lines: Sequence[str] = (),
        *,
        base_url: str = "http://127.0.0.1/activeupdate",
        pattern_lines: Sequence[str] = (),
        engine_lines: Sequence[str] = (),
    ) -> Path:
        """Write ``server.ini`` in the SPEC format and return its path. ``pattern_lines`` and
        ``engine_lines`` are appended inside [PATTERN] / [ENGINE]; ``extra_lines`` at the end."""
        lines = ["[Server]", f"Server.1={base_url}", "", "[PATTERN]"]
        lines += [
            f"{entry.key}={entry.path},{entry.version},{entry.size}"
            for entry in self.entries.values() if not entry.is_engine
        ]
        lines += [*pattern_lines, "", "[ENGINE]"]
        engines = [entry for entry in self.entries.values() if entry.is_engine]
        lines += [
            f"E.{number}={entry.key},{entry.path},{entry.version},{entry.size}"
            for number, entry in enumerate(engines, start=1)
        ]
        lines += [*engine_lines, ""]
        lines += [*extra_lines]
        path = self.ini_path()
        path.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
        if self.sign_index:
            self.sign_ini()
        return path

    # -- breaking -----------------------------------------------------------------------

    def corrupt_payload(self, key: str) -> None:
        """Flip one byte in the middle of the payload; its size and .sig stay as they were."""
        payload = self.payload_path(key)
        with payload.open("r+b") as handle:
            middle = payload.stat().st_size // 2
            handle.seek(middle)
            byte = handle.read(1)
            handle.seek(middle)
            handle.write(bytes([byte[0] ^ 0xFF]))

    def remove_signature(self, key: str) -> None:
        self.signature_file(key).unlink(missing_ok=True)

    def override_size(self, key: str, size: int) -> None:
        """Publish ``size`` in server.ini for ``key`` (call write_ini afterwards)."""
        self.entries[key].size = size

    def set_path(self, key: str, path: str) -> None:
        """Publish ``path`` in server.ini for ``key``; the files stay where they are."""
        self.entries[key].path = path

    def add_zip_slip(self, key: str, member: str = "../../evil") -> None:
        """Add a member whose name escapes the install directory; re-sign and re-size, so
        that only the zip member is wrong."""
        payload = self.payload_path(key)
        with zipfile.ZipFile(payload, "a") as archive:
            archive.writestr(zipfile.ZipInfo(member), b"escaped\n")
        self.entries[key].size = payload.stat().st_size
        if self.pki is not None and self.signature_file(key).exists():
            self.sign(key)


@pytest.fixture(scope="session")
def signing_pki(tmp_path_factory: pytest.TempPathFactory) -> SigningPKI:
    """A test PKI shared by the session; ``signing_pki.trust_file`` trusts its root."""
    return SigningPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def au_tree(tmp_path: Path, signing_pki: SigningPKI) -> Iterator[AUTree]:
    """An empty ActiveUpdate tree in ``tmp_path/"au"`` signed by ``signing_pki``."""
    yield AUTree(tmp_path / "au", signing_pki)


__all__ = [
    "AUEntry",
    "AUTree",
    "SigningPKI",
    "au_tree",
    "default_engine_path",
    "default_pattern_path",
    "signing_pki",
    "write_random_file",
]
