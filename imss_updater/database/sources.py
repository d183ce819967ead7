"""What is remembered per source: the last accepted server.ini and any Retry-After cool-down."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import psycopg2

from imss_updater.database.connection import Connection


@dataclass(frozen=True)
class CachedIndex:
    """The last accepted server.ini of a URL; ``signature`` is the index signature that
    verified it (None: none published, or not looked for: ``signature_checked`` says which)."""

    url: str
    etag: str | None
    last_modified: str | None
    body: bytes
    signature: bytes | None = None
    signature_checked: bool = False


@dataclass(frozen=True)
class SourceCooldown:
    base_url: str
    until: datetime.datetime
    reason: str


class SourcesMixin(Connection):
    """Read and record tb_source_cache and tb_source_cooldown."""

    # -- server.ini cache -----------------------------------------------------------------

    def cached_index(self, url: str) -> CachedIndex | None:
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT url, etag, last_modified, body, signature, signature_checked"
                " FROM tb_source_cache WHERE url = %s", (url,)
            )
            row = cursor.fetchone()
            if row is None:
                return None
            signature = bytes(row[4]) if row[4] is not None else None
            return CachedIndex(row[0], row[1], row[2], bytes(row[3]), signature, bool(row[5]))

    def store_index(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        body: bytes,
        *,
        signature: bytes | None = None,
        signature_checked: bool = False,
    ) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_source_cache (url, etag, last_modified, body, signature,"
                " signature_checked) VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (url) DO UPDATE SET etag = EXCLUDED.etag,"
                " last_modified = EXCLUDED.last_modified, body = EXCLUDED.body,"
                " signature = EXCLUDED.signature, signature_checked = EXCLUDED.signature_checked,"
                " fetched_at = now()",
                (url, etag, last_modified, psycopg2.Binary(body),
                 None if signature is None else psycopg2.Binary(signature), signature_checked),
            )

    # -- cool-down per source (Retry-After) ----------------------------------------------

    def source_cooldown(self, base_url: str) -> SourceCooldown | None:
        """Return the cool-down recorded for ``base_url`` (it may have ended), or None."""
        with self.transaction() as cursor:
            cursor.execute(
                "SELECT base_url, until, reason FROM tb_source_cooldown WHERE base_url = %s",
                (base_url,),
            )
            row = cursor.fetchone()
            return None if row is None else SourceCooldown(row[0], row[1], row[2])

    def set_source_cooldown(self, base_url: str, until: datetime.datetime, reason: str) -> None:
        with self.transaction() as cursor:
            cursor.execute(
                "INSERT INTO tb_source_cooldown (base_url, until, reason) VALUES (%s, %s, %s)"
                " ON CONFLICT (base_url) DO UPDATE SET until = EXCLUDED.until,"
                " reason = EXCLUDED.reason, recorded_at = now()",
                (base_url, until, reason),
            )

    def clear_source_cooldown(self, base_url: str) -> None:
        with self.transaction() as cursor:
            cursor.execute("DELETE FROM tb_source_cooldown WHERE base_url = %s", (base_url,))
