"""End-to-end: the real command line against a real database, HTTP source and restart scripts."""

from __future__ import annotations

import json

from imss_updater.store.install import ComponentStore
from tests.support.gateway import Gateway


def publish_basic(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_pattern("P.8", "240100")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()


def status(gateway: Gateway) -> dict[str, dict[str, object]]:
    result = gateway.cli("status", "--json")
    assert result.code == 0, result.stderr
    return {item["id"]: item for item in json.loads(result.stdout)["components"]}


def test_scheduled_run_installs_what_is_newer_and_restarts_each_service_once(gateway: Gateway) -> None:
    publish_basic(gateway)
    result = gateway.cli("run", "--once", "--json")
    assert result.code == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    assert {r["component"] for r in report["results"]} == {"virus_pattern", "spyware_pattern", "virus_engine"}
    assert gateway.restarts() == ["scan", "policy"]
    assert (gateway.live("lib/pattern/vsapi") / "vsapi.697").read_text() == "pattern P.4 1569700\n"
    components = status(gateway)
    assert components["virus_pattern"]["current"] == "15.697.00"
    assert components["virus_engine"]["current"] == "21.0.1008"
    assert components["virus_pattern"]["update_available"] is False
    events = json.loads(gateway.cli("logs", "--json").stdout)["events"]
    messages = {e["message"] for e in events}
    assert "Virus Pattern 15.697.00 was downloaded successfully." in messages
    assert all(e["kind"] == "scheduled" and e["outcome"] == "success" for e in events)
    japanese = {e["message_ja"] for e in events}
    assert "ウイルスパターンファイル15.697.00を正常にダウンロードしました。" in japanese


def test_check_that_finds_nothing_new_costs_one_conditional_request(gateway: Gateway) -> None:
    publish_basic(gateway)
    assert gateway.cli("run", "--once").code == 0
    before = len(gateway.server.requests)
    restarts = gateway.restarts()
    result = gateway.cli("run", "--once", "--json")
    assert result.code == 0
    assert json.loads(result.stdout)["summary"] == "All components are up to date."
    new = gateway.server.requests[before:]
    assert [(r.path, r.status) for r in new] == [("/server.ini", 304)]
    assert gateway.restarts() == restarts
    assert len(gateway.events()) == 3


def test_pattern_only_update_restarts_only_the_scan_service(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    assert gateway.restarts() == ["scan"]
    assert gateway.events() == [("manual", "virus_pattern", "15.697.00", "success")]


def test_tampered_payload_is_rejected_and_others_still_install(gateway: Gateway) -> None:
    publish_basic(gateway)
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.tree.corrupt_payload("P.4")
    gateway.tree.add_pattern("P.8", "240200")
    gateway.publish()
    result = gateway.cli("update", "--all", "--json")
    assert result.code == 1
    assert "signature invalid" in result.stderr
    components = status(gateway)
    assert components["virus_pattern"]["current"] == "15.697.00"
    assert components["spyware_pattern"]["current"] == "2.402.00"
    assert (gateway.live("lib/pattern/vsapi") / "vsapi.697").exists()
    assert not list((gateway.root / "lib" / ".staging").iterdir())


def test_size_mismatch_is_rejected_with_reason(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.override_size("P.4", gateway.tree.entries["P.4"].size + 10)
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    assert "size" in result.stderr.lower()
    assert status(gateway)["virus_pattern"]["current"] is None


def test_oversized_component_is_refused_without_downloading(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700", size_bytes=2 * 1024 * 1024)
    gateway.publish()
    gateway.set("Update", "MaxDownloadMB", "1")
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    assert "too large" in result.stderr
    assert not gateway.server.requests_for("/" + gateway.tree.entries["P.4"].path)


def test_missing_signature_fails_when_required_and_is_flagged_when_auto(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700", sign=False)
    gateway.publish()
    gateway.set("Update", "VerifySignature", "yes")
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    assert "no signature published" in result.stderr
    gateway.set("Update", "VerifySignature", "auto")
    assert gateway.cli("update", "virus_pattern").code == 0
    assert status(gateway)["virus_pattern"]["unsigned"] is True


def test_unknown_signer_is_rejected(gateway: Gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gateway.tree.add_pattern("P.4", "1569700")
    stranger = gateway.tree.pki.unknown(tmp_path / "stranger")  # type: ignore[union-attr]
    stranger.sign_file(gateway.tree.payload_path("P.4"), gateway.tree.signature_file("P.4"))
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    assert "unknown signer" in result.stderr


def test_path_escaping_the_source_is_rejected(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.set_path("P.4", "../../etc/passwd")
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    assert "escapes the update source" in result.stderr


def test_zip_slip_member_is_rejected(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_zip_slip("P.4", "../../evil")
    gateway.publish()
    result = gateway.cli("update", "virus_pattern")
    assert result.code == 1
    assert "escapes" in result.stderr
    assert not (gateway.root / "evil").exists()
    assert not (gateway.root / "lib" / "evil").exists()


def test_unreachable_source_shows_unknown_and_check_fails(gateway: Gateway, refused_port: int) -> None:
    gateway.set("Update", "UpdateServer", f"http://127.0.0.1:{refused_port}/au")
    gateway.set("Update", "TMASEServerurl", f"http://127.0.0.1:{refused_port}/au")
    result = gateway.cli("check", "--json")
    assert result.code == 1
    payload = json.loads(result.stdout)
    assert all(item["available"] is None for item in payload["components"])
    assert "refused" in payload["last_check"]["result"]


def test_missing_component_shows_zero_and_control_manager_japan_pattern_as_is(gateway: Gateway) -> None:
    cm = gateway.tree.directory / "TvcsDownload" / "ActiveUpdate"
    from tests.support.autree import AUTree

    cm_tree = AUTree(cm, None)
    cm_tree.add_pattern("P.4", "1569780", sign=False)
    cm_tree.add_engine("TMUFE_LINUX_X86_64", "3.0.1000", sign=False)
    cm_tree.write_ini()
    base = f"{gateway.base_url}/TvcsDownload/ActiveUpdate"
    gateway.set("Update", "UpdateServer", base)
    gateway.set("Update", "TMASEServerurl", base)
    result = gateway.cli("check", "--json")
    assert result.code == 0, result.stderr
    components = {c["id"]: c for c in json.loads(result.stdout)["components"]}
    assert components["virus_pattern"]["available"] == "15.697.80"
    assert components["virus_pattern"]["update_available"] is True
    assert components["spyware_pattern"]["available"] == "0.0"
    assert components["url_filter_engine"]["available"] == "0.0"  # never offered by CM
    assert components["url_filter_engine"]["update_available"] is False
    assert gateway.cli("update", "virus_pattern").code == 0  # CM serves no .sig: auto accepts
    assert status(gateway)["virus_pattern"]["unsigned"] is True


def test_distinct_tmase_source_is_fetched_separately_and_same_source_once(gateway: Gateway) -> None:
    publish_basic(gateway)
    gateway.cli("check")
    assert len(gateway.server.requests_for("/server.ini")) == 1
    tmase = gateway.tree.directory / "tmase"
    from tests.support.autree import AUTree

    tmase_tree = AUTree(tmase, gateway.tree.pki)
    tmase_tree.add_pattern("P.10001", "170000")
    tmase_tree.write_ini()
    gateway.set("Update", "TMASEServerurl", f"{gateway.base_url}/tmase")
    result = gateway.cli("check", "--json")
    components = {c["id"]: c for c in json.loads(result.stdout)["components"]}
    assert components["antispam_pattern"]["available"] == "1.700.00"
    assert components["virus_pattern"]["available"] == "15.697.00"
    assert len(gateway.server.requests_for("/tmase/server.ini")) == 1


def test_manual_update_of_unlicensed_component_is_refused_with_reason(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.10001", "170000")
    gateway.publish()
    gateway.set("License", "Antispam", "")
    result = gateway.cli("update", "antispam_pattern")
    assert result.code == 1
    assert "Antispam license is not activated" in result.stderr
    assert status(gateway)["antispam_pattern"]["licensed"] is False


def test_update_needs_either_all_or_ids(gateway: Gateway) -> None:
    assert gateway.cli("update").code == 2
    assert gateway.cli("update", "--all", "virus_pattern").code == 2
    result = gateway.cli("update", "no_such_component")
    assert result.code == 1 and "unknown component" in result.stderr


def test_rollback_restores_previous_generation_and_leaves_the_schedule(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    assert gateway.cli("update", "--all").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    assert status(gateway)["virus_pattern"]["current"] == "15.698.00"
    restarts_before = len(gateway.restarts())
    result = gateway.cli("rollback", "virus_pattern", "--json")
    assert result.code == 0, result.stderr
    assert status(gateway)["virus_pattern"]["current"] == "15.697.00"
    assert (gateway.live("lib/pattern/vsapi") / "vsapi.697").exists()
    assert gateway.restarts()[restarts_before:] == ["scan"]
    assert "virus_pattern" not in (gateway.get("Update", "ScheduledComponents") or "").split(",")
    assert status(gateway)["virus_pattern"]["scheduled"] is False
    events = json.loads(gateway.cli("logs", "--kind", "rollback", "--json").stdout)["events"]
    assert events[0]["message"] == "Virus Pattern was rolled back to version 15.697.00 successfully."
    expected_ja = "ウイルスパターンファイルを正常にバージョン15.697.00にロールバックしました。"
    assert events[0]["message_ja"] == expected_ja
    # Exactly one generation: a second rollback has nothing to go back to.
    again = gateway.cli("rollback", "virus_pattern")
    assert again.code == 1 and "no previous generation" in again.stderr
    # A rolled-back component is left alone by the schedule until re-enabled.
    assert json.loads(gateway.cli("run", "--once", "--json").stdout)["results"] == []
    assert status(gateway)["virus_pattern"]["current"] == "15.697.00"


def test_rollback_of_a_component_whose_licence_expired_is_refused_with_the_reason(
    gateway: Gateway,
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.set("License", "Antivirus", "2020-01-01")
    restarts_before = len(gateway.restarts())

    result = gateway.cli("rollback", "virus_pattern")

    assert result.code == 1
    assert "Antivirus license expired on 2020-01-01" in result.stderr
    assert status(gateway)["virus_pattern"]["current"] == "15.698.00"
    assert gateway.restarts()[restarts_before:] == []


def test_engine_rollback_restarts_policy_service_too(gateway: Gateway) -> None:
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1008")
    gateway.publish()
    gateway.cli("update", "virus_engine")
    gateway.tree.add_engine("VSAPI_LINUX_X86_64", "21.0.1010")
    gateway.publish()
    gateway.cli("update", "virus_engine")
    before = len(gateway.restarts())
    assert gateway.cli("rollback", "virus_engine").code == 0
    assert gateway.restarts()[before:] == ["scan", "policy"]


def test_failed_restart_rolls_back_this_runs_installs_and_records_why(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    gateway.fail_flag.touch()
    result = gateway.cli("update", "virus_pattern", "--json")
    assert result.code == 1
    assert "scan service restart failed" in result.stderr
    assert status(gateway)["virus_pattern"]["current"] == "15.697.00"
    assert gateway.restarts()[-2:] == ["scan", "scan"]  # the failed one, then after rollback
    last = json.loads(gateway.cli("logs", "--json", "--limit", "1").stdout)["events"][0]
    assert last["outcome"] == "failure"
    assert "rolled back to 15.697.00" in last["reason"]
    assert "scan service failed to start" in last["reason"]
    # The restart is still owed: the next run restarts once the service works again.
    gateway.fail_flag.unlink()
    gateway.tree.entries.clear()
    assert gateway.cli("run", "--once").code == 0
    assert gateway.restarts()[-1] == "scan"


def test_work_left_by_a_crash_after_the_switch_is_recorded_and_restarted(gateway: Gateway, tmp_path) -> None:  # type: ignore[no-untyped-def]
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    # Simulate a process killed right after switching the live link, before it recorded anything.
    ComponentStore(gateway.root, "virus_pattern", "lib/pattern/vsapi").install(
        gateway.tree.payload_path("P.4"), "1569700", max_unpacked_bytes=1 << 20
    )
    result = gateway.cli("run", "--once", "--json")
    assert result.code == 0, result.stderr
    assert status(gateway)["virus_pattern"]["current"] == "15.697.00"
    assert gateway.restarts() == ["scan"]
    events = json.loads(gateway.cli("logs", "--json").stdout)["events"]
    assert events[0]["reason"] == "recorded after an interrupted run"
    # Nothing is downloaded twice.
    assert not gateway.server.requests_for("/" + gateway.tree.entries["P.4"].path)


def test_logs_filter_by_kind_component_and_since(gateway: Gateway) -> None:
    publish_basic(gateway)
    gateway.cli("update", "virus_pattern")
    gateway.cli("run", "--once")
    manual = json.loads(gateway.cli("logs", "--kind", "manual", "--json").stdout)["events"]
    assert [e["component"] for e in manual] == ["virus_pattern"]
    engine = json.loads(gateway.cli("logs", "--component", "virus_engine", "--json").stdout)["events"]
    assert [e["kind"] for e in engine] == ["scheduled"]
    assert json.loads(gateway.cli("logs", "--since", "2999-01-01", "--json").stdout)["events"] == []
    every = json.loads(gateway.cli("logs", "--json").stdout)["events"]
    assert [e["time"] for e in every] == sorted((e["time"] for e in every), reverse=True)
    assert set(every[0]) >= {"time", "kind", "component", "version", "outcome", "message"}
    text = gateway.cli("logs", "--lang", "ja").stdout
    assert "を正常にダウンロードしました。" in text
