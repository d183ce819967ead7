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

from imss_updater.i18n import N_, Reason
from imss_updater.source.probe import PresentedCertificate

Name = tuple[tuple[tuple[str, str], ...], ...]

# OpenSSL verify codes that mean "the chain does not reach a trusted root".
CHAIN_CODES = frozenset({2, 18, 19, 20, 21})
_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
          "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST"}
CA_FILE_HINT = N_("Update/CAFile (a PEM file of CA certificates; when it is empty, the system store)")


@dataclass(frozen=True)
class MissingCertificate:
    """What is missing: ``kind`` root, intermediate or self_signed, and the texts (Reasons;
    ``detail`` and ``hint`` are the English ones)."""

    kind: str
    said: Reason
    advice: Reason

    @property
    def detail(self) -> str:
        return str(self.said)

    @property
    def hint(self) -> str:
        return str(self.advice)


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
    ca_file = Reason(CA_FILE_HINT)
    if leaf.subject == leaf.issuer:
        return MissingCertificate(
            "self_signed",
            Reason(N_("the server's certificate '%(name)s' is self-signed and not trusted"),
                   {"name": name_text(leaf.subject)}),
            Reason(N_("add the server's certificate to %(ca_file)s, or give the server a certificate "
                      "issued by a trusted CA"), {"ca_file": ca_file}))
    current, seen = leaf, [leaf]
    while True:
        if current is not leaf and current.subject == current.issuer:
            root = name_text(current.subject)
            return _root_missing(root, Reason(N_("the server sent the root '%(root)s' itself, but it is "
                                                 "not trusted"), {"root": root}))
        issuer = next((c for c in chain if c.subject == current.issuer and c not in seen), None)
        if issuer is None:
            break
        current = issuer
        seen.append(issuer)
    missing = name_text(current.issuer)
    if current is not leaf:
        return _root_missing(missing, Reason(
            N_("the root certificate '%(root)s' that issued the intermediate '%(below)s' is not trusted"),
            {"root": missing, "below": name_text(current.subject)}))
    published: Reason | str = (Reason(N_(" (its CA publishes it at %(url)s)"), {"url": leaf.ca_issuers[0]})
                               if leaf.ca_issuers else "")
    others = len(chain) - 1
    detail = (Reason(N_("missing intermediate certificate: the server sent %(others)s other certificate(s), "
                        "none of which issued it, issued by '%(missing)s', and not the intermediate "
                        "certificate '%(missing)s'%(published)s"),
                     {"others": others, "missing": missing, "published": published}) if others
              else Reason(N_("missing intermediate certificate: the server sent only its own certificate, "
                             "issued by '%(missing)s', and not the intermediate certificate "
                             "'%(missing)s'%(published)s"), {"missing": missing, "published": published}))
    return MissingCertificate(
        "intermediate", detail,
        Reason(N_("the server must send its intermediate certificate '%(missing)s' with its own (fix the "
                  "server's certificate chain); until then, add '%(missing)s' and its root to %(ca_file)s. "
                  "If '%(missing)s' is itself a root (a private CA), add it to Update/CAFile"),
               {"missing": missing, "ca_file": ca_file}))


def _root_missing(root: str, detail: Reason) -> MissingCertificate:
    return MissingCertificate(
        "root",
        Reason(N_("missing root certificate: %(detail)s"), {"detail": detail}),
        Reason(N_("add the root certificate '%(root)s' to %(ca_file)s"),
               {"root": root, "ca_file": Reason(CA_FILE_HINT)}))
