"""The child process that runs packages' testinfra tests for the gate.

:class:`fleetctl.rollout.hosttests.TestPool` starts one with a minimal environment and
writes a JSON line per host: an id, the test files, the folder they live in, the socket
that links them to their host (:mod:`.testlink`), a home folder, the ``FLEETCTL_*``
release values and a timeout. This process imports pytest and testinfra once, then
forks a child per host, so hosts' tests run side by side, each starts in a few
milliseconds, and a package's modules are imported afresh for every host (what they
read from the environment at import time is that host's release). Each child answers
one JSON line, with its id: whether the tests passed and a one-line summary; one that
overruns its timeout is ended by an alarm and never answers.

The tests reach the host through the controller (:class:`.testbackend.HostLink`): it
runs their commands over the connection it deploys with, so they hold no key or password
and cost no key exchange (OpenSSH would start a process and a key exchange for every
command a test runs).
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import math
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import testinfra.backend

from fleetctl.rollout import testbackend

#: pytest's built-in plugins a gate has no use for; each costs every host's run CPU
#: (the exception plugins a garbage collection of the whole process)
UNUSED_PLUGINS = ("unraisableexception", "threadexception", "doctest", "junitxml",
                  "pastebin", "legacypath", "stepwise", "setuponly", "setupplan", "unittest",
                  "faulthandler", "logging", "subtests", "debugging", "cacheprovider",
                  "terminal")     # what a run reports comes from Outcomes
#: the URL scheme in ``--hosts`` of the backend the tests reach their host with
SCHEME = testbackend.HostLink.NAME
#: pytest's order of the words in its summary line
ORDER = ("failed", "passed", "skipped", "xfailed", "xpassed", "error")


class Outcomes:
    """A pytest plugin that counts what a run reported, the way pytest's summary line
    counts it, and keeps each failure's test and first line of reason."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._add("error", report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(report, "wasxfail"):
            if report.when == "call" or report.skipped:
                self._add("xfailed" if report.skipped else "xpassed", report)
        elif report.when == "call":
            self._add(report.outcome, report)
        elif report.failed:
            self._add("error", report)
        elif report.skipped:
            self._add("skipped", report)

    def _add(self, outcome: str, report: pytest.CollectReport | pytest.TestReport) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome in ("failed", "error"):
            name = report.nodeid.replace(f"[{SCHEME}://{self.alias}]", "")
            path, sep, test = name.partition("::")
            reason = _reason(report)
            self.failures.append(f"{Path(path).name}{sep}{test}"
                                 + (f" - {reason}" if reason else ""))

    @property
    def passed(self) -> bool:
        return bool(self.counts) and not (self.counts.keys() & {"failed", "error"})

    def summary(self) -> str:
        """``testinfra: 4 passed`` or ``testinfra: 1 failed, 3 passed: test_x.py::t - why``."""
        words = [f"{self.counts[o]} {o}" + ("s" if o == "error" and self.counts[o] != 1
                                              else "")
                 for o in ORDER if o in self.counts]
        line = f"testinfra: {', '.join(words) or 'no tests ran'}"
        shown = [f if len(f) <= 160 else f[:157] + "..." for f in self.failures[:3]]
        return line + (f": {'; '.join(shown)}" if shown else "")


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    """The first line of why a test failed; for a module that did not import, the
    exception pytest marks with ``E``."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message.strip().partition("\n")[0]
    lines = str(report.longrepr or "").strip().splitlines()
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    return (marked or lines or [""])[-1 if marked else 0]


def pytest_args(folder: str, *extra: str) -> list[str]:
    """pytest's arguments: no configuration file, ``folder`` the root and the only
    place a ``conftest.py`` is read (pytest would read every one up to ``/``, and walk
    every folder above: a ``/tmp/conftest.py`` would run in the gate), testinfra and none
    of the plugins a gate has no use for."""
    return [*extra, "-c", os.devnull, "--rootdir", folder, "--confcutdir", folder,
            "-p", "testinfra.plugin",
            *(f"-pno:{name}" for name in UNUSED_PLUGINS)]


def run_tests(request: dict[str, Any]) -> dict[str, Any]:
    """Run one host's tests as ``request`` describes; ``{"passed", "summary"}``."""
    folder = request["folder"]
    os.environ.update({**request["env"], "HOME": request["home"]})
    os.chdir(folder)
    outcomes, errors = Outcomes(request["alias"]), io.StringIO()
    testbackend.link_to(request["link"], request["id"])
    argv = pytest_args(folder, *request["files"], f"--hosts={SCHEME}://{request['alias']}")
    with contextlib.redirect_stderr(errors):
        code = pytest.main(argv, plugins=[outcomes])
    if not outcomes.counts and code != pytest.ExitCode.NO_TESTS_COLLECTED:
        last = (errors.getvalue().strip().splitlines() or [f"pytest exit code {int(code)}"])
        return {"passed": False, "summary": f"testinfra did not run: {last[-1]}"}
    return {"passed": outcomes.passed and code == pytest.ExitCode.OK,
            "summary": outcomes.summary()}


def answer(request: dict[str, Any], out: int) -> None:
    """In a forked child: run the tests, write the answer to ``out`` in one write (so
    children's answers never interleave), exit."""
    gc.enable()
    signal.alarm(max(1, math.ceil(request["timeout"])))
    try:
        result = run_tests(request)
    except Exception as exc:    # pytest itself broke: the gate fails with why
        result = {"passed": False, "summary": f"testinfra did not run: {exc!r}"[:400]}
    result["summary"] = str(result["summary"])[:1000]     # one write of at most PIPE_BUF
    os.write(out, (json.dumps({"id": request["id"], **result}) + "\n").encode())
    os._exit(0)


def warm_up() -> None:
    """Load pytest's plugins once, here, rather than in every host's child."""
    with tempfile.TemporaryDirectory() as empty, contextlib.redirect_stderr(io.StringIO()):
        pytest.main(pytest_args(empty, empty))


def main() -> None:
    """Fork a child per request read from standard input until it closes; then end the
    children still running (their hosts' gates have given up on them)."""
    # what this process loads lives as long as it does: frozen before the first fork,
    # no child's collector walks it (or copies its pages by touching it)
    gc.disable()
    out = os.dup(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)     # pytest's own output goes nowhere
    testinfra.backend.BACKENDS[SCHEME] = f"{testbackend.__name__}.HostLink"
    warm_up()
    gc.freeze()
    children: set[int] = set()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            answer(request, out)
        children.add(pid)
        children -= {pid for pid in list(children) if os.waitpid(pid, os.WNOHANG)[0]}
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
