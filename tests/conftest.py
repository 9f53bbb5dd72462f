"""Shared fixtures: the simulated lab, brought up once per test session.

Tests marked ``lab`` use it; ``pytest -m 'not lab'`` runs the unit tests alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "inventories" / "lab" / "fleet.yml"


def fleetctl(*args: str, check: bool = True, timeout: float = 300,
             env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    result = subprocess.run([sys.executable, "-m", "fleetctl", *args], capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT,
                            env={**os.environ, "COLUMNS": "200", **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"fleetctl {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@dataclass
class Lab:
    """What tests need to reach the running lab."""

    status: dict

    @property
    def hosts(self) -> dict[str, dict]:
        return {h["name"]: h for h in self.status["hosts"]}

    def address(self, name: str) -> str:
        return self.hosts[name]["address"]

    def ssh_argv(self, name: str, *command: str, timeout: int = 5) -> list[str]:
        return ["ssh", "-i", self.status["client_key"],
                "-o", f"UserKnownHostsFile={self.status['known_hosts']}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={timeout}", "-o", "LogLevel=ERROR",
                f"root@{self.address(name)}", *command]

    def ssh(self, name: str, command: str, check: bool = True, timeout: int = 5,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on a lab host with the OpenSSH client."""
        result = subprocess.run(self.ssh_argv(name, command, timeout=timeout),
                                capture_output=True, text=input is None, input=input,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {name} {command!r} exited {result.returncode}: "
                                 f"{result.stderr}")
        return result


    def clear(self, name: str) -> None:
        """The host without containers, images or anything of fleetctl's."""
        self.ssh(name, "docker rm -f $(docker ps -aq) >/dev/null 2>&1; "
                       "docker rmi -f $(docker images -q) >/dev/null 2>&1; "
                       "rm -rf /opt/fleetctl; true", timeout=30)


def lab_status() -> dict:
    return json.loads(fleetctl("lab", "status", "--json").stdout)


@pytest.fixture(scope="session")
def lab() -> Lab:
    """The default lab (inventories/lab/fleet.yml), up for the whole session."""
    fleetctl("lab", "up", "--spec", str(DEFAULT_SPEC))
    yield Lab(lab_status())
    fleetctl("lab", "down")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)
