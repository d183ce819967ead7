"""Test support: several gateways (nodes) on one database, each driven by real CLI processes
with its own IMSS_NODE, install root and state directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.gateway import REPO


def node_cli(dsn: str, node: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``imss-updater ARGS`` as its own process for gateway ``node`` (IMSS_NODE), with
    ``root`` as its install root and a state directory next to it."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "IMSS_NODE": node, "IMSS_DSN": dsn,
                   "IMSS_ROOT": str(root), "IMSS_STATE": str(root.parent / f"state-{node}")}
    return subprocess.run([sys.executable, "-m", "imss_updater.cli", *args], capture_output=True,
                          text=True, cwd=REPO, env=environment, timeout=120, check=False)
