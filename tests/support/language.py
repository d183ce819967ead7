"""Running the real CLI (a process of its own) in a language: ``--lang ja``, ``LANG=ja_JP.UTF-8``
or neither, with the test runner's own locale variables removed."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.gateway import REPO, Gateway, _split

HOW = ("option", "environment")  # the two ways an administrator asks for Japanese


def clean_environment() -> dict[str, str]:
    """This process's environment without LANG, LANGUAGE and LC_* (they would choose the language)."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("LANG", "LC_"))}


def cli_in(gateway: Gateway, how: str, *args: str, stdin: str = "",
           **environment: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI against ``gateway``, asking for Japanese the way ``how`` says
    (``option``: ``--lang ja``; ``environment``: ``LANG=ja_JP.UTF-8``; anything else: neither)."""
    command, rest = _split(args)
    env = {**clean_environment(), "PYTHONPATH": str(REPO), **environment}
    if how == "environment":
        env["LANG"] = "ja_JP.UTF-8"
    language = ["--lang", "ja"] if how == "option" else []
    return subprocess.run(
        [sys.executable, "-m", "imss_updater.cli", *command, *gateway.common_args(), *rest, *language],
        capture_output=True, text=True, cwd=REPO, timeout=120, input=stdin, env=env,
    )
