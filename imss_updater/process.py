"""Run external commands: the only module that imports subprocess.

Commands are argument lists, never shell strings. Each run is logged with secrets
masked, bounded by a timeout, and its failure turned into a CommandError whose message
is one line an administrator can act on.

Commands get a minimal environment, not the daemon's: a fixed PATH, and LANG / LC_ALL when
the daemon has them. Nothing else passes — no IMSS_DSN, PGPASSWORD, proxy settings or
whatever else the service manager or an administrator's shell put there — so a restart
script (or anything it runs) never sees a secret.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from imss_updater import oserrors
from imss_updater.i18n import N_, Reason

log = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSED_ON = ("LANG", "LC_ALL")


class CommandError(Exception):
    """A command could not be started, timed out or exited non-zero; ``why`` says which (a
    Reason, rendered per language), ``reason`` the same in English (logs, contracts)."""

    def __init__(self, why: str | Reason, result: CommandResult | None = None) -> None:
        super().__init__(str(why))
        self.why = why
        self.reason = str(why)
        self.result = result


def cannot_run(shown: str, error: OSError) -> CommandError:
    """The CommandError for a command that could not be started (missing, not executable)."""
    if isinstance(error, PermissionError):
        return CommandError(Reason(N_("cannot run %(command)s: permission denied"), {"command": shown}))
    if isinstance(error, FileNotFoundError):
        return CommandError(Reason(N_("cannot run %(command)s: %(error)s: %(path)s"),
                                   {"command": shown, "error": oserrors.describe(error),
                                    "path": str(error.filename)}))
    return CommandError(Reason(N_("cannot run %(command)s: %(error)s"),
                               {"command": shown, "error": oserrors.describe(error)}))


def killed(shown: str, timeout: float) -> CommandError:
    return CommandError(Reason(N_("%(command)s did not finish within %(seconds)s s and was killed"),
                               {"command": shown, "seconds": f"{timeout:g}"}))


def exited(shown: str, status: int, output: str, result: CommandResult) -> CommandError:
    """The CommandError for a non-zero exit; ``output`` (the command's own words) as it is."""
    if output:
        return CommandError(Reason(N_("%(command)s exited with status %(status)s: %(output)s"),
                                   {"command": shown, "status": status, "output": output}), result)
    return CommandError(Reason(N_("%(command)s exited with status %(status)s"),
                               {"command": shown, "status": status}), result)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def split_command(text: str) -> list[str]:
    """Given a command line from a setting, return its argument list (shell quoting rules,
    but no shell runs it). Raise ValueError if it is empty or badly quoted."""
    argv = shlex.split(text)
    if not argv:
        raise ValueError("empty command")
    return argv


def describe(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    """Return the command as one loggable line with every secret replaced by ``***``."""
    line = shlex.join(argv)
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return line


def minimal_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment commands run with: PATH (SAFE_PATH), LANG and LC_ALL from
    ours if set, then ``extra``."""
    passed = {name: os.environ[name] for name in _PASSED_ON if name in os.environ}
    return {"PATH": SAFE_PATH, **passed, **(extra or {})}


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    check: bool = True,
    as_user: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Sequence[str] = (),
    input_text: str | None = None,
) -> CommandResult:
    """Run ``argv`` without a shell and return its result.

    ``as_user`` runs it through ``runuser -u USER --`` (only meaningful as root). It runs
    with minimal_environment(``env``), never with ours.
    Raise CommandError if it cannot be started, runs past ``timeout`` seconds (it is
    killed), or, with ``check``, exits non-zero; the reason names the command (secrets
    masked) and the last line of its error output.
    """
    full = [*(("runuser", "-u", as_user, "--") if as_user else ()), *argv]
    shown = describe(full, secrets)
    log.debug("running %s", shown)
    merged_env = minimal_environment(env)
    try:
        completed = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=merged_env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            check=False,
        )
    except (FileNotFoundError, PermissionError) as error:
        raise cannot_run(shown, error) from error
    except subprocess.TimeoutExpired as error:
        raise killed(shown, timeout) from error
    result = CommandResult(tuple(full), completed.returncode, completed.stdout, completed.stderr)
    if check and completed.returncode != 0:
        detail = _last_line(completed.stderr) or _last_line(completed.stdout)
        raise exited(shown, completed.returncode, _mask(detail, secrets), result)
    return result


class Fed:
    """A command whose standard input is written as the data arrives (``start``); its output
    goes to unnamed temporary files, so a chatty command can never block the writer."""

    def __init__(self, argv: Sequence[str], shown: str) -> None:
        self._argv = tuple(argv)
        self._shown = shown
        # Closed by finish() or kill(), which every user calls.
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._process = subprocess.Popen(
                self._argv, stdin=subprocess.PIPE, stdout=self._stdout, stderr=self._stderr,
                env=minimal_environment(), pipesize=1 << 20,
            )
        except BaseException:
            self._stdout.close()
            self._stderr.close()
            raise
        self.exited_early = False

    def write(self, data: bytes | memoryview) -> None:
        """Write to the command's input; once it has stopped reading, drop the data (its
        exit status and error output then say why, in ``finish``)."""
        stdin = self._process.stdin
        if self.exited_early or stdin is None:
            return
        try:
            stdin.write(data)
        except (BrokenPipeError, ValueError):
            self.exited_early = True

    def finish(self, timeout: float) -> CommandResult:
        """Close the input, wait for the command to exit and return its result. Raise
        CommandError if it runs past ``timeout`` seconds (it is killed)."""
        if self._process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            returncode = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as error:
            self.kill()
            raise killed(self._shown, timeout) from error
        outputs = []
        for handle in (self._stdout, self._stderr):
            handle.seek(0)
            outputs.append(handle.read().decode(errors="replace"))
            handle.close()
        return CommandResult(self._argv, returncode, outputs[0], outputs[1])

    def kill(self) -> None:
        """Stop the command (if it still runs) and reap it."""
        with contextlib.suppress(OSError, ValueError):
            if self._process.stdin is not None:
                self._process.stdin.close()
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._stdout.close()
        self._stderr.close()


def start(argv: Sequence[str]) -> Fed:
    """Start ``argv`` without a shell, with minimal_environment(), its input to be written
    with ``Fed.write``. Raise CommandError if it cannot be started."""
    shown = describe(argv)
    log.debug("running %s, fed as data arrives", shown)
    try:
        return Fed(argv, shown)
    except (FileNotFoundError, PermissionError) as error:
        raise cannot_run(shown, error) from error


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def interactive(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` on this terminal (stdin, stdout and stderr inherited, no timeout: a
    person is using it) and return its exit status. Raise CommandError if it cannot start."""
    log.debug("running %s interactively", describe(argv))
    try:
        return subprocess.call(list(argv), env=None if env is None else {**os.environ, **env})
    except OSError as error:
        raise CommandError(Reason(N_("cannot run %(command)s: %(error)s"),
                                  {"command": argv[0], "error": oserrors.describe(error)})) from error
