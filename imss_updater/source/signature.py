"""Verify the detached CMS/PKCS#7 signature of a downloaded component (SPEC section 3).

``cryptography`` cannot verify CMS, so this runs ``openssl cms -verify`` (no shell), which
streams the content however large it is: from disk (``verify_detached``), or from its
standard input as a download arrives (``StreamedVerification``, fed by run.pipeline).
Only the configured trust file is trusted: the system CA directory and store are switched
off, so a certificate from a public web CA can never sign an update. Every failure becomes
a SignatureError whose ``reason`` is one line an administrator can act on (``why``: the same
as an ``i18n.Reason``, rendered in the reader's language; openssl's own text stays as it said
it, inside the frame).

A signer must also be made for signing code (SPEC 3.1): its certificate carries the
code-signing extended key usage and is not a CA certificate. OpenSSL 3.0 has no
``-purpose codesign`` (3.2 added one), so ``cms -verify`` runs with ``-purpose any`` and
writes out the signer certificates, and each is then read with ``openssl x509 -ext``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from imss_updater import process
from imss_updater.i18n import N_, Reason

log = logging.getLogger(__name__)

OPENSSL = "openssl"

NO_TRUST = N_("no signature trust anchors configured (Update/SignatureCAFile)")
CONTENT_MISMATCH = N_("signature invalid: content does not match the signature")
EXPIRED = N_("signer certificate expired")
MALFORMED = N_("malformed signature file")
CA_SIGNER = N_("signer certificate is a CA certificate (basicConstraints CA:TRUE); a CA never signs updates")
NOT_CODE_SIGNING = N_("signer certificate lacks the code-signing extended key usage")
NO_SIGNER = N_("signature names no usable signer certificate")
CODE_SIGNING = "Code Signing"  # how openssl names id-kp-codeSigning (1.3.6.1.5.5.7.3.3)
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)

# X.509 verify errors that mean "the chain does not reach a configured root".
_UNKNOWN_SIGNER_ERRORS = (
    "unable to get local issuer certificate",
    "unable to get issuer certificate",
    "unable to verify the first certificate",
    "self-signed certificate in certificate chain",
    "self signed certificate in certificate chain",
    "self-signed certificate",
    "self signed certificate",
)


class SignatureError(Exception):
    """The signature does not verify; ``why`` is one line saying why and what to fix (a
    Reason when worded here), ``reason`` the same in English."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)


def _cannot_verify(error: process.CommandError) -> SignatureError:
    return SignatureError(Reason(N_("cannot verify signature: %(reason)s"), {"reason": error.reason}))


def verify_detached(
    content: Path, signature: Path, trust_file: Path | None, *, timeout: float = 300.0
) -> None:
    """Given a file, its detached DER CMS signature and a PEM file of trust anchors, return
    if the signature is valid over the file's exact bytes and its signer chains to one of
    the anchors (intermediates may come from the signature or the trust file) and every
    signer certificate carries the code-signing extended key usage and is not a CA
    certificate. Raise SignatureError otherwise."""
    if trust_file is None or not trust_file.is_file():
        raise SignatureError(Reason(NO_TRUST))
    if not content.is_file():
        raise SignatureError(Reason(N_("content file not found: %(path)s"), {"path": str(content)}))
    if not signature.is_file():
        raise SignatureError(Reason(N_("signature file not found: %(path)s"), {"path": str(signature)}))
    try:
        result = process.run(_verify_argv(signature, trust_file, content), timeout=timeout, check=False)
    except process.CommandError as error:
        raise _cannot_verify(error) from error
    _judge(result, trust_file, timeout)
    log.debug("signature %s over %s verified", signature, content)


class StreamedVerification:
    """``verify_detached`` for content that is still arriving: openssl reads it on its
    standard input as it is ``feed``-ed, and ``finish`` gives the verdict once all of it
    has arrived. Call ``finish`` or ``abort`` exactly once."""

    def __init__(self, signature: Path, trust_file: Path | None) -> None:
        """Start openssl. Raise SignatureError as verify_detached does for a missing trust
        or signature file, or if openssl cannot be started."""
        if trust_file is None or not trust_file.is_file():
            raise SignatureError(Reason(NO_TRUST))
        if not signature.is_file():
            raise SignatureError(Reason(N_("signature file not found: %(path)s"), {"path": str(signature)}))
        self._trust_file = trust_file
        try:
            self._openssl = process.start(_verify_argv(signature, trust_file, Path("/dev/stdin")))
        except process.CommandError as error:
            raise _cannot_verify(error) from error

    def feed(self, chunk: bytes) -> None:
        self._openssl.write(chunk)

    def finish(self, *, timeout: float = 300.0) -> None:
        """Return if the content fed so far matches the signature and its signer may sign
        updates (as verify_detached). Raise SignatureError otherwise."""
        try:
            result = self._openssl.finish(timeout)
        except process.CommandError as error:
            raise _cannot_verify(error) from error
        _judge(result, self._trust_file, timeout)

    def abort(self) -> None:
        self._openssl.kill()


def _verify_argv(signature: Path, trust_file: Path, content: Path) -> list[str]:
    return [
        OPENSSL, "cms", "-verify", "-binary", "-inform", "DER",
        "-in", str(signature), "-content", str(content),
        "-CAfile", str(trust_file), "-no-CApath", "-no-CAstore",
        # The chain's purpose is checked below, on the signer certificates written out here.
        "-purpose", "any", "-out", "/dev/null", "-signer", "/dev/stdout",
    ]


