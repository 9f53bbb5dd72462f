"""A package's testinfra tests, run against one host as the last part of its gate.

pytest-testinfra runs in a child pytest over OpenSSH (its ``ssh`` backend),
with an ssh_config written from the inventory: the host's address, port, user
and key, its known_hosts files and ``StrictHostKeyChecking yes``, so the tests
reach the host exactly as fleetctl does and verify its key the same way. The
tests learn what was deployed from ``FLEETCTL_*`` environment variables.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from fleetctl.inventory.targets import Target

ALIAS = "fleetctl-target"
#: all a package's tests get of the controller's environment (its secrets stay behind)
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


def ssh_config(target: Target, known_hosts: tuple[str, ...]) -> str:
    """An ssh_config that reaches ``target`` as :data:`ALIAS`, host key verified."""
    lines = [f"Host {ALIAS}", f"  HostName {target.address}", f"  Port {target.port}",
             f"  User {target.user}", "  BatchMode yes", "  StrictHostKeyChecking yes",
             "  LogLevel ERROR"]
    if target.key_file:
        lines += [f"  IdentityFile {target.key_file}", "  IdentitiesOnly yes"]
    files = [f for f in dict.fromkeys((*target.known_hosts, *known_hosts)) if Path(f).exists()]
    if files:
        lines.append("  UserKnownHostsFile " + " ".join(files))
    return "\n".join(lines) + "\n"


@dataclass
class HostTests:
    """The testinfra files of one package, to run against one host.

    Package code never runs in the controller's process: the tests run in a child
    pytest whose environment is :data:`PASSED_THROUGH`, an empty home and the
    ``FLEETCTL_*`` release values. They can only fail a gate the health check
    passed: :func:`fleetctl.rollout.gate.gate` runs them after it and never on a
    failed one."""

    files: list[Path]
    target: Target
    known_hosts: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def release_env(package: str, release: str, version: str | None,
                    image: str | None) -> dict[str, str]:
        """What the tests learn of the release (an unknown version is empty)."""
        return {"FLEETCTL_PACKAGE": package, "FLEETCTL_RELEASE": release,
                "FLEETCTL_VERSION": version or "", "FLEETCTL_IMAGE": image or ""}

    def run(self, timeout: float) -> tuple[bool, str]:
        """Run the tests; (passed, one-line summary with the first failures)."""
        with tempfile.TemporaryDirectory(prefix="fleetctl-testinfra-") as tmp:
            config = Path(tmp) / "ssh_config"
            config.write_text(ssh_config(self.target, self.known_hosts))
            folder = self.files[0].resolve().parent     # node ids relative to the package
            argv = [sys.executable, "-m", "pytest", *(str(f.resolve()) for f in self.files),
                    f"--hosts=ssh://{ALIAS}?controlpersist=0", f"--ssh-config={config}",
                    "-c", os.devnull, "--rootdir", str(folder), "-p", "no:cacheprovider",
                    "-p", "testinfra.plugin",
                    "-q", "--tb=no", "-rfE", "--no-header", "-o", "console_output_style=classic"]
            env = {**{k: os.environ[k] for k in PASSED_THROUGH if k in os.environ},
                   **self.env, "HOME": tmp, "PYTHONDONTWRITEBYTECODE": "1",
                   # only testinfra: other installed plugins cost the controller CPU
                   # per host (hypothesis alone: 0.7 s) and have no business here
                   "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                   "COLUMNS": "400"}   # pytest cuts the reasons at the terminal width
            try:
                result = subprocess.run(argv, capture_output=True, text=True, env=env,
                                        timeout=timeout, cwd=folder, check=False)
            except subprocess.TimeoutExpired:
                return False, f"testinfra: not done within {timeout:.0f}s"
        return result.returncode == 0, summarize(result.stdout, result.stderr)


def summarize(stdout: str, stderr: str = "") -> str:
    """``testinfra: 4 passed`` or ``testinfra: 1 failed, 3 passed: test_x (why)``."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    summary = next((line.strip("= ") for line in reversed(lines)
                    if " in " in line and any(w in line for w in ("passed", "failed",
                                                                    "error", "no tests"))),
                   None)
    if summary is None:
        last = (stderr.strip().splitlines() or lines or ["no output"])[-1]
        return f"testinfra did not run: {last}"
    summary = summary.rsplit(" in ", 1)[0]
    failures = []
    for line in lines:
        if line.startswith(("FAILED ", "ERROR ")):
            path, _, test = line.split(" ", 1)[1].partition("::")
            failures.append(f"{Path(path).name}::{test.replace(f'[ssh://{ALIAS}]', '')}")
    shown = [f if len(f) <= 160 else f[:157] + "..." for f in failures[:3]]
    return f"testinfra: {summary}" + (f": {'; '.join(shown)}" if shown else "")
