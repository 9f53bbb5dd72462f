"""On a real device: the digest check compares exact strings, the compose file that
holds a release's env is root's alone, and a secret with quotes and newlines reaches
the container as it is and nothing else fleetctl writes; package tests reach the
host only through fleetctl's own connection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fleetctl.device import script_for
from fleetctl.inventory.targets import Target
from fleetctl.rollout.hosttests import HostTests
from fleetctl.shell import assignments
from fleetctl.ssh import connect

from ..conftest import Lab, fleetctl

HOST = "jetson-b2"
SECRET = 'pa"ss\nword-with-\'quotes\'-${HOME}-$(id)'


@pytest.fixture
def empty(lab: Lab):
    """jetson-b2 without containers, images or anything of fleetctl's, before and after."""
    lab.clear(HOST)
    yield
    lab.clear(HOST)


def step(lab: Lab, name: str, **values: str):
    return lab.ssh(HOST, "sh -s", check=False, timeout=60,
                   input=f"{script_for(name)}\n{assignments(values)}do_{name}\n".encode())


def test_the_device_digest_check_is_exact(lab: Lab, empty: None) -> None:
    digest = lab.status["registry"]["images"]["dustynv/ollama:0.6.8-r36.4.0-cu126-22.04"]
    image = f"127.0.0.1:5000/dustynv/ollama@{digest}"
    common = dict(D="/opt/fleetctl/probe", P="probe", REL="r1", IMAGE=image, CONFIG="",
                  COMPOSE="c2VydmljZXM6IHt9Cg==")
    assert step(lab, "stage", DIGEST=digest, **common).returncode == 0
    for wrong in (".*", "sha256:.*", digest[:-1], digest[:-1] + "[0-9a-f]"):
        refused = step(lab, "stage", DIGEST=wrong, **common)
        assert refused.returncode == 1, wrong
        assert f"does not have digest {wrong}" in refused.stderr.decode()


def test_a_secret_env_value_reaches_only_the_container(lab: Lab, empty: None,
                                                       tmp_path: Path) -> None:
    book = tmp_path / "secret.yml"
    book.write_text(yaml.safe_dump({
        "name": "ollama with a token", "targets": {"pattern": HOST},
        "packages": [{"name": "ollama", "version": "0.7.0",
                      "env": {"OLLAMA_TOKEN": SECRET}, "secrets": ["OLLAMA_TOKEN"]}],
        "strategy": {"steps": ["100%"], "gate_timeout": "30s"}}))
    state, events = tmp_path / "state", tmp_path / "events.ndjson"
    result = fleetctl("run", str(book), "-i", lab.status["inventory"], "--state-dir",
                      str(state), "--yes", "--json", "--events", str(events), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    env = json.loads(lab.ssh(HOST, "docker inspect -f '{{json .Config.Env}}' "
                                   "$(docker ps -q --filter label=io.fleetctl.package=ollama)"
                             ).stdout)
    assert f"OLLAMA_TOKEN={SECRET}" in env              # exactly, quotes and newline kept
    [compose] = lab.ssh(HOST, "ls /opt/fleetctl/ollama/releases/*/compose.yml").stdout.split()
    assert lab.ssh(HOST, f"stat -c %a {compose}").stdout.strip() == "600"
    audit_log = lab.ssh(HOST, "cat /opt/fleetctl/ollama/audit.log").stdout
    written = [result.stdout, result.stderr, events.read_text(), audit_log,
               *(p.read_bytes().decode(errors="replace") for p in state.rglob("*")
                 if p.is_file())]
    for needle in (SECRET, "word-with-'quotes'"):
        assert not any(needle in text for text in written)


def test_package_tests_reach_the_host_only_through_the_controllers_connection(
        lab: Lab, tmp_path: Path) -> None:
    """The gate's testinfra tests hold no key or password: their commands run over the
    connection fleetctl made (the host's key checked against known_hosts), as its user.
    Once that connection is gone, each command fails with the reason; nothing else is
    tried."""
    test = tmp_path / "test_reach.py"
    test.write_text("def test_reach(host):\n"
                    "    assert host.file('/etc/nv_tegra_release').contains('R36')\n"
                    "    assert host.run('id -un').stdout.strip() == 'root'\n")
    target = Target(HOST, lab.address(HOST), key_file=lab.status["client_key"],
                    known_hosts=(lab.status["known_hosts"],))
    env = HostTests.release_env("t", "r", "1", "i")
    with connect(target) as conn:
        assert HostTests([test], conn, env).run(60) == (True, "testinfra: 1 passed")
    passed, summary = HostTests([test], conn, env).run(60)
    assert not passed and "RuntimeError: cannot run" in summary, summary
