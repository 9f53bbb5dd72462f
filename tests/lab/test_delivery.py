"""Offline delivery on the lab's factory-b: a signed bundle deployed with the registry
unreachable, images over SSH only; per-site seeding counted on slow links; a broken
link that resumes; stage-only then an activation that pulls nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import ROOT, Lab, fleetctl
from ..trustkit import strip_signature
from .test_bundle import flip_byte

HOSTS = ["jetson-b1", "jetson-b2", "jetson-b3"]     # factory-b without the R32 Nano
LINK_STATS = "/var/lib/fleetlab/hosts/{}/link-stats.json"


def playbook(path: Path, version: str, pattern: str = "factory-b") -> Path:
    path.write_text(yaml.safe_dump({
        "name": f"ollama {version} on {pattern}", "targets": {"pattern": pattern},
        "packages": [{"name": "ollama", "version": version}],
        "strategy": {"steps": [1, "100%"], "gate_timeout": "30s"}}))
    return path


def empty(lab: Lab) -> None:
    """factory-b as new: no containers, no images, nothing of fleetctl's."""
    for host in HOSTS:
        lab.ssh(host, "docker rm -f $(docker ps -aq) >/dev/null 2>&1; "
                      "docker rmi -f $(docker images -q) >/dev/null 2>&1; "
                      "rm -rf /opt/fleetctl; true", timeout=30)


@pytest.fixture
def fresh(lab: Lab) -> None:
    """An empty factory-b for the test, healed and emptied again after it (other
    tests use factory-b's addresses and ports)."""
    empty(lab)
    yield
    for host in HOSTS:
        fleetctl("lab", "heal", host)
    fleetctl("lab", "heal", "registry")
    empty(lab)


@pytest.fixture(scope="module")
def bundles(lab: Lab, tmp_path_factory) -> Path:
    """A key, and bundles of ollama 0.7.0 for factory-b: signed, unsigned."""
    work = tmp_path_factory.mktemp("delivery")
    fleetctl("keys", "generate", "site", "--dir", str(work))
    book = playbook(work / "b-ollama.yml", "0.7.0")
    common = ["-i", lab.status["inventory"], "--state-dir", str(work / "planning")]
    fleetctl("bundle", "create", str(book), "--out", str(work / "signed.bundle"),
             "--sign-key", str(work / "site.key"), *common)
    strip_signature(work / "signed.bundle", work / "unsigned.bundle")
    return work


def run(lab: Lab, state: Path, *args: str):
    return fleetctl("run", *args, "-i", lab.status["inventory"], "--state-dir", str(state),
                    "--yes", "--json", "--events", str(state.parent / "events.ndjson"),
                    check=False)


def images(lab: Lab, host: str) -> list[str]:
    return lab.ssh(host, "docker images --format '{{.Repository}}:{{.Tag}}'").stdout.split()


def version(lab: Lab, host: str) -> str:
    return lab.ssh(host, "docker ps --filter label=com.docker.compose.project=ollama "
                         "--format '{{.Label \"io.fleetctl.version\"}}'").stdout.strip()


def events(state: Path, rollout_id: str | None = None) -> list[dict]:
    """Host events of the rollouts run with ``state`` (of one rollout, if given)."""
    lines = (state.parent / "events.ndjson").read_text().splitlines()
    return [e for e in map(json.loads, lines)
            if e["host"] and rollout_id in (None, e["rollout"])]


def link_bytes(host: str) -> int:
    """Bytes the controller sent through the host's slow-link proxy so far."""
    return json.loads(Path(LINK_STATS.format(host)).read_text())["up"]


