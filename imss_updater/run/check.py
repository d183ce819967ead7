"""Check: read each source's server.ini (conditionally, once per source per run) and
record what it offers for every component."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence

from imss_updater import i18n
from imss_updater.catalog import Component, SourceRole
from imss_updater.i18n import N_, Reason
from imss_updater.run import fleet_member
from imss_updater.run.context import RunContext
from imss_updater.run.index_trust import IndexRefused, authenticate
from imss_updater.run.planner import Availability, Offer, offers_from_indexes
from imss_updater.settings import Settings
from imss_updater.source import serverini
from imss_updater.source.http import FetchError, HttpClient, HttpOptions, ProxySettings

log = logging.getLogger(__name__)

INDEX_NAME = "server.ini"
MAX_INDEX_BYTES = 4 << 20


def is_control_manager(base_url: str) -> bool:
    """Return True for a Control Manager source (``.../TvcsDownload/ActiveUpdate``)."""
    return "/tvcsdownload/" in base_url.lower() + "/"


def http_options(settings: Settings) -> HttpOptions:
    proxy = None
    if settings.proxy is not None:
        proxy = ProxySettings(
            settings.proxy.host, settings.proxy.port, settings.proxy.user, settings.proxy.password
        )
    return HttpOptions(
        ca_file=settings.ca_file,
        proxy=proxy,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=settings.retry_count,
        backoff=settings.retry_backoff,
        low_speed_bytes=settings.low_speed_bytes,
        low_speed_seconds=settings.low_speed_seconds,
        index_deadline=settings.index_deadline,
        download_deadline=settings.download_deadline,
    )


def remember_cooldown(context: RunContext, base: str, error: FetchError) -> None:
    """Record the cool-down a source asked for (Retry-After), if it asked for one."""
    if error.retry_after is not None:
        until, reason = error.retry_after, i18n.stored(error.why)  # rendered when asked again
        context.write("to record the source's cool-down",
                      lambda: context.database.set_source_cooldown(base, until, reason), None)


def base_url(component: Component, settings: Settings) -> str:
    if component.source is SourceRole.TMASE:
        return settings.tmase_server
    return settings.update_server


def fetch_offers(
    context: RunContext, catalog: Sequence[Component], settings: Settings, client: HttpClient
) -> dict[str, Offer]:
    """Fetch each distinct source's server.ini once (conditionally), record and return
    each component's Offer. An unreachable source makes its components Unknown."""
    base_urls = {component.id: base_url(component, settings) for component in catalog}
    indexes: dict[str, object] = {}
    # The leader mirrors the UpdateServer's index; a TMASEServerurl of its own is not mirrored.
    mirrored = {cid: base for cid, base in base_urls.items() if base == settings.update_server}
    member = fleet_member.member_indexes(
        context, settings, mirrored,
        lambda base, trust, unreachable: read_index(context, base, client, settings, trust=trust,
                                                    unreachable=unreachable),
    ) if mirrored else None
    if member is not None:  # a fleet member: the leader's mirror, for both roles
        base_urls, indexes = {**base_urls, **member[0]}, member[1]
    for base in dict.fromkeys(base_urls.values()):
        if base not in indexes:
            indexes[base] = read_index(context, base, client, settings)
        if not isinstance(indexes[base], serverini.SourceIndex):
            # One cause, one ERROR line, naming what it affects (the components' own failure
            # events say it again, at INFO in the log).
            affected = [component_id for component_id, url in base_urls.items() if url == base]
            log.error("update source %s: %s (affects %s)", base, indexes[base], ", ".join(affected))
    offers = offers_from_indexes(catalog, base_urls, indexes)
    for component in catalog:
        offer = offers[component.id]
        if offer.base_url and is_control_manager(offer.base_url) and not component.on_control_manager:
            # Control Manager never offers this component, whatever its server.ini says.
            offers[component.id] = Offer(Availability.ABSENT, base_url=offer.base_url,
                                         authenticated=offer.authenticated)
    failures = {str(index): index for index in indexes.values()
                if not isinstance(index, serverini.SourceIndex)}
    context.write("to record the check result", lambda: context.database.record_availability(
        [
            (
                component.id,
                offers[component.id].entry.version.raw if offers[component.id].entry else None,  # type: ignore[union-attr]
                offers[component.id].availability.value,
                none_or_str(offers[component.id].reason),
            )
            for component in catalog
        ],
        ok=not failures,
        text=i18n.stored(check_text([failures[key] for key in sorted(failures)])),
        authenticated={component.id: offers[component.id].authenticated for component in catalog},
    ), None)
    return offers


