import datetime

from imss_updater.catalog import DEFAULT_CATALOG
from imss_updater.i18n import render
from imss_updater.run.planner import Availability, Mode, Offer, decide, offers_from_indexes, restarts_for
from imss_updater.settings import load
from imss_updater.source.serverini import Entry, parse
from imss_updater.versions import Version
from tests.data import KNOWN, default_rows

TODAY = datetime.date(2026, 11, 22)
BY_ID = {c.id: c for c in DEFAULT_CATALOG}


def offer(version: str) -> Offer:
    return Offer(Availability.KNOWN, Entry("p/x.zip", Version.parse(version), 10), "http://s")


def settings(**changes: str):
    rows = default_rows(TODAY)
    for key, value in changes.items():
        section, name = key.split("__")
        rows[(section, name)] = value
    return load(rows, KNOWN)


def test_scheduled_run_updates_only_newer_scheduled_licensed_enabled_components() -> None:
    current = {"virus_pattern": Version.parse("1569700"), "spyware_pattern": Version.parse("100"),
               "atse": None, "smart_scan_pattern": None}
    offers = {"virus_pattern": offer("1569800"), "spyware_pattern": offer("100"),
              "atse": offer("1.0"), "smart_scan_pattern": offer("1667900")}
    decisions = decide(DEFAULT_CATALOG, settings(), current, offers, Mode.SCHEDULED, None, TODAY)
    chosen = [d.component.id for d in decisions if d.update]
    assert chosen == ["atse", "virus_pattern"]
    by_id = {d.component.id: d for d in decisions}
    assert str(by_id["spyware_pattern"].reason) == "already up to date"
    assert "SmartScanEnabled" in str(by_id["smart_scan_pattern"].reason)
    assert not by_id["smart_scan_pattern"].refused  # a schedule is silent about disabled features


def test_scheduled_run_skips_components_off_the_schedule() -> None:
    s = settings(Update__ScheduledComponents="virus_pattern")
    offers = {c.id: offer("99999999") for c in DEFAULT_CATALOG}
    decisions = decide(DEFAULT_CATALOG, s, {}, offers, Mode.SCHEDULED, None, TODAY)
    assert [d.component.id for d in decisions] == ["virus_pattern"]


def test_manual_request_for_unlicensed_component_is_refused_with_reason() -> None:
    s = settings(License__Antispam="2026-01-31")
    decisions = decide(DEFAULT_CATALOG, s, {}, {"antispam_pattern": offer("1")}, Mode.MANUAL,
                       ["antispam_pattern"], TODAY)
    assert len(decisions) == 1
    assert decisions[0].refused and not decisions[0].update
    assert str(decisions[0].reason) == "Antispam license expired on 2026-01-31"
    assert render(decisions[0].reason, "ja") == "Antispamのライセンスは2026-01-31に期限切れになりました"


def test_unknown_availability_is_a_failure_and_absent_is_not() -> None:
    offers = {"virus_pattern": Offer(Availability.UNKNOWN, reason="connection refused"),
              "url_filter_engine": Offer(Availability.ABSENT)}
    decisions = decide(DEFAULT_CATALOG, settings(), {}, offers, Mode.MANUAL,
                       ["virus_pattern", "url_filter_engine"], TODAY)
    by_id = {d.component.id: d for d in decisions}
    assert by_id["virus_pattern"].refused and "connection refused" in str(by_id["virus_pattern"].reason)
    assert not by_id["url_filter_engine"].refused and not by_id["url_filter_engine"].update


def test_older_offer_is_never_installed() -> None:
    decisions = decide(DEFAULT_CATALOG, settings(), {"virus_engine": Version.parse("21.0.1008")},
                       {"virus_engine": offer("9.950.1006")}, Mode.MANUAL, ["virus_engine"], TODAY)
    assert not decisions[0].update


def test_one_scan_restart_and_policy_restart_only_for_engines() -> None:
    patterns = [BY_ID["virus_pattern"], BY_ID["spyware_pattern"]]
    assert restarts_for(patterns).scan and not restarts_for(patterns).policy
    assert restarts_for([*patterns, BY_ID["spam_engine"]]).policy
    assert not restarts_for([]).scan


def test_offers_mark_unreachable_sources_unknown_and_missing_entries_absent() -> None:
    index = parse("[PATTERN]\nP.4=p/v.zip,1569780,10\nP.8=p/s.zip,bad,10\n")
    base = {c.id: ("http://tmase" if c.source.value == "tmase" else "http://au") for c in DEFAULT_CATALOG}
    offers = offers_from_indexes(DEFAULT_CATALOG, base, {"http://au": index, "http://tmase": "timed out"})
    assert offers["virus_pattern"].display() == "15.697.80"
    assert offers["spyware_pattern"].availability is Availability.UNKNOWN
    assert offers["intellitrap_pattern"].display() == "0.0"
    assert offers["antispam_pattern"].display() is None
    assert offers["antispam_pattern"].reason == "timed out"