def test_bundle_deploys_over_ssh_with_the_registry_unreachable(lab: Lab, bundles: Path,
                                                                 fresh: None,
                                                                 tmp_path: Path) -> None:
    state = tmp_path / "state"
    flip_byte(bundles / "signed.bundle", tmp_path / "tampered.bundle", "plan.json")
    fleetctl("lab", "fault", "registry", "unreachable")
    trust = ["--trust", str(bundles / "site.pub")]

    tampered = run(lab, state, "--bundle", str(tmp_path / "tampered.bundle"), *trust)
    unsigned = run(lab, state, "--bundle", str(bundles / "unsigned.bundle"), *trust)
    untrusted = run(lab, state, "--bundle", str(bundles / "signed.bundle"))
    for refused, why in ((tampered, "plan.json does not match its sha256"),
                         (unsigned, "unsigned; only bundles signed by a trusted key"),
                         (untrusted, "no trusted keys, so its signature cannot be checked")):
        assert refused.returncode == 2 and why in refused.stderr
        assert "Traceback" not in refused.stderr and "probe:" not in refused.stderr
    assert not (state / "state.db").exists() or fleetctl(
        "rollout", "list", "--state-dir", str(state), "--json").stdout.strip() == "[]"
    assert all(images(lab, h) == [] for h in HOSTS)         # no host was touched

    result = run(lab, state, "--bundle", str(bundles / "signed.bundle"), *trust)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified, signed by trusted key" in result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "completed"
    for host in HOSTS:
        assert version(lab, host) == "0.7.0"
        [tag] = images(lab, host)           # loaded under its digest, nothing pulled
        assert tag.startswith("127.0.0.1:5000/dustynv/ollama:sha256-")
    staged = [e for e in events(state) if e["phase"] == "staged"]
    assert len(staged) == 3
    assert all("1 image loaded" in e["detail"] and "sent over SSH" in e["detail"]
               for e in staged)


def test_via_seed_sends_each_blob_once_over_the_slow_links(lab: Lab, bundles: Path,
                                                            fresh: None,
                                                            tmp_path: Path) -> None:
    for host in HOSTS:
        fleetctl("lab", "fault", host, "slow-link", "--delay-ms", "20")
    manifest = json.loads(subprocess.run(
        [sys.executable, "-m", "fleetctl", "bundle", "verify", str(bundles / "signed.bundle"),
         "--json", "--state-dir", str(tmp_path / "v"), "--trust", str(bundles / "site.pub")],
        capture_output=True, text=True,
        cwd=ROOT).stdout)
    layer = max(image["size"] for image in manifest["images"].values())  # config + layer
    result = run(lab, tmp_path / "state", "--bundle", str(bundles / "signed.bundle"),
                 "--trust", str(bundles / "site.pub"), "--via-seed")
    assert result.returncode == 0, result.stdout + result.stderr
    seed, *peers = HOSTS                        # the canary is the seed
    sent = {h: link_bytes(h) for h in HOSTS}
    # the one layer crossed the seed's link once and no peer's link at all; what else
    # crossed is probes, step scripts and testinfra (about 200 kB per host)
    assert layer < sent[seed] < layer + 400_000
    assert all(sent[p] < layer / 3 for p in peers), sent
    delivery = [e for e in events(tmp_path / "state") if e["phase"] == "delivery"]
    assert any(e["host"] == seed and "seed of site factory-b" in e["detail"]
               for e in delivery)
    assert {e["host"] for e in delivery if f"from seed {seed}" in e["detail"]} == set(peers)
    assert all(version(lab, h) == "0.7.0" for h in HOSTS)