def check_text(failures: Sequence[object]) -> Reason:
    """The check's result as tb_update_status.last_check_text keeps it (``i18n.stored``): the
    sources' failures one after the other, or that the update source was reachable."""
    if not failures:
        return Reason(N_("update source reachable"))
    texts = [failure if isinstance(failure, Reason) else str(failure) for failure in failures]
    text: str | Reason = texts[0]
    for more in texts[1:]:
        text = Reason(N_("%(text)s; %(more)s"), {"text": text, "more": more})
    return text if isinstance(text, Reason) else Reason(N_("%(text)s"), {"text": text})


def none_or_str(reason: str | Reason | None) -> str | None:
    """A component's available_reason column: English (its readers show it as it is)."""
    return None if reason is None else str(reason)


def fetch_index(
    context: RunContext, base: str, client: HttpClient, settings: Settings, *,
    trust: tuple[str, ...] | None = None, unreachable: list[str] | None = None,
) -> serverini.SourceIndex | str:
    """``read_index`` with the reason in English (the fleet's mirror sync)."""
    index = read_index(context, base, client, settings, trust=trust, unreachable=unreachable)
    return index if isinstance(index, serverini.SourceIndex) else str(index)


def read_index(
    context: RunContext, base: str, client: HttpClient, settings: Settings, *,
    trust: tuple[str, ...] | None = None, unreachable: list[str] | None = None,
) -> serverini.SourceIndex | str | Reason:
    """Return the source's index (conditionally fetched, its signature checked as
    Update/VerifyIndexSignature asks), or the reason it cannot be used (a Reason, rendered
    per language).

    ``trust`` names the sources whose index pins apply (default: this one; a fleet mirror
    is held to its origins' pins). ``unreachable``, if given, gets the reason appended when
    the index could not be fetched at all (as opposed to fetched and refused).

    A source that asked to be left alone (429 or 503 with Retry-After) is not asked again
    before that time: until then the answer is the reason it gave, a failure, never a
    success (freshclam reports success during its cool-down; we do not).
    """
    url = f"{base}/{INDEX_NAME}"
    cooldown = context.write("to read the source's cool-down",
                             lambda: context.database.source_cooldown(base), None)
    if cooldown is not None:
        if cooldown.until > datetime.datetime.now(datetime.UTC):
            asked = i18n.restored(cooldown.reason)
            log.debug("not asking %s: %s", base, asked)
            if unreachable is not None:
                unreachable.append(str(asked))
            return asked
        context.write("to clear the source's cool-down",
                      lambda: context.database.clear_source_cooldown(base), None)
    cached = context.write("to read its copy of server.ini",
                           lambda: context.database.cached_index(url), None)
    try:
        result = client.fetch_index(
            url,
            etag=cached.etag if cached else None,
            last_modified=cached.last_modified if cached else None,
            max_bytes=MAX_INDEX_BYTES,
        )
    except FetchError as error:
        log.debug("cannot read %s: %s", url, error.reason)
        remember_cooldown(context, base, error)
        if unreachable is not None:
            unreachable.append(error.reason)
        return error.why
    if result.not_modified and cached is not None:
        body = cached.body
    elif result.body is not None:
        body = result.body
    else:
        return Reason(N_("%(url)s: empty answer"), {"url": url})
    try:
        index = serverini.parse(body.decode("utf-8", errors="replace"))
    except serverini.ServerIniError as error:
        log.debug("%s: %s", url, error)
        return Reason(N_("%(url)s: %(reason)s"), {"url": url, "reason": str(error)})
    try:
        verdict = authenticate(context, base, url, body, settings, client, cached=cached,
                               not_modified=result.not_modified, trust=trust)
    except IndexRefused as refused:
        log.debug("%s refused: %s", url, refused.reason)
        return Reason(N_("%(url)s: %(reason)s"), {"url": url, "reason": refused.why})
    index.authenticated = verdict.authenticated
    if not result.not_modified:
        etag, modified = result.etag, result.last_modified
        signature, checked = verdict.signature, verdict.checked
        context.write("to keep a copy of server.ini",
                      lambda: context.database.store_index(url, etag, modified, body, signature=signature,
                                                           signature_checked=checked), None)
    elif cached is not None and verdict.checked and (verdict.signature, verdict.checked) != (
        cached.signature, cached.signature_checked
    ):
        kept, signature, checked = cached, verdict.signature, verdict.checked
        context.write("to keep the index signature",
                      lambda: context.database.store_index(url, kept.etag, kept.last_modified, kept.body,
                                                           signature=signature, signature_checked=checked),
                      None)
    return index
