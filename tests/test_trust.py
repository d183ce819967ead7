"""What the administrator sees and does about trust (SPEC 3.1): authenticated versions in
``status`` and on the page, the index signature under yes / auto / no and the conditional
GET cache, the replay memory's legitimate cases, and ``trust reset`` on the CLI and page."""

from __future__ import annotations

import json

from flask.testing import FlaskClient

from tests.support.browser import csrf_of
from tests.support.gateway import Gateway

NOT_AUTHENTICATED = "versions not authenticated"


def status_json(gateway: Gateway) -> dict[str, dict[str, object]]:
    result = gateway.cli("status", "--json")
    assert result.code == 0, result.stderr
    return {item["id"]: item for item in json.loads(result.stdout)["components"]}


def status_line(gateway: Gateway, component_id: str) -> str:
    result = gateway.cli("status")
    return next(line for line in result.stdout.splitlines() if line.startswith(component_id + " "))


def test_versions_from_a_signed_index_are_authenticated_under_auto(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()

    assert gateway.cli("check").code == 0

    assert status_json(gateway)["virus_pattern"]["authenticated"] is True
    assert NOT_AUTHENTICATED not in status_line(gateway, "virus_pattern")
    shown = json.loads(gateway.cli("trust", "show", "--json").stdout)
    assert [source["base_url"] for source in shown["sources"]] == [gateway.base_url]


def test_versions_from_an_unsigned_index_are_shown_as_not_authenticated(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()

    assert gateway.cli("check").code == 0  # auto, never signed: accepted, but not authenticated

    assert status_json(gateway)["virus_pattern"]["authenticated"] is False
    assert NOT_AUTHENTICATED in status_line(gateway, "virus_pattern")


def test_verify_index_signature_no_never_asks_for_the_signature(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    gateway.set("Update", "VerifyIndexSignature", "no")

    assert gateway.cli("check").code == 0

    assert not gateway.server.requests_for("/server.ini.sig")
    assert status_json(gateway)["virus_pattern"]["authenticated"] is False


def test_verify_index_signature_yes_accepts_a_signed_index(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.set("Update", "VerifyIndexSignature", "yes")
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()

    assert gateway.cli("update", "virus_pattern").code == 0

    assert status_json(gateway)["virus_pattern"]["authenticated"] is True


def test_a_304_keeps_the_verified_state_without_fetching_the_signature_again(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("check").code == 0
    before = len(gateway.server.requests)

    assert gateway.cli("check").code == 0

    assert [(r.path, r.status) for r in gateway.server.requests[before:]] == [("/server.ini", 304)]
    assert status_json(gateway)["virus_pattern"]["authenticated"] is True


def test_a_304_of_an_index_cached_unsigned_fetches_the_signature_once_yes_asks_for_it(
    gateway: Gateway,
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("check").code == 0  # cached as unsigned
    gateway.tree.sign_ini()  # the source starts signing the same bytes
    gateway.set("Update", "VerifyIndexSignature", "yes")

    assert gateway.cli("check").code == 0

    assert status_json(gateway)["virus_pattern"]["authenticated"] is True
    before = len(gateway.server.requests)
    assert gateway.cli("check").code == 0
    assert [(r.path, r.status) for r in gateway.server.requests[before:]] == [("/server.ini", 304)]


def test_a_newer_signed_index_is_accepted_after_a_signed_one(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()

    assert gateway.cli("update", "virus_pattern").code == 0

    assert status_json(gateway)["virus_pattern"]["current"] == "15.698.00"


def test_the_same_package_installs_again_as_the_same_version_after_a_rollback(gateway: Gateway) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    gateway.tree.add_pattern("P.4", "1569800")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    assert gateway.cli("rollback", "virus_pattern").code == 0

    result = gateway.cli("update", "virus_pattern")

    assert result.code == 0, result.stderr  # same bytes, same component, same version: no replay
    assert status_json(gateway)["virus_pattern"]["current"] == "15.698.00"


def test_trust_reset_of_an_unknown_component_is_a_usage_error(gateway: Gateway) -> None:
    result = gateway.cli("trust", "reset", "no_such_component")

    assert result.code == 2
    assert "unknown component(s): no_such_component" in result.stderr


def test_trust_reset_of_a_component_never_signed_says_so(gateway: Gateway) -> None:
    result = gateway.cli("trust", "reset", "virus_pattern", "--json")

    assert result.code == 0
    assert json.loads(result.stdout) == {"cleared": []}


def test_status_page_says_versions_not_authenticated_and_resets_the_signature_pin(
    gateway: Gateway, logged_in: FlaskClient
) -> None:
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("update", "virus_pattern").code == 0
    page = logged_in.get("/").get_data(as_text=True)
    assert "flag-unauthenticated" in page and NOT_AUTHENTICATED in page
    assert status_json(gateway)["virus_pattern"]["signed_before"] is True

    response = logged_in.post("/trust-reset", data={"csrf_token": csrf_of(page),
                                                    "component": "virus_pattern"})

    assert response.status_code == 302
    assert status_json(gateway)["virus_pattern"]["signed_before"] is False
    shown = logged_in.get("/").get_data(as_text=True)
    assert "virus_pattern: unsigned packages are accepted again" in shown


def test_trust_reset_on_the_page_needs_the_csrf_token(logged_in: FlaskClient) -> None:
    assert logged_in.post("/trust-reset", data={"component": "virus_pattern"}).status_code == 400


def test_without_signature_trust_anchors_auto_uses_a_signed_index_unauthenticated(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    gateway.set("Update", "VerifySignature", "no")
    gateway.set("Update", "SignatureCAFile", "")

    assert gateway.cli("update", "virus_pattern").code == 0

    assert status_json(gateway)["virus_pattern"]["authenticated"] is False
    gateway.set("Update", "VerifyIndexSignature", "yes")
    result = gateway.cli("check")
    assert result.code == 1
    assert "index signature rejected: no signature trust anchors configured" in gateway.cli("status").stdout


def test_trust_show_lists_signed_components_and_signing_sources(gateway: Gateway) -> None:
    gateway.tree.sign_index = True
    gateway.tree.add_pattern("P.4", "1569700")
    gateway.publish()
    assert gateway.cli("trust", "show").stdout.strip() == "nothing signed yet"
    assert gateway.cli("update", "virus_pattern").code == 0

    lines = gateway.cli("trust", "show").stdout.splitlines()

    assert [line.split(" (")[0] for line in lines] == [
        "signed component: virus_pattern 15.697.00", f"signed index: {gateway.base_url}",
    ]