def test_a_broken_link_resumes_where_it_stopped(lab: Lab, bundles: Path, fresh: None,
                                                tmp_path: Path) -> None:
    state = tmp_path / "state"
    host = "jetson-b1"
    fleetctl("lab", "fault", host, "slow-link", "--delay-ms", "20", "--kbps", "800")
    deploy = subprocess.Popen(
        [sys.executable, "-m", "fleetctl", "run", "--bundle", str(bundles / "signed.bundle"),
         "--trust", str(bundles / "site.pub"), "-i", lab.status["inventory"], "--state-dir",
         str(state), "--yes", "--json", "--events", str(tmp_path / "events.ndjson")],
        cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while link_bytes(host) < 400_000 and time.monotonic() < deadline:
        time.sleep(0.1)
    fleetctl("lab", "heal", host)               # the link drops mid-layer
    stdout, stderr = deploy.communicate(timeout=120)
    assert deploy.returncode == 4, stdout + stderr          # the canary was deferred
    report = json.loads(stdout)
    [canary] = [s for s in report["hosts"] if s["host"] == host]
    assert canary["phase"] == "deferred" and "connection lost" in canary["error"]

    resumed = fleetctl("rollout", "resume", report["id"], "-i", lab.status["inventory"],
                       "--state-dir", str(state), "--json", "--events",
                       str(tmp_path / "events.ndjson"), check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    [staged] = [e for e in events(state) if e["phase"] == "staged" and e["host"] == host]
    detail = staged["detail"]
    assert "resumed after" in detail, detail
    before = int(detail.split("resumed after ")[1].split(" ")[0].replace(",", ""))
    sent = int(detail.split("loaded, ")[1].split(" ")[0].replace(",", ""))
    assert before > 100_000 and sent < 1_000_000 and before + sent > 1_000_000
    assert all(version(lab, h) == "0.7.0" for h in HOSTS)


def registry_pulls() -> int:
    """Image pulls by Docker engines the lab registry has served."""
    log = Path("/var/lib/fleetlab/registry/registry.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if '"GET /v2/' in line and '"docker/' in line)


def test_stage_only_then_an_activation_that_pulls_nothing(lab: Lab, fresh: None,
                                                          tmp_path: Path) -> None:
    book = playbook(tmp_path / "b.yml", "0.6.8")
    state = tmp_path / "state"
    staged = run(lab, state, str(book), "--stage-only")
    assert staged.returncode == 0, staged.stdout + staged.stderr
    report = json.loads(staged.stdout)
    assert {s["host"]: s["phase"] for s in report["hosts"]} == {
        **{h: "ready" for h in HOSTS}, "jetson-b4": "skipped"}
    assert report["steps"] == [HOSTS]          # staging is not split in steps
    assert all(version(lab, h) == "" for h in HOSTS)        # nothing runs yet
    pulls = registry_pulls()
    assert pulls > 0

    activated = run(lab, state, str(book))
    assert activated.returncode == 0, activated.stdout + activated.stderr
    assert registry_pulls() == pulls
    hosts = [s for s in json.loads(activated.stdout)["hosts"] if s["host"] in HOSTS]
    assert all(s["phase"] == "committed" for s in hosts)
    staged_events = [e for e in events(state, json.loads(activated.stdout)["id"])
                     if e["phase"] == "staged"]
    assert [e["detail"] for e in staged_events] == ["image already on the host"] * 3
    assert all(version(lab, h) == "0.6.8" for h in HOSTS)


def test_ssh_delivery_sends_no_layer_the_host_has(lab: Lab, fresh: None,
                                                  tmp_path: Path) -> None:
    state = tmp_path / "state"
    pulled = run(lab, state, str(playbook(tmp_path / "old.yml", "0.6.8")))
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    upgrade = run(lab, state, str(playbook(tmp_path / "new.yml", "0.7.0")), "--delivery", "ssh")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    staged = [e["detail"] for e in events(state, json.loads(upgrade.stdout)["id"])
              if e["phase"] == "staged"]
    assert len(staged) == 3
    for detail in staged:   # 0.7.0 shares 0.6.8's layer: only its config goes (~600 bytes)
        assert detail.endswith("sent over SSH, 1 layer already on the host"), detail
        assert int(detail.split("loaded, ")[1].split(" ")[0].replace(",", "")) < 2000
    assert all(version(lab, h) == "0.7.0" for h in HOSTS)
    # the probe reads the digest from the loaded image's tag: running again changes nothing
    again = run(lab, state, str(tmp_path / "new.yml"), "--delivery", "ssh")
    assert again.returncode == 0 and "nothing to do" in again.stderr, again.stderr
    audit = fleetctl("audit", "-i", lab.status["inventory"], "--state-dir", str(state),
                     "--limit", "factory-b", "--refresh", "--format", "json", check=False)
    findings = json.loads(audit.stdout)["findings"]
    assert not [f for f in findings if f["rule"] == "drift"], findings
