"""The index signature (SPEC 3.1): is the server.ini a source served genuine?

A source may publish ``B/server.ini.sig``, a detached CMS signature (DER) over the exact
bytes of ``B/server.ini`` by the same trust anchors as the packages. Under
``Update/VerifyIndexSignature``:

- ``no``: not looked at; the versions are not authenticated.
- ``yes``: an index without a valid signature is refused.
- ``auto``: a published signature must verify; once a source (its base URL) has served a
  valid one it is pinned (``tb_index_pin``) and must sign every index from then on. With no
  ``SignatureCAFile`` at all, an unpinned source's index is used unauthenticated.

A signed index must also not go back: a new signed body that announces an older version
of an entry than the signed index accepted before from the same URL is a replay of an old
index and is refused (``trust reset-index URL`` accepts a source that really went back).

The conditional GET cache keeps the signature that verified the cached body, so a 304
re-verifies the cached pair locally instead of trusting the answer; when it holds none and
one is needed, the signature is fetched again.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from imss_updater.database import trust as trust_db
from imss_updater.database.db import CachedIndex
from imss_updater.i18n import N_, Reason
from imss_updater.run.context import RunContext
from imss_updater.settings import Settings
from imss_updater.source import serverini, signature
from imss_updater.source.http import FetchError, HttpClient

log = logging.getLogger(__name__)

SIGNATURE_SUFFIX = ".sig"  # server.ini -> server.ini.sig
MAX_INDEX_SIGNATURE_BYTES = 1 << 20
NOT_AUTHENTICATED = "versions not authenticated"


class IndexRefused(Exception):
    """The index must not be used; ``why`` is the one-line cause (a Reason when worded here),
    ``reason`` the same in English."""

    def __init__(self, why: str | Reason) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)


@dataclass(frozen=True)
class IndexVerdict:
    """``authenticated``: the signature verified. ``signature`` and ``checked`` are what the
    cache keeps with the body (the signature bytes; whether one was looked for)."""

    authenticated: bool
    signature: bytes | None
    checked: bool


def authenticate(
    context: RunContext,
    base: str,
    url: str,
    body: bytes,
    settings: Settings,
    client: HttpClient,
    *,
    cached: CachedIndex | None,
    not_modified: bool,
    trust: tuple[str, ...] | None = None,
) -> IndexVerdict:
    """Given a source's base URL, the index URL and the body to use (``not_modified``: the
    cached body, on a 304), return how far it is authenticated. Raise IndexRefused if the
    setting, the source's pin or a replay check refuses it.

    ``trust`` names the sources whose pins apply to this one (default: itself). A fleet
    member reads its origins' index through the leader's mirror: the origins' pins apply
    (any one pinned requires a signature) and a valid signature pins them all. The replay
    check stays per URL: a mirror that goes back only freezes, which a leader can do anyway
    by not updating its mirror, and comparing with the origin's index would refuse a mirror
    that is merely still being written."""
    mode = settings.verify_index_signature
    if mode == "no":
        return IndexVerdict(False, None, checked=False)
    keys = trust or (base,)
    pinned_keys = [key for key in keys if trust_db.index_pinned(context.database, key)]
    pinned = bool(pinned_keys)
    signature_url = url + SIGNATURE_SUFFIX
    if mode == "auto" and not pinned and not settings.signature_ca_file:
        # Nothing to verify against: a published signature proves nothing here, and must
        # not refuse the index of a gateway that does not verify at all.
        log.warning("%s: no Update/SignatureCAFile to verify the index with; %s", base, NOT_AUTHENTICATED)
        return IndexVerdict(False, None, checked=False)
    if not_modified and cached is not None and cached.signature is not None:
        published: bytes | None = cached.signature
    elif not_modified and cached is not None and cached.signature_checked and mode == "auto" and not pinned:
        return IndexVerdict(False, None, checked=True)  # known to be unsigned; nothing asks for one
    else:
        try:
            published = client.fetch_optional(signature_url, max_bytes=MAX_INDEX_SIGNATURE_BYTES)
        except FetchError as error:
            raise IndexRefused(Reason(N_("cannot fetch the index signature: %(reason)s"),
                                      {"reason": error.why})) from error
    if published is None:
        if mode == "yes":
            raise IndexRefused(Reason(
                N_("no index signature published (%(url)s) and Update/VerifyIndexSignature=yes"),
                {"url": signature_url}))
        if pinned:
            raise IndexRefused(Reason(
                N_("this source signed its index before; refusing an unsigned index (%(url)s not "
                   "found; `imss-updater trust reset-index %(key)s` clears the pin)"),
                {"url": signature_url, "key": trust_db.pin_key(pinned_keys[0])}))
        log.info("%s: no index signature published; %s", base, NOT_AUTHENTICATED)
        return IndexVerdict(False, None, checked=True)
    _verify(body, published, settings)
    if not not_modified and cached is not None and cached.signature is not None:
        _refuse_going_back(body, cached.body)
    for key in keys:
        if key not in pinned_keys:
            log.info("%s signed its index: pinned, every index from it must be signed from now on", key)
        trust_db.pin_index(context.database, key)
    return IndexVerdict(True, published, checked=True)


def _verify(body: bytes, published: bytes, settings: Settings) -> None:
    trust = Path(settings.signature_ca_file) if settings.signature_ca_file else None
    # Private to this process (0700): openssl reads both from files.
    with tempfile.TemporaryDirectory(prefix="imss-index-") as directory:
        content = Path(directory) / "server.ini"
        detached = Path(directory) / "server.ini.sig"
        content.write_bytes(body)
        detached.write_bytes(published)
        try:
            signature.verify_detached(content, detached, trust)
        except signature.SignatureError as error:
            raise IndexRefused(Reason(N_("index signature rejected: %(reason)s"),
                                      {"reason": error.why})) from error


def _refuse_going_back(body: bytes, accepted_before: bytes) -> None:
    """Raise IndexRefused if ``body`` announces an older version of any entry than the signed
    index accepted before (a replayed old index: genuine, signed, and stale)."""
    if body == accepted_before:
        return
    try:
        new = serverini.parse(body.decode("utf-8", errors="replace"))
        old = serverini.parse(accepted_before.decode("utf-8", errors="replace"))
    except serverini.ServerIniError:
        return  # the caller reports an unreadable new body; an unreadable old one proves nothing
    for kind, new_entries, old_entries in (
        (N_("pattern"), new.patterns, old.patterns), (N_("engine"), new.engines, old.engines),
    ):
        for key, entry in new_entries.items():
            before = old_entries.get(key)
            if before is not None and entry.version < before.version:
                raise IndexRefused(Reason(
                    N_("replayed index: server.ini announces %(kind)s %(key)s %(version)s, older "
                       "than %(before)s in the signed index accepted before"),
                    {"kind": Reason(kind), "key": key, "version": entry.version.display,
                     "before": before.version.display}))
