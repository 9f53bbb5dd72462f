"""Staged rollouts on the lab: healthy upgrades, bad releases stopped at the canary,
unreachable and full hosts, a killed controller, locks, rollback and history."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import ROOT, Lab, fleetctl

HOSTS = ["jetson-a1", "jetson-a2", "jetson-a3"]     # factory-a without the R32 Nano
TARGET = "factory-a:!nano"


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


def deploy(lab: Lab, state: Path, request: str, *args: str):
    return fleetctl("deploy", request, "-i", lab.status["inventory"], "--state-dir", str(state),
                    "--limit", TARGET, "--yes", "--json", "--gate-timeout", "20s", *args,
                    check=False)


def running(lab: Lab, host: str) -> dict:
    """What the host runs for ollama: image digest, version label, state, health."""
    out = lab.ssh(host, "docker ps -a --no-trunc --filter label=com.docker.compose.project=ollama "
                        "--format '{{.Image}}|{{.Label \"io.fleetctl.version\"}}|{{.State}}'"
                  ).stdout.strip()
    if not out:
        return {}
    image, version, state = out.splitlines()[0].split("|")
    return {"digest": image.rpartition("@")[2], "version": version, "state": state}


def serving(lab: Lab, host: str) -> str:
    """The version ollama's API reports on the host (the service really answers)."""
    out = lab.ssh(host, f"wget -q -O - http://{lab.address(host)}:11434/api/version",
                  check=False).stdout
    return json.loads(out)["version"] if out.strip() else ""


def digests(lab: Lab, version: str) -> dict[str, str]:
    images = lab.status["registry"]["images"]
    tag_r36 = f"dustynv/ollama:{version}-r36.4.0-cu126-22.04"
    tag_r35 = f"dustynv/ollama:{version}-r35.4.1-cu114-20.04"
    return {"jetson-a1": images[tag_r36], "jetson-a2": images[tag_r36],
            "jetson-a3": images.get(tag_r35, "")}


def baseline(lab: Lab, state: Path, version: str = "0.6.8") -> None:
    """Every test host on ``version`` and healthy (a no-op when they already are)."""
    result = deploy(lab, state, f"ollama:{version}", "--steps", "100%", "--allow-downgrade")
    assert result.returncode == 0, result.stdout + result.stderr
    want = digests(lab, version)
    for host in HOSTS:
        assert running(lab, host)["digest"] == want[host]


def deploy_with_fault(lab: Lab, state: Path, tmp_path: Path, fault: str, *args: str):
    """Plan the upgrade to 0.7.0 while all is well, break jetson-a2, deploy the plan with
    jetson-a1 as the canary, heal. (Planned after the fault, a2 would be left out.)"""
    plan = tmp_path / "plan.json"
    fleetctl("plan", "ollama:0.7.0", "-i", lab.status["inventory"], "--state-dir", str(state),
             "--limit", TARGET, "--refresh", "--out", str(plan))
    fleetctl("lab", "fault", "jetson-a2", fault)
    try:
        return deploy(lab, state, "ollama:0.7.0", "--plan", str(plan), "--canary", "jetson-a1",
                      *args)
    finally:
        fleetctl("lab", "heal", "jetson-a2")


def test_healthy_upgrade_in_steps(lab: Lab, state: Path, tmp_path: Path) -> None:
    baseline(lab, state)
    events = tmp_path / "events.ndjson"
    result = deploy(lab, state, "ollama:0.7.0", "--steps", "1,50%,100%", "--events", str(events))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "completed"
    assert [len(s) for s in report["steps"]] == [1, 1, 1]
    new, old = digests(lab, "0.7.0"), digests(lab, "0.6.8")
    journal = {h["host"]: h for h in report["hosts"] if h["host"] in HOSTS}
    for host in HOSTS:
        assert journal[host]["phase"] == "committed"
        assert (journal[host]["from_digest"], journal[host]["to_digest"]) == (old[host],
                                                                              new[host])
        assert running(lab, host) == {"digest": new[host], "version": "0.7.0",
                                      "state": "running"}
        assert serving(lab, host) == "0.7.0"
        audit = lab.ssh(host, "tail -n 1 /opt/fleetctl/ollama/audit.log").stdout
        assert f"rollout={report['id']}" in audit and f"to={new[host]}" in audit
        assert "result=committed" in audit
        # the previous release is kept, its image pinned by a stopped keeper container
        keep = lab.ssh(host, "readlink /opt/fleetctl/ollama/previous; docker ps -a --no-trunc "
                             "--filter label=io.fleetctl.keep=ollama --format '{{.Image}}'").stdout
        assert old[host] in keep
    gates = {e["host"]: e["detail"] for e in map(json.loads, events.read_text().splitlines())
             if e["phase"] == "committed"}
    for host in HOSTS:      # the package's testinfra tests ran against each host
        assert "answered 3 times in a row; testinfra: 4 passed;" in gates[host]
    again = deploy(lab, state, "ollama:0.7.0")
    assert again.returncode == 0 and "nothing to do" in again.stderr   # re-run: a no-op