def _judge(result: process.CommandResult, trust_file: Path, timeout: float) -> None:
    if result.returncode == 0:
        check_signers(result.stdout, timeout=timeout)
        return
    log.debug("openssl cms -verify failed: %s", result.stderr.strip())
    raise SignatureError(classify(result.stderr, trust_file))


def check_signers(pem_text: str, *, timeout: float = 60.0) -> None:
    """Given the PEM signer certificates of a verified signature, return if each one is an
    end-entity certificate with the code-signing extended key usage. Raise SignatureError
    naming the certificate otherwise (or if there is none)."""
    certificates = _PEM_BLOCK.findall(pem_text)
    if not certificates:
        raise SignatureError(Reason(NO_SIGNER))
    for certificate in certificates:
        argv = [OPENSSL, "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                "-ext", "basicConstraints,extendedKeyUsage"]
        try:
            result = process.run(argv, timeout=timeout, input_text=certificate + "\n")
        except process.CommandError as error:
            raise SignatureError(Reason(N_("cannot read the signer certificate: %(reason)s"),
                                        {"reason": error.reason})) from error
        reason = signer_reason(result.stdout)
        if reason is not None:
            raise SignatureError(reason)


def signer_problem(x509_text: str) -> str | None:
    """Given ``openssl x509 -noout -subject -ext basicConstraints,extendedKeyUsage`` output,
    return why the certificate may not sign updates (English), or None when it may."""
    reason = signer_reason(x509_text)
    return None if reason is None else str(reason)


def signer_reason(x509_text: str) -> Reason | None:
    """``signer_problem`` as a Reason (rendered in any language)."""
    lines = [line.strip() for line in x509_text.splitlines()]
    subject = next((line.removeprefix("subject=").strip() for line in lines
                    if line.startswith("subject=")), "unknown subject")
    constraints = _extension_value(lines, "X509v3 Basic Constraints")
    if constraints is not None and "CA:TRUE" in constraints.upper().replace(" ", ""):
        return Reason(N_("%(problem)s (%(subject)s)"), {"problem": Reason(CA_SIGNER), "subject": subject})
    usages = _extension_value(lines, "X509v3 Extended Key Usage")
    listed = [usage.strip() for usage in (usages or "").split(",") if usage.strip()]
    if CODE_SIGNING not in listed:
        has: str | Reason = ", ".join(listed) if listed else Reason(N_("no extended key usage"))
        return Reason(N_("%(problem)s (has: %(has)s) (%(subject)s)"),
                      {"problem": Reason(NOT_CODE_SIGNING), "has": has, "subject": subject})
    return None


def _extension_value(lines: list[str], name: str) -> str | None:
    """Return the value line that follows the extension header ``name:`` (or None)."""
    for position, line in enumerate(lines):
        if line.startswith(name + ":") and position + 1 < len(lines):
            return lines[position + 1]
    return None


def classify_failure(stderr: str, trust_file: Path) -> str:
    """Given the error output of a failed ``openssl cms -verify``, return the reason (English)."""
    return str(classify(stderr, trust_file))


def classify(stderr: str, trust_file: Path) -> Reason:
    """``classify_failure`` as a Reason: our wording in the reader's language, openssl's own
    text (a verify error, its last line) as it said it."""
    text = stderr.lower()
    # OpenSSL 3 ends a chain failure with ":Verify error: <X509 verify text>"; the content
    # digest failure says "content verify error" (lower case), which must not match here.
    verify_error = re.search(r"\bVerify error:\s*([^\n]+)", stderr)
    if "error loading file" in text:
        return Reason(N_("cannot load signature trust anchors from %(path)s: no certificate found"),
                      {"path": str(trust_file)})
    if "error reading smime content info" in text or "error reading s/mime" in text:
        return Reason(MALFORMED)
    if "type not signed data" in text or "not a signed data" in text:
        return Reason(MALFORMED)
    if verify_error is not None:
        detail = verify_error.group(1).strip()
        lowered = detail.lower()
        if "certificate has expired" in lowered:
            return Reason(EXPIRED)
        if "not yet valid" in lowered:
            return Reason(N_("signer certificate not yet valid (check the system clock)"))
        if any(marker in lowered for marker in _UNKNOWN_SIGNER_ERRORS):
            return Reason(N_("unknown signer: missing root or intermediate certificate (%(detail)s)"),
                          {"detail": detail})
        return Reason(N_("signer certificate rejected: %(detail)s"), {"detail": detail})
    if "content verify error" in text or "verification failure:" in text:
        return Reason(CONTENT_MISMATCH)
    if "no signers" in text or "signer certificate not found" in text:
        return Reason(NO_SIGNER)
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no error output"
    return Reason(N_("signature verification failed: %(detail)s"), {"detail": _short(last)})


def _short(openssl_line: str) -> str:
    """Drop OpenSSL's ``<thread>:error:<code>:<lib>:<func>:`` prefix and source location."""
    match = re.match(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:(.*?)(?::[^:]*\.c:\d+:.*)?$",
                     openssl_line)
    return match.group(1) if match else openssl_line
