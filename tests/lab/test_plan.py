"""The registry client and `fleetctl plan` against the lab registry and hosts."""

import json
from pathlib import Path

from fleetctl.catalog.imageref import parse_reference
from fleetctl.catalog.registry import RegistryClient
from fleetctl.state import StateDB

from ..conftest import Lab, fleetctl

MIRROR = "127.0.0.1:5000"


def plan(lab: Lab, state: Path, *args: str, check: bool = False):
    return fleetctl("plan", "-i", lab.status["inventory"], "--state-dir", str(state), *args,
                    check=check)


def test_registry_lists_tags_and_resolves_platform_digests(lab: Lab, tmp_path: Path) -> None:
    pushed = lab.status["registry"]["images"]
    client = RegistryClient(MIRROR, StateDB(tmp_path))
    tags = client.tags("dustynv/ollama")
    assert {k.split(":", 1)[1] for k in pushed if k.startswith("dustynv/ollama:")} == set(tags)
    [single] = client.images("dustynv/ollama", "0.6.8-r36.4.0-cu126-22.04")
    assert single.digest == pushed["dustynv/ollama:0.6.8-r36.4.0-cu126-22.04"]
    assert single.arch == "amd64" and single.size > 100_000
    arm = client.images("dustynv/ollama", "0.23.0-r36.4.tegra-aarch64-cu126-22.04")
    assert [i.arch for i in arm] == ["arm64"]
    listed = client.images("open-webui/open-webui", "0.6.9")    # a manifest list
    assert sorted(i.arch for i in listed) == ["amd64", "arm64"]
    assert pushed["open-webui/open-webui:0.6.9"] not in {i.digest for i in listed}
    assert client.images_of("dustynv/ollama", ["no-such-tag"]) == []  # deleted meanwhile


def test_registry_answers_are_cached_in_the_state_db(lab: Lab, tmp_path: Path) -> None:
    db = StateDB(tmp_path)
    first = RegistryClient(MIRROR, db)
    first.images_of("dustynv/ollama", first.tags("dustynv/ollama"))
    assert first.requests > 10
    again = RegistryClient(MIRROR, db)
    again.images_of("dustynv/ollama", again.tags("dustynv/ollama"))
    assert again.requests == 0
    expired = RegistryClient(MIRROR, db, ttl=0)
    expired.images_of("dustynv/ollama", expired.tags("dustynv/ollama"))
    # tags and tag manifests again; content-addressed configs stay cached
    assert 0 < expired.requests < first.requests


def test_missing_repository_has_no_tags(lab: Lab, tmp_path: Path) -> None:
    assert RegistryClient(MIRROR, StateDB(tmp_path)).tags("dustynv/nothing-here") == []


def test_plan_ollama_factory_a(lab: Lab, tmp_path: Path) -> None:
    result = plan(lab, tmp_path, "ollama", "--group", "factory-a", "--format", "json",
                  "--out", str(tmp_path / "plan.json"))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert json.loads((tmp_path / "plan.json").read_text()) == doc
    entries = {e["host"]: e for e in doc["entries"]}
    assert list(entries) == ["jetson-a1", "jetson-a2", "jetson-a3", "jetson-a4"]
    pushed = lab.status["registry"]["images"]
    expected = {"jetson-a1": "0.23.0-r36.4.tegra-x86_64-cu126-22.04",
                "jetson-a2": "0.23.0-r36.4.tegra-x86_64-cu126-22.04",
                "jetson-a3": "0.7.0-r35.4.1-cu114-20.04"}
    for name, tag in expected.items():
        entry = entries[name]
        assert (entry["action"], entry["tag"], entry["version"]) == (
            "install", tag, tag.split("-")[0])
        assert entry["digest"] == pushed[f"dustynv/ollama:{tag}"]
        assert entry["target"] == f"{MIRROR}/dustynv/ollama@{entry['digest']}"
        assert entry["pull_bytes"] > 0 and all(c["ok"] for c in entry["checks"])
    # the arm64 twin of the 0.23.0 tag is turned down for the lab's amd64 engines
    assert {"tag": "0.23.0-r36.4.tegra-aarch64-cu126-22.04", "source": "registry",
            "reason": "platform arm64, host Docker is amd64"} in entries["jetson-a1"]["rejected"]
    nano = entries["jetson-a4"]
    assert nano["action"] == "blocked" and nano["target"] is None
    assert nano["reason"] == ("package requires L4T >=r34.1 (host has 32.7.6, "
                              "JetPack 4.6.6)")
    assert doc["registry"]  # the inputs: tag digests seen


