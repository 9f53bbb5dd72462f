"""What a client sees on lab hosts: Jetson identity, its own engine, registry images."""

import json
import platform
import urllib.request
from pathlib import Path

import pytest

from fleetctl.lab.spec import load_spec

from ..conftest import DEFAULT_SPEC, Lab

SPEC = load_spec(DEFAULT_SPEC)
JETSONS = [h for h in SPEC.hosts if h.is_jetson]
REGISTRY = "127.0.0.1:5000"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def registry_digest(repo: str, tag: str) -> str:
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", method="HEAD",
                                 headers={"Accept": MANIFEST_V2})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.headers["Docker-Content-Digest"]


@pytest.mark.parametrize("spec", JETSONS, ids=lambda h: h.name)
def test_jetson_identity_over_ssh(lab: Lab, spec) -> None:
    out = lab.ssh(spec.name, "head -1 /etc/nv_tegra_release; hostname; uname -m; "
                  "dpkg-query -W -f='${Version}\\n' nvidia-l4t-core; "
                  "od -An -c /sys/firmware/devicetree/base/model | tr -d ' \\n'; echo; "
                  "tr '\\0' '|' < /sys/firmware/devicetree/base/compatible").stdout.splitlines()
    assert out[0] == spec.nv_tegra_release
    assert out[1] == spec.name
    assert out[2] == platform.machine()  # hosts report the real architecture
    assert out[3] == spec.l4t_core_version and out[3].startswith(spec.l4t + "-")
    assert out[4].endswith("\\0") and out[4][:-2] == spec.model.replace(" ", "")
    assert out[5] == "".join(c + "|" for c in spec.compatible)


def test_plain_server_has_no_jetson_files_and_no_docker(lab: Lab) -> None:
    result = lab.ssh("build-server", "cat /etc/nv_tegra_release; "
                     "ls /sys/firmware/devicetree; command -v docker; hostname", check=False)
    assert "No such file" in result.stderr
    assert result.stdout.strip() == "build-server"


def test_each_host_has_its_own_engine_with_nvidia_runtime(lab: Lab) -> None:
    names = set()
    for spec in (h for h in SPEC.hosts if h.docker):
        info = json.loads(lab.ssh(spec.name, "docker info --format '{{json .}}'").stdout)
        names.add(info["Name"])
        assert info["Architecture"] == platform.machine()
        assert ("nvidia" in info["Runtimes"]) == spec.nvidia_runtime
        assert info["DockerRootDir"] == "/var/lib/docker"
    assert len(names) == len([h for h in SPEC.hosts if h.docker])


def test_compose_is_where_the_spec_says(lab: Lab) -> None:
    for spec in SPEC.hosts:
        found = lab.ssh(spec.name, "command -v docker-compose", check=False).stdout.strip()
        assert bool(found) == (spec.compose == "v1"), spec.name


def test_lab_state_is_hidden_from_hosts(lab: Lab) -> None:
    out = lab.ssh("jetson-a1", f"ls -A {Path(lab.status['dir'])} | wc -l").stdout
    assert out.strip() == "0"


def test_registry_image_pulls_by_digest_and_runs_with_nvidia_runtime(lab: Lab) -> None:
    digest = registry_digest("dustynv/ollama", "0.6.8-r36.4.0-cu126-22.04")
    addr = lab.address("jetson-b2")
    compose = f"""services:
  ollama:
    image: {REGISTRY}/dustynv/ollama@{digest}
    runtime: nvidia
    network_mode: host
    restart: unless-stopped
    environment: {{OLLAMA_HOST: "{addr}:11434"}}
"""
    lab.ssh("jetson-b2", "mkdir -p /opt/t && cat > /opt/t/docker-compose.yml",
            input=compose.encode())
    try:
        lab.ssh("jetson-b2", "cd /opt/t && docker-compose -p t up -d", timeout=10)
        inspect = lab.ssh("jetson-b2", "docker image inspect --format "
                          "'{{.Os}}/{{.Architecture}} {{index .RepoDigests 0}}' "
                          f"{REGISTRY}/dustynv/ollama@{digest}").stdout.split()
        assert inspect == [f"linux/{'amd64' if platform.machine() == 'x86_64' else 'arm64'}",
                           f"{REGISTRY}/dustynv/ollama@{digest}"]
        runtime = lab.ssh("jetson-b2", "docker inspect -f '{{.HostConfig.Runtime}}' t_ollama_1")
        assert runtime.stdout.strip() == "nvidia"
        body = _get(f"http://{addr}:11434/api/version")
        assert json.loads(body) == {"version": "0.6.8"}
        assert json.loads(_get(f"http://{addr}:11434/api/tags"))["models"][0]["name"]
    finally:
        lab.ssh("jetson-b2", "cd /opt/t && docker-compose -p t down; rm -rf /opt/t",
                check=False, timeout=10)


def test_status_json_names_every_host_and_the_files(lab: Lab) -> None:
    status = lab.status
    assert [h["name"] for h in status["hosts"]] == [h.name for h in SPEC.hosts]
    assert all(h["state"] == "running" for h in status["hosts"])
    for key in ("inventory", "client_key", "known_hosts"):
        assert Path(status[key]).is_file()
    known = Path(status["known_hosts"]).read_text().splitlines()
    assert sorted(line.split()[0] for line in known) == sorted(h.address for h in SPEC.hosts)


def _get(url: str, attempts: int = 50) -> str:
    import time

    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")