@pytest.mark.parametrize(("version", "why"), [("0.7.1", "not healthy within 20s"),
                                              ("0.7.2", "crash-looping")])
def test_bad_release_is_stopped_at_the_canary(lab: Lab, state: Path, version: str,
                                              why: str) -> None:
    baseline(lab, state)
    old = digests(lab, "0.6.8")
    result = deploy(lab, state, f"ollama:{version}", "--limit", "jetson-a1:jetson-a2",
                    "--canary", "jetson-a2")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert report["status"] == "failed" and report["steps"][0] == ["jetson-a2"]
    assert hosts["jetson-a2"]["phase"] == "reverted" and why in hosts["jetson-a2"]["error"]
    assert hosts["jetson-a1"]["phase"] == "cancelled"
    for host in ("jetson-a1", "jetson-a2"):     # the canary is back, the other untouched
        assert running(lab, host)["digest"] == old[host]
        assert serving(lab, host) == "0.6.8"
    assert "rollout=" + report["id"] not in lab.ssh("jetson-a1",
                                                    "cat /opt/fleetctl/ollama/audit.log").stdout


def test_failing_package_test_reverts_the_canary(lab: Lab, state: Path, tmp_path: Path) -> None:
    """A testinfra test of the package fails on the canary: the gate fails, it is reverted."""
    baseline(lab, state)
    catalog = tmp_path / "packages"
    shutil.copytree(ROOT / "packages", catalog)
    (catalog / "ollama" / "test_site.py").write_text(
        "def test_site_approval_is_on_the_host(host):\n"
        "    assert host.file('/etc/fleetctl-site-approved').exists\n")
    result = fleetctl("deploy", "ollama:0.7.0", "-i", lab.status["inventory"], "--state-dir",
                      str(state), "--limit", "jetson-a1:jetson-a2", "--canary", "jetson-a1",
                      "--yes", "--json", check=False, env={"FLEETCTL_PACKAGES": str(catalog)})
    assert result.returncode == 1, result.stderr
    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert hosts["jetson-a1"]["phase"] == "reverted"
    assert hosts["jetson-a1"]["error"] == ("gate: testinfra: 1 failed, 4 passed: test_site.py"
                                           "::test_site_approval_is_on_the_host - "
                                           "AssertionError: assert False")
    assert hosts["jetson-a2"]["phase"] == "cancelled"
    old = digests(lab, "0.6.8")
    for host in ("jetson-a1", "jetson-a2"):
        assert running(lab, host)["digest"] == old[host]