def test_plan_with_dependency_and_manifest_list(lab: Lab, tmp_path: Path) -> None:
    result = plan(lab, tmp_path, "open-webui", "--limit", "jetson-a1", "--format", "json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["packages"] == ["ollama", "open-webui"]
    ollama, webui = doc["entries"]
    assert (ollama["package"], webui["package"]) == ("ollama", "open-webui")
    client = RegistryClient(MIRROR)
    amd64 = [i for i in client.images("open-webui/open-webui", "0.6.9") if i.arch == "amd64"]
    assert webui["digest"] == amd64[0].digest and webui["tag"] == "0.6.9"


def test_plan_table_and_errors(lab: Lab, tmp_path: Path) -> None:
    table = plan(lab, tmp_path, "ollama:0.6.8", "--group", "factory-b")
    assert table.returncode == 0, table.stderr
    assert "0.6.8-r36.4.0-cu126-22.04" in table.stdout and "blocked" in table.stdout
    for args, message in [
        (("olama", "--group", "factory-a"), "no package 'olama'"),
        (("ollama",), "say which hosts: --group G or --limit PATTERN"),
        (("ollama", "--group", "nowhere"), "nowhere"),
    ]:
        bad = plan(lab, tmp_path, *args)
        assert bad.returncode == 2
        assert message in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def test_plan_reports_unreachable_hosts(lab: Lab, tmp_path: Path) -> None:
    fleetctl("lab", "fault", "jetson-b2", "sshd-down")
    try:
        result = plan(lab, tmp_path, "ollama", "--group", "factory-b", "--refresh")
    finally:
        fleetctl("lab", "heal", "jetson-b2")
    assert result.returncode == 4
    assert "unreachable jetson-b2: refused" in result.stdout


def test_parse_reference_defaults() -> None:
    assert str(parse_reference("ubuntu")) == "library/ubuntu"
    ref = parse_reference("127.0.0.1:5000/dustynv/ollama@sha256:" + "a" * 64)
    assert (ref.registry, ref.repository, ref.tag) == (MIRROR, "dustynv/ollama", None)


def test_deploy_refuses_a_plan_whose_tag_moved(lab: Lab, tmp_path: Path) -> None:
    from fleetctl.lab.images import LabImage, push_images
    from fleetctl.lab.registry import unpacked
    from fleetctl.lab.system import LabPaths

    plan_file = tmp_path / "plan.json"
    plan(lab, tmp_path, "ollama:0.6.8", "--limit", "jetson-b1", "--out", str(plan_file),
         check=True)
    tag = "0.6.8-r36.4.0-cu126-22.04"
    busybox = unpacked(LabPaths.default(), "busybox-static")   # the lab's own, as it pushed
    moved = LabImage("dustynv/ollama", tag, "ollama", "0.6.8", mode="broken")
    original = LabImage("dustynv/ollama", tag, "ollama", "0.6.8")
    push_images(f"http://{MIRROR}", busybox, [moved])      # someone re-pushes the tag
    try:
        result = fleetctl("deploy", "ollama:0.6.8", "--plan", str(plan_file), "-i",
                          lab.status["inventory"], "--state-dir", str(tmp_path), "--yes",
                          check=False)
    finally:
        push_images(f"http://{MIRROR}", busybox, [original])
    assert result.returncode == 2
    assert f"is stale: dustynv/ollama:{tag} (amd64) now points at sha256:" in result.stderr
    again = RegistryClient(MIRROR).images("dustynv/ollama", tag)
    assert again[0].digest == lab.status["registry"]["images"][f"dustynv/ollama:{tag}"]
