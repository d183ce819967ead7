"""One module per external effect (STYLE principle 2): only the named modules import these."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "imss_updater"

ALLOWED = {
    "subprocess": {"process"},
    # The HTTP seam: the client, the session it builds, and the mapping of their errors.
    "requests": {"source.http", "source.http_session", "source.http_errors"},
    "urllib3": {"source.http", "source.http_session", "source.http_errors"},
    "psycopg2": {
        "database.connection", "database.schema", "database.components", "database.events",
        "database.sources", "database.embedded_db", "database.psql", "database.fleet",
        "database.advisory",
    },
    "yagmail": {"notify.mail"},
    "smtplib": {"notify.mail"},
    "pysnmp": {"notify.snmp"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_each_external_effect_is_imported_by_its_own_module_only() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        for root in imported_roots(path) & set(ALLOWED):
            if module not in ALLOWED[root]:
                offenders.append(f"{module} imports {root}")
    assert offenders == []


def test_no_shell_and_no_unverified_tls_anywhere() -> None:
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "shell=True" not in text, path
        assert "verify=False" not in text, path
        assert "CERT_NONE" not in text or path.name == "probe.py", path
