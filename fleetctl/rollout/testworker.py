"""The child process that runs packages' testinfra tests for the gate, one host per request.

:class:`fleetctl.rollout.hosttests.TestPool` starts it with a minimal environment and
writes one JSON line per host: the test files, the folder they live in, the ssh_config
that reaches the host, a home folder and the ``FLEETCTL_*`` release values. It answers one
JSON line: whether the tests passed and a one-line summary. pytest and testinfra are
imported once per process, which is what makes a gate cheap; a package's own modules are
imported afresh for every host, so what they read from the environment at import time is
that host's release.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

#: pytest's built-in plugins a gate has no use for; each costs every host's run CPU
#: (the exception plugins a garbage collection of the whole process)
UNUSED_PLUGINS = ("unraisableexception", "threadexception", "doctest", "junitxml",
                  "pastebin", "legacypath", "stepwise", "setuponly", "setupplan", "unittest",
                  "faulthandler", "logging", "subtests", "debugging", "cacheprovider")
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
            name = report.nodeid.replace(f"[ssh://{self.alias}]", "")
            reason = _reason(report)
            self.failures.append(f"{Path(name.partition('::')[0]).name}"
                                 f"{'::' + name.partition('::')[2] if '::' in name else ''}"
                                 f"{' - ' + reason if reason else ''}")

    @property
    def passed(self) -> bool:
        return bool(self.counts) and not (self.counts.keys() & {"failed", "error", "xpassed"})

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


def run_tests(request: dict[str, Any], base_env: dict[str, str]) -> dict[str, Any]:
    """Run one host's tests as ``request`` describes; ``{"passed", "summary"}``."""
    folder = request["folder"]
    os.environ.clear()
    os.environ.update({**base_env, **request["env"], "HOME": request["home"]})
    os.chdir(folder)
    path, outcomes, errors = list(sys.path), Outcomes(request["alias"]), io.StringIO()
    argv = [*request["files"], f"--hosts=ssh://{request['alias']}?controlpersist=0",
            f"--ssh-config={request['ssh_config']}", "-c", os.devnull, "--rootdir", folder,
            "-p", "testinfra.plugin", "-q", "--no-header",
            *(f"-pno:{name}" for name in UNUSED_PLUGINS)]
    try:
        with contextlib.redirect_stderr(errors):
            code = pytest.main(argv, plugins=[outcomes])
    finally:
        sys.path[:] = path
        for name, module in list(sys.modules.items()):
            if (getattr(module, "__file__", None) or "").startswith(folder + os.sep):
                del sys.modules[name]
    if not outcomes.counts and code != pytest.ExitCode.NO_TESTS_COLLECTED:
        last = (errors.getvalue().strip().splitlines() or [f"pytest exit code {int(code)}"])
        return {"passed": False, "summary": f"testinfra did not run: {last[-1]}"}
    return {"passed": outcomes.passed and code == pytest.ExitCode.OK,
            "summary": outcomes.summary()}


def main() -> None:
    """Answer requests from standard input until it closes."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)     # pytest's own output goes nowhere
    base_env = dict(os.environ)
    for line in sys.stdin:
        answers.write(json.dumps(run_tests(json.loads(line), base_env)) + "\n")


if __name__ == "__main__":
    main()