def test_unreachable_host_is_deferred_then_resumed(lab: Lab, state: Path,
                                                   tmp_path: Path) -> None:
    baseline(lab, state)
    result = deploy_with_fault(lab, state, tmp_path, "unreachable", "--timeout", "2")
    assert result.returncode == 4, result.stderr
    report = json.loads(result.stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert report["status"] == "incomplete"
    assert hosts["jetson-a2"]["phase"] == "deferred" and "timeout" in hosts["jetson-a2"]["error"]
    assert hosts["jetson-a1"]["phase"] == hosts["jetson-a3"]["phase"] == "committed"
    assert running(lab, "jetson-a2")["digest"] == digests(lab, "0.6.8")["jetson-a2"]
    resumed = fleetctl("rollout", "resume", report["id"], "-i", lab.status["inventory"],
                       "--state-dir", str(state), "--json", check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "completed"
    assert running(lab, "jetson-a2")["digest"] == digests(lab, "0.7.0")["jetson-a2"]


def test_disk_full_host_keeps_serving_its_old_release(lab: Lab, state: Path,
                                                      tmp_path: Path) -> None:
    baseline(lab, state)
    result = deploy_with_fault(lab, state, tmp_path, "disk-full", "--max-failures", "100%")
    report = json.loads(result.stdout)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["jetson-a2"]["phase"] == "failed"
    assert "disk" in hosts["jetson-a2"]["error"] or "space" in hosts["jetson-a2"]["error"]
    assert running(lab, "jetson-a2")["digest"] == digests(lab, "0.6.8")["jetson-a2"]
    assert serving(lab, "jetson-a2") == "0.6.8"
    assert hosts["jetson-a1"]["phase"] == "committed"


def start_and_kill(lab: Lab, state: Path, events: Path) -> str:
    """Start an upgrade in steps 1,1,1 and SIGKILL the controller during step 2."""
    argv = [sys.executable, "-m", "fleetctl", "deploy", "ollama:0.7.0", "-i",
            lab.status["inventory"], "--state-dir", str(state), "--limit", TARGET, "--yes",
            "--steps", "1", "--canary", "jetson-a1", "--events", str(events)]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    rollout = None
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in events.read_text().splitlines()] if events.exists() \
            else []
        rollout = rollout or next((e["rollout"] for e in lines), None)
        if any(e["host"] == "jetson-a2" and e["phase"] == "staged" for e in lines):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return rollout
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("step 2 never started")


def test_killed_controller_then_resume(lab: Lab, state: Path, tmp_path: Path) -> None:
    baseline(lab, state)
    rollout = start_and_kill(lab, state, tmp_path / "events.ndjson")
    status = json.loads(fleetctl("rollout", "status", rollout, "--state-dir", str(state),
                                 "--json").stdout)
    assert status["status"] == "interrupted"
    phases = {h["host"]: h["phase"] for h in status["hosts"]}
    assert phases["jetson-a1"] == "committed" and phases["jetson-a3"] == "pending"
    blocked = deploy(lab, state, "ollama:0.6.8", "--allow-downgrade")  # the dead rollout
    # still holds the lock
    assert blocked.returncode == 3 and f"locked by rollout {rollout}" in blocked.stderr
    resumed = fleetctl("rollout", "resume", rollout, "-i", lab.status["inventory"],
                       "--state-dir", str(state), "--json", check=False)
    assert resumed.returncode == 0, resumed.stderr
    new = digests(lab, "0.7.0")
    for host in HOSTS:
        assert running(lab, host)["digest"] == new[host]
        assert serving(lab, host) == "0.7.0"


def test_killed_controller_then_rollback(lab: Lab, state: Path, tmp_path: Path) -> None:
    baseline(lab, state)
    rollout = start_and_kill(lab, state, tmp_path / "events.ndjson")
    undone = fleetctl("rollback", rollout, "-i", lab.status["inventory"], "--state-dir",
                      str(state), "--json", check=False)
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["status"] == "rolled-back"
    old = digests(lab, "0.6.8")
    for host in HOSTS:
        assert running(lab, host)["digest"] == old[host]
        assert serving(lab, host) == "0.6.8"


def test_second_deploy_is_refused_while_one_holds_the_lock(lab: Lab, state: Path) -> None:
    baseline(lab, state)
    first = deploy(lab, state, "ollama:0.7.0", "--steps", "1,100%", "--pause", "manual")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["status"] == "paused"
    second = deploy(lab, state, "ollama:0.7.0")
    assert second.returncode == 3
    assert f"locked by rollout {report['id']} of " in second.stderr and "paused" in second.stderr
    assert "Traceback" not in second.stderr
    assert second.stderr.strip().splitlines()[-1].startswith("fleetctl: error: ")
    promoted = fleetctl("rollout", "promote", report["id"], "-i", lab.status["inventory"],
                        "--state-dir", str(state), "--json", check=False)
    assert json.loads(promoted.stdout)["status"] == "completed"


def test_rollback_package_to_previous_release_and_history(lab: Lab, state: Path) -> None:
    baseline(lab, state, "0.7.0")
    result = fleetctl("rollback", "ollama", "-i", lab.status["inventory"], "--state-dir",
                      str(state), "--limit", TARGET, "--json", check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["kind"] == "rollback" and report["status"] == "rolled-back"
    for host in HOSTS:
        assert running(lab, host)["digest"] == digests(lab, "0.6.8")[host]
    history = json.loads(fleetctl("history", "--host", "jetson-a1", "--state-dir", str(state),
                                  "--json").stdout)
    assert history[0]["rollout_id"] == report["id"] and history[0]["phase"] == "rolled-back"
    assert {"committed", "rolled-back"} <= {h["phase"] for h in history}
    missing = fleetctl("rollback", "ollama", "--to", "19990101T000000-dead", "-i",
                       lab.status["inventory"], "--state-dir", str(state), "--limit",
                       "jetson-a1", "--json", check=False)
    assert missing.returncode == 1
    [host] = json.loads(missing.stdout)["hosts"]
    assert "release 19990101T000000-dead is not on the device" in host["error"]


def test_audit_reports_drift_from_the_journal(lab: Lab, state: Path) -> None:
    baseline(lab, state)
    lab.ssh("jetson-a1", "docker rm -f $(docker ps -q --filter "
                         "label=com.docker.compose.project=ollama)")
    try:
        audit = fleetctl("audit", "-i", lab.status["inventory"], "--state-dir", str(state),
                         "--limit", TARGET, "--refresh", "--format", "json")
        drift = [f for f in json.loads(audit.stdout)["findings"] if f["rule"] == "drift"]
        assert [f["host"] for f in drift] == ["jetson-a1"]
        assert drift[0]["message"].startswith("ollama is not there; the journal has sha256:")
    finally:
        baseline(lab, state)


def test_a_downgrade_needs_allow_downgrade(lab: Lab, state: Path) -> None:
    baseline(lab, state, "0.7.0")
    refused = deploy(lab, state, "ollama:0.6.8")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "the plan downgrades 3 host(s), e.g. jetson-a1: ollama 0.7.0 -> 0.6.8; pass " \
           "--allow-downgrade" in refused.stderr
    assert all(running(lab, h)["digest"] == digests(lab, "0.7.0")[h] for h in HOSTS)


def test_a_canary_lost_after_activate_stops_the_rollout(lab: Lab, state: Path,
                                                         tmp_path: Path) -> None:
    """The canary's link drops while its gate waits on a release that never gets healthy
    (0.7.1): its state is unknown, so no other host starts; resume judges it."""
    baseline(lab, state)
    events = tmp_path / "events.ndjson"
    fleetctl("lab", "fault", "jetson-a1", "slow-link", "--delay-ms", "1")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetctl", "deploy", "ollama:0.7.1", "-i",
             lab.status["inventory"], "--state-dir", str(state), "--limit", TARGET, "--yes",
             "--json", "--canary", "jetson-a1", "--gate-timeout", "30s", "--events",
             str(events)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (events.exists() and any(
                e["host"] == "jetson-a1" and e["phase"] == "activated"
                for e in map(json.loads, events.read_text().splitlines()))):
            time.sleep(0.05)
    finally:
        fleetctl("lab", "heal", "jetson-a1")        # the proxy goes: the link drops
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 4, stdout + stderr
    report = json.loads(stdout)
    assert report["status"] == "incomplete" and "state is unknown" in report["message"]
    phases = {h["host"]: h["phase"] for h in report["hosts"]}
    assert phases == {"jetson-a1": "activated", "jetson-a2": "pending",
                      "jetson-a3": "skipped"}      # 0.7.1 has no r35 image
    assert running(lab, "jetson-a2")["digest"] == digests(lab, "0.6.8")["jetson-a2"]
    resumed = fleetctl("rollout", "resume", report["id"], "-i", lab.status["inventory"],
                       "--state-dir", str(state), "--json", check=False)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    final = {h["host"]: h["phase"] for h in json.loads(resumed.stdout)["hosts"]}
    assert final == {"jetson-a1": "reverted", "jetson-a2": "cancelled",
                     "jetson-a3": "skipped"}
    assert serving(lab, "jetson-a1") == "0.6.8"
