"""Verify the detached CMS/PKCS#7 signature of a downloaded component (SPEC section 3).

``cryptography`` cannot verify CMS, so this runs ``openssl cms -verify`` (no shell), which
streams the content however large it is: from disk (``verify_detached``), or from its
standard input as a download arrives (``StreamedVerification``, fed by run.pipeline).
Only the configured trust file is trusted: the system CA directory and store are switched
off, so a certificate from a public web CA can never sign an update. Every failure becomes
a SignatureError whose ``reason`` is one line an administrator can act on.

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

log = logging.getLogger(__name__)

OPENSSL = "openssl"

NO_TRUST = "no signature trust anchors configured (Update/SignatureCAFile)"
CONTENT_MISMATCH = "signature invalid: content does not match the signature"
EXPIRED = "signer certificate expired"
MALFORMED = "malformed signature file"
CA_SIGNER = "signer certificate is a CA certificate (basicConstraints CA:TRUE); a CA never signs updates"
NOT_CODE_SIGNING = "signer certificate lacks the code-signing extended key usage"
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
    """The signature does not verify; ``reason`` is one line saying why and what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify_detached(
    content: Path, signature: Path, trust_file: Path | None, *, timeout: float = 300.0
) -> None:
    """Given a file, its detached DER CMS signature and a PEM file of trust anchors, return
    if the signature is valid over the file's exact bytes and its signer chains to one of
    the anchors (intermediates may come from the signature or the trust file) and every
    signer certificate carries the code-signing extended key usage and is not a CA
    certificate. Raise SignatureError otherwise."""
    if trust_file is None or not trust_file.is_file():
        raise SignatureError(NO_TRUST)
    if not content.is_file():
        raise SignatureError(f"content file not found: {content}")
    if not signature.is_file():
        raise SignatureError(f"signature file not found: {signature}")
    try:
        result = process.run(_verify_argv(signature, trust_file, content), timeout=timeout, check=False)
    except process.CommandError as error:
        raise SignatureError(f"cannot verify signature: {error.reason}") from error
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
            raise SignatureError(NO_TRUST)
        if not signature.is_file():
            raise SignatureError(f"signature file not found: {signature}")
        self._trust_file = trust_file
        try:
            self._openssl = process.start(_verify_argv(signature, trust_file, Path("/dev/stdin")))
        except process.CommandError as error:
            raise SignatureError(f"cannot verify signature: {error.reason}") from error

    def feed(self, chunk: bytes) -> None:
        self._openssl.write(chunk)

    def finish(self, *, timeout: float = 300.0) -> None:
        """Return if the content fed so far matches the signature and its signer may sign
        updates (as verify_detached). Raise SignatureError otherwise."""
        try:
            result = self._openssl.finish(timeout)
        except process.CommandError as error:
            raise SignatureError(f"cannot verify signature: {error.reason}") from error
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
    raise SignatureError(classify_failure(result.stderr, trust_file))


def check_signers(pem_text: str, *, timeout: float = 60.0) -> None:
    """Given the PEM signer certificates of a verified signature, return if each one is an
    end-entity certificate with the code-signing extended key usage. Raise SignatureError
    naming the certificate otherwise (or if there is none)."""
    certificates = _PEM_BLOCK.findall(pem_text)
    if not certificates:
        raise SignatureError("signature names no usable signer certificate")
    for certificate in certificates:
        argv = [OPENSSL, "x509", "-noout", "-subject", "-nameopt", "RFC2253",
                "-ext", "basicConstraints,extendedKeyUsage"]
        try:
            result = process.run(argv, timeout=timeout, input_text=certificate + "\n")
        except process.CommandError as error:
            raise SignatureError(f"cannot read the signer certificate: {error.reason}") from error
        reason = signer_problem(result.stdout)
        if reason is not None:
            raise SignatureError(reason)


def signer_problem(x509_text: str) -> str | None:
    """Given ``openssl x509 -noout -subject -ext basicConstraints,extendedKeyUsage`` output,
    return why the certificate may not sign updates, or None when it may."""
    lines = [line.strip() for line in x509_text.splitlines()]
    subject = next((line.removeprefix("subject=").strip() for line in lines
                    if line.startswith("subject=")), "unknown subject")
    constraints = _extension_value(lines, "X509v3 Basic Constraints")
    if constraints is not None and "CA:TRUE" in constraints.upper().replace(" ", ""):
        return f"{CA_SIGNER} ({subject})"
    usages = _extension_value(lines, "X509v3 Extended Key Usage")
    listed = [usage.strip() for usage in (usages or "").split(",") if usage.strip()]
    if CODE_SIGNING not in listed:
        has = ", ".join(listed) if listed else "no extended key usage"
        return f"{NOT_CODE_SIGNING} (has: {has}) ({subject})"
    return None


def _extension_value(lines: list[str], name: str) -> str | None:
    """Return the value line that follows the extension header ``name:`` (or None)."""
    for position, line in enumerate(lines):
        if line.startswith(name + ":") and position + 1 < len(lines):
            return lines[position + 1]
    return None


def classify_failure(stderr: str, trust_file: Path) -> str:
    """Given the error output of a failed ``openssl cms -verify``, return the reason."""
    text = stderr.lower()
    # OpenSSL 3 ends a chain failure with ":Verify error: <X509 verify text>"; the content
    # digest failure says "content verify error" (lower case), which must not match here.
    verify_error = re.search(r"\bVerify error:\s*([^\n]+)", stderr)
    if "error loading file" in text:
        return f"cannot load signature trust anchors from {trust_file}: no certificate found"
    if "error reading smime content info" in text or "error reading s/mime" in text:
        return MALFORMED
    if "type not signed data" in text or "not a signed data" in text:
        return MALFORMED
    if verify_error is not None:
        detail = verify_error.group(1).strip()
        lowered = detail.lower()
        if "certificate has expired" in lowered:
            return EXPIRED
        if "not yet valid" in lowered:
            return "signer certificate not yet valid (check the system clock)"
        if any(marker in lowered for marker in _UNKNOWN_SIGNER_ERRORS):
            return f"unknown signer: missing root or intermediate certificate ({detail})"
        return f"signer certificate rejected: {detail}"
    if "content verify error" in text or "verification failure:" in text:
        return CONTENT_MISMATCH
    if "no signers" in text or "signer certificate not found" in text:
        return "signature names no usable signer certificate"
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no error output"
    return f"signature verification failed: {_short(last)}"


def _short(openssl_line: str) -> str:
    """Drop OpenSSL's ``<thread>:error:<code>:<lib>:<func>:`` prefix and source location."""
    match = re.match(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:(.*?)(?::[^:]*\.c:\d+:.*)?$",
                     openssl_line)
    return match.group(1) if match else openssl_line
