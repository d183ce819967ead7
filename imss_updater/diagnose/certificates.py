"""Which certificate is missing when a server's certificate is not trusted (seed 003: a
missing root certificate and a missing intermediate certificate need different fixes).

Pure code over the chain the server sent (``probe.presented_chain``, leaf first): follow
the issuers from the leaf through the certificates sent; where the path stops tells which
one is missing:
- it ends in a root the server sent itself (self-signed) -> that root is not trusted;
- it ends in an intermediate whose issuer was not sent -> that root is not trusted;
- it ends at the leaf, whose issuer was not sent -> the server omits its intermediate
  certificate (public CAs never sign server certificates with a root; a private CA that
  does is named in the hint);
- the leaf is self-signed -> the server's own certificate is not trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imss_updater.source.probe import PresentedCertificate

Name = tuple[tuple[tuple[str, str], ...], ...]

# OpenSSL verify codes that mean "the chain does not reach a trusted root".
CHAIN_CODES = frozenset({2, 18, 19, 20, 21})
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}
CA_FILE_HINT_EN = "Update/CAFile (a PEM file of CA certificates; when it is empty, the system store)"
CA_FILE_HINT_JA = "Update/CAFile (CA 証明書の PEM ファイル。空の場合はシステムの証明書ストア)"


@dataclass(frozen=True)
class MissingCertificate:
    """What is missing: ``kind`` root, intermediate or self_signed, and the texts."""

    kind: str
    detail: str
    hint: str
    detail_ja: str
    hint_ja: str


def name_text(name: Name) -> str:
    """A certificate name as people read it: its common name, else ``O=..., OU=...``."""
    parts = [(key, value) for relative in name for key, value in relative]
    for key, value in parts:
        if key == "commonName":
            return value
    return ", ".join(f"{_SHORT.get(key, key)}={value}" for key, value in parts) or "(no name)"


def missing_certificate(chain: Sequence[PresentedCertificate]) -> MissingCertificate | None:
    """Given the chain a server sent (leaf first), name the certificate that keeps it from
    reaching a trusted root (see the module docstring); None when the chain is empty."""
    if not chain:
        return None
    leaf = chain[0]
    if leaf.subject == leaf.issuer:
        shown = name_text(leaf.subject)
        return MissingCertificate(
            "self_signed",
            f"the server's certificate '{shown}' is self-signed and not trusted",
            f"add the server's certificate to {CA_FILE_HINT_EN}, or give the server a certificate "
            "issued by a trusted CA",
            f"サーバの証明書 '{shown}' は自己署名で、信頼されていません",
            f"サーバの証明書を {CA_FILE_HINT_JA} に追加するか、信頼された CA が発行した証明書をサーバに"
            "設定してください")
    current, seen = leaf, [leaf]
    while True:
        if current is not leaf and current.subject == current.issuer:
            root = name_text(current.subject)
            return _root_missing(root, f"the server sent the root '{root}' itself, but it is not trusted",
                                 f"サーバはルート証明書 '{root}' を送信していますが、信頼されていません")
        issuer = next((c for c in chain if c.subject == current.issuer and c not in seen), None)
        if issuer is None:
            break
        current = issuer
        seen.append(issuer)
    missing = name_text(current.issuer)
    if current is not leaf:
        below = name_text(current.subject)
        return _root_missing(missing, f"the root certificate '{missing}' that issued the intermediate "
                             f"'{below}' is not trusted",
                             f"中間証明書 '{below}' を発行したルート証明書 '{missing}' が信頼されていません")
    published = f" (its CA publishes it at {leaf.ca_issuers[0]})" if leaf.ca_issuers else ""
    others = len(chain) - 1
    sent = (f"sent {others} other certificate(s), none of which issued it" if others
            else "sent only its own certificate")
    detail_ja = (f"中間証明書がありません: サーバの証明書は '{missing}' が発行したものですが、"
                 f"サーバは中間証明書 "
                 f"'{missing}' を送信していません")
    if others:
        detail_ja += f" (他に {others} 件の証明書を送信)"
    return MissingCertificate(
        "intermediate",
        f"missing intermediate certificate: the server {sent}, issued by '{missing}', and not the "
        f"intermediate certificate '{missing}'{published}",
        f"the server must send its intermediate certificate '{missing}' with its own (fix the "
        f"server's certificate chain); until then, add '{missing}' and its root to {CA_FILE_HINT_EN}. "
        f"If '{missing}' is itself a root (a private CA), add it to Update/CAFile",
        detail_ja,
        f"サーバが中間証明書 '{missing}' を自身の証明書と一緒に送信するよう、サーバの証明書チェーンを"
        f"修正してください。それまでは '{missing}' とそのルート証明書を {CA_FILE_HINT_JA} に追加して"
        f"ください。'{missing}' がルート証明書 (プライベート CA) の場合は Update/CAFile に追加してください")


def _root_missing(root: str, detail: str, detail_ja: str) -> MissingCertificate:
    return MissingCertificate(
        "root",
        f"missing root certificate: {detail}",
        f"add the root certificate '{root}' to {CA_FILE_HINT_EN}",
        f"ルート証明書がありません: {detail_ja}",
        f"ルート証明書 '{root}' を {CA_FILE_HINT_JA} に追加してください")
