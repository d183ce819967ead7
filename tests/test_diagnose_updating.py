"""diagnose as seed 004 Q8 walks it (steps 1 and 2 before the network), whether each
service runs (seed 001), and a missing root or intermediate certificate told apart by
name (seed 003) against real HTTPS servers on 127.0.0.1 with trustme-made chains."""

from __future__ import annotations

import json
from pathlib import Path

import trustme

from imss_updater.diagnose import to_text
from imss_updater.diagnose.certificates import missing_certificate
from imss_updater.source.probe import PresentedCertificate
from tests.support.chain import pem_file
from tests.support.gateway import Gateway
from tests.support.servers import ServerFactory, StaticServer
from tests.test_diagnose import checked, diagnose, publish, status_script, step, use_source


def first_names(gateway: Gateway) -> list[str]:
    return [s.name.split(":")[0] for s in diagnose(gateway)]


# -- seed 004 Q8 step 1 ----------------------------------------------------------------------------

def test_scheduled_update_turned_off_fails_first_with_the_way_to_turn_it_on(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    gateway.set("Update", "ScheduledUpdate", "no")
    steps = diagnose(gateway)
    scheduled = step(steps, "scheduled update")
    assert scheduled.ok is False
    assert "Update/ScheduledUpdate=no" in scheduled.detail
    assert "`imss-updater config set Update ScheduledUpdate yes`" in scheduled.hint
    names = [s.name.split(":")[0] for s in steps]
    assert names.index("scheduled update") < names.index("name resolution")
    assert step(steps, "HTTP status").ok is True  # the later steps still run

    gateway.set("Update", "ScheduledUpdate", "yes")
    gateway.set("Update", "ScheduleFrequency", "daily")
    gateway.set("Update", "ScheduleTime", "04:30")
    on = step(diagnose(gateway), "scheduled update")
    assert (on.ok, on.detail) == (True, "on: every day at 04:30 (gateway local time)")


def test_component_taken_off_the_schedule_by_a_rollback_is_named_with_the_command_to_add_it_back(
    gateway: Gateway,
) -> None:
    publish(gateway)
    gateway.set("Update", "ScheduledComponents", "virus_engine,spyware_pattern")
    steps = diagnose(gateway)
    off = step(steps, "components on the schedule")
    assert off.ok is False
    assert "Virus Pattern" in off.detail and "Virus Scan Engine" not in off.detail
    assert "rollback takes a component off the schedule" in off.hint
    assert "config set Update ScheduledComponents virus_engine," in off.hint
    command = off.hint.split("`")[1].split()
    assert gateway.cli("config", "set", *command[3:]).code == 0  # the hint's own command fixes it
    assert step(diagnose(gateway), "components on the schedule").ok is True


def test_component_not_updated_within_its_staleness_limit_is_listed_with_its_age(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    gateway.set("Staleness", "virus_pattern", "2")
    with gateway.database() as database, database.transaction() as cursor:
        cursor.execute("UPDATE tb_component_state SET last_success_at = now() - interval '5 days'"
                       " WHERE id = 'virus_pattern'")
    stale = step(diagnose(gateway), "stale components")
    assert stale.ok is False
    assert stale.detail.startswith("1 not updated for too long: Virus Pattern (last updated ")
    assert "5 days ago; Staleness/virus_pattern=2)" in stale.detail
    assert "available versions" in stale.hint


# -- seed 004 Q8 step 2 ----------------------------------------------------------------------------

def test_no_check_yet_skips_the_available_versions_and_a_failed_check_makes_them_unknown(
    gateway: Gateway, refused_port: int
) -> None:
    publish(gateway)
    steps = diagnose(gateway)
    assert step(steps, "last check").ok is None
    assert "no check has run yet" in step(steps, "last check").detail
    assert step(steps, "available versions").ok is None

    use_source(gateway, f"http://127.0.0.1:{refused_port}/activeupdate")
    assert gateway.cli("check").code == 1
    steps = diagnose(gateway)
    last = step(steps, "last check")
    assert last.ok is False and "failed" in last.detail and "network steps" in last.hint
    available = step(steps, "available versions")
    assert available.ok is False
    assert available.detail.startswith("Unknown for Virus Scan Engine, ")
    assert "network steps" in available.hint
    assert step(steps, "TCP connect").ok is False  # where it fails: step 3


def test_known_available_versions_pass_and_say_which_are_newer_than_installed(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    available = step(diagnose(gateway), "available versions")
    assert available.ok is True, available
    assert available.detail.startswith("2 known; newer than installed: ")
    assert "Virus Pattern - -> 15.697.00" in available.detail
    assert "not carried by the source (0.0): " in available.detail  # an ActiveUpdate source: no fault

    assert gateway.cli("update", "--all").code == 0
    after = step(diagnose(gateway), "available versions")
    assert after.ok is True and "newer than installed" not in after.detail


def test_zero_versions_from_a_control_manager_source_fail_with_its_download_settings_hint(
    gateway: Gateway, http_server: ServerFactory, tmp_path: Path
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    (tmp_path / "TvcsDownload").mkdir()  # the tree again, under a Control Manager's path
    (tmp_path / "TvcsDownload" / "ActiveUpdate").symlink_to(gateway.tree.directory)
    base_url = http_server(tmp_path).base_url + "/TvcsDownload/ActiveUpdate"
    gateway.tree.write_ini(base_url=base_url)
    use_source(gateway, base_url)
    checked(gateway)
    available = step(diagnose(gateway), "available versions")
    assert available.ok is False
    assert available.detail.startswith("0.0 for ")
    assert "URL Filtering Engine" not in available.detail.split(";")[0]  # never carried by a CM (Q4)
    assert "download settings" in available.hint


# -- services (seed 001) ---------------------------------------------------------------------------

def test_each_service_state_comes_from_its_status_command(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    gateway.set("Service", "PolicyServiceStatus", f"{status_script(gateway, 'policy-down', 3)} status")
    steps = diagnose(gateway)
    scan = step(steps, "service running: scan")
    policy = step(steps, "service running: policy")
    assert scan.ok is True and scan.detail.startswith("running (")
    assert policy.ok is False and policy.detail.startswith("not running (")
    assert "start the policy service" in policy.hint

    gateway.set("Service", "ScanServiceStatus", "/nonexistent/S99IMSS status")
    unknown = step(diagnose(gateway), "service running: scan")
    assert unknown.ok is False and unknown.detail.startswith("unknown: ")
    assert "Service/ScanServiceStatus" in unknown.hint


# -- Japanese ----------------------------------------------------------------------------------------

def test_the_report_in_japanese_words_the_new_steps_and_names_every_step(gateway: Gateway) -> None:
    publish(gateway)
    checked(gateway)
    gateway.set("Update", "ScheduledUpdate", "no")
    result = gateway.cli("diagnose", "--lang", "ja")
    assert result.code == 1
    assert "FAIL  予約アップデート: 無効 (Update/ScheduledUpdate=no)" in result.stdout
    assert "予約アップデートを有効にする" in result.stdout
    assert "PASS  サービスの稼働: scan service: 検索サービスは稼働しています" in result.stdout
    assert result.stdout.rstrip().endswith("1 件の確認が失敗しました")
    assert result.stderr.startswith("imss-updater: 予約アップデート: 無効")
    payload = json.loads(gateway.cli("diagnose", "--lang", "ja", "--json").stdout)
    assert payload["steps"][2]["id"] == "scheduled update"
    assert payload["steps"][2]["name"] == "予約アップデート"


# -- certificates (seed 003) -----------------------------------------------------------------------

def test_server_that_omits_its_intermediate_certificate_is_named_as_a_missing_intermediate(
    gateway: Gateway, chain_ca: trustme.CA, chain_leaf: trustme.LeafCert, servers: list[StaticServer],
    tmp_path: Path,
) -> None:
    publish(gateway)
    only_leaf = pem_file(tmp_path / "leaf.pem", chain_leaf.private_key_pem, chain_leaf.cert_chain_pems[0])
    server = StaticServer(gateway.tree.directory, chain_leaf,
                          context_hook=lambda context: context.load_cert_chain(only_leaf)).start()
    servers.append(server)
    use_source(gateway, server.base_url)
    gateway.set("Update", "CAFile", str(pem_file(tmp_path / "root.pem", chain_ca.cert_pem)))
    steps = diagnose(gateway)
    tls = step(steps, "TLS handshake")
    assert tls.ok is False, to_text(steps)
    assert "missing intermediate certificate: the server sent only its own certificate" in tls.detail
    assert "root certificate" not in tls.detail
    assert "fix the server's certificate chain" in tls.hint
    assert step(steps, "HTTP status").ok is None

    japanese = tls.texts("ja")
    assert "中間証明書がありません" in japanese[1] and "ルート証明書がありません" not in japanese[1]


def test_server_whose_root_is_not_trusted_is_named_as_a_missing_root_certificate(
    gateway: Gateway, chain_leaf: trustme.LeafCert, servers: list[StaticServer], other_ca_file: Path,
) -> None:
    publish(gateway)
    server = StaticServer(gateway.tree.directory, chain_leaf).start()  # sends leaf + intermediate
    servers.append(server)
    use_source(gateway, server.base_url)
    gateway.set("Update", "CAFile", str(other_ca_file))
    steps = diagnose(gateway)
    tls = step(steps, "TLS handshake")
    assert tls.ok is False, to_text(steps)
    assert "missing root certificate: the root certificate 'O=trustme" in tls.detail
    assert "that issued the intermediate 'O=trustme" in tls.detail
    assert "intermediate certificate" not in tls.detail.split("; ", 1)[1].split("issued")[0]
    assert tls.hint.startswith("add the root certificate 'O=trustme")
    assert "Update/CAFile" in tls.hint
    assert "ルート証明書がありません" in tls.texts("ja")[1]


def test_a_chain_that_verifies_is_unaffected_by_the_chain_probe(
    gateway: Gateway, chain_ca: trustme.CA, chain_leaf: trustme.LeafCert, servers: list[StaticServer],
    tmp_path: Path,
) -> None:
    publish(gateway)
    server = StaticServer(gateway.tree.directory, chain_leaf).start()
    servers.append(server)
    use_source(gateway, server.base_url)
    gateway.set("Update", "CAFile", str(pem_file(tmp_path / "root.pem", chain_ca.cert_pem)))
    assert step(diagnose(gateway), "TLS handshake").ok is True


def test_a_check_failing_on_a_missing_issuer_says_which_certificates_may_be_missing(
    gateway: Gateway, chain_leaf: trustme.LeafCert, servers: list[StaticServer], other_ca_file: Path,
) -> None:
    publish(gateway)
    server = StaticServer(gateway.tree.directory, chain_leaf).start()
    servers.append(server)
    use_source(gateway, server.base_url)
    gateway.set("Update", "CAFile", str(other_ca_file))
    result = gateway.cli("check")
    assert result.code == 1
    assert "unable to get local issuer certificate (missing intermediate or root certificate" in result.stderr
    assert "`imss-updater diagnose` names which" in result.stderr


def _cert(subject: str, issuer: str, ca_issuers: tuple[str, ...] = ()) -> PresentedCertificate:
    return PresentedCertificate(((("commonName", subject),),), ((("commonName", issuer),),), ca_issuers)


def test_a_chain_ending_in_a_root_the_server_sends_itself_names_that_root() -> None:
    missing = missing_certificate([_cert("gw.example", "Issuing CA"), _cert("Issuing CA", "Corp Root"),
                                   _cert("Corp Root", "Corp Root")])
    assert missing is not None and missing.kind == "root"
    assert "the server sent the root 'Corp Root' itself, but it is not trusted" in missing.detail


def test_a_self_signed_server_certificate_and_a_published_intermediate_are_named() -> None:
    own = missing_certificate([_cert("cm.example", "cm.example")])
    assert own is not None and own.kind == "self_signed" and "'cm.example' is self-signed" in own.detail
    published = missing_certificate([_cert("au.example", "Public TLS CA 1", ("http://ca.example/1.crt",))])
    assert published is not None and published.kind == "intermediate"
    assert "(its CA publishes it at http://ca.example/1.crt)" in published.detail
    assert missing_certificate([]) is None
