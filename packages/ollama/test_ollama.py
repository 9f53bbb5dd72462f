"""What a healthy ollama deployment looks like on the host (pytest-testinfra).

fleetctl's gate runs these after the HTTP check, against the host over SSH;
FLEETCTL_RELEASE and FLEETCTL_VERSION name what was just deployed. Run them by
hand with: FLEETCTL_RELEASE=<id> FLEETCTL_VERSION=0.6.8 pytest --hosts=ssh://HOST
"""

import json
import os

import pytest

RELEASE = os.environ["FLEETCTL_RELEASE"]
VERSION = os.environ["FLEETCTL_VERSION"]
DATA = "/opt/fleetctl/ollama/data"


@pytest.fixture(scope="module")
def container(host) -> dict:
    """``docker inspect`` of this release's ollama container (exactly one must run),
    read once for all the tests."""
    ids = host.check_output("docker ps -q --filter label=io.fleetctl.package=ollama "
                            "--filter label=io.fleetctl.release=%s", RELEASE).split()
    assert len(ids) == 1, f"{len(ids)} running ollama containers of release {RELEASE}"
    return json.loads(host.check_output("docker inspect %s", ids[0]))[0]


def test_runs_on_the_nvidia_runtime_with_host_networking(container: dict) -> None:
    assert container["HostConfig"]["Runtime"] == "nvidia"
    assert container["HostConfig"]["NetworkMode"] == "host"


def test_restarts_unless_stopped(container: dict) -> None:
    assert container["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"


def test_models_live_on_the_host(host, container: dict) -> None:
    assert host.file(DATA).is_directory
    mounts = [bind.split(":")[:2] for bind in container["HostConfig"]["Binds"]]
    assert [DATA, "/data"] in mounts


def test_the_cli_is_the_deployed_version(host, container: dict) -> None:
    assert host.check_output("docker exec %s ollama --version",
                             container["Id"]).endswith(VERSION)
