"""``fleetctl os upgrade`` on the lab: jetson-c1, an Orin NX on R36.3.0 running ollama's
r36.3 image, goes to R36.4.3 over the lab's signed NVIDIA-style apt repository, reboots
(the firmware takes the bootloader capsule) and runs ollama's r36.4 image after it, in
the same host step. Each fault stops the rollout at that canary with the host's state
true in the journal and in ``audit --os``; the second host of the rollout (jetson-b2,
R36.4.0, which would go to R36.4.3 too) is never touched. Hosts with no way to the
target are refused with their reasons.

Every test starts from a reflashed jetson-c1 and leaves it reflashed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Lab, fleetctl

HOST, OTHER, CURRENT = "jetson-c1", "jetson-b2", "jetson-b1"   # b1 is on R36.4.3
RELEASE = "head -n 1 /etc/nv_tegra_release; cat /etc/apt/sources.list.d/*.list"


def reflashed(lab: Lab, tmp_path: Path, host: str) -> Iterator[list[str]]:
    """``host`` as flashed, running ollama 0.6.8 (its image for the host's release),
    reflashed again afterwards; yields the common flags."""
    fleetctl("lab", "reflash", host)
    common = ["-i", lab.status["inventory"], "--state-dir", str(tmp_path)]
    fleetctl("deploy", "ollama:0.6.8", *common, "--limit", host, "--steps", "100%", "--yes")
    yield common
    fleetctl("lab", "reflash", host)


@pytest.fixture
def fresh(lab: Lab, tmp_path: Path) -> Iterator[list[str]]:
    """jetson-c1 as flashed, running ollama 0.6.8's r36.3 image."""
    yield from reflashed(lab, tmp_path, HOST)


def upgrade(common: list[str], other: str, *flags: str) -> tuple[dict, object]:
    result = fleetctl("os", "upgrade", "--to", "36.4.3", *common, "--limit",
                      f"{HOST},{other}", "--canary", HOST, "--steps", "1,100%",
                      "--reboot-timeout", "20s", "--yes", "--json", *flags, check=False)
    return json.loads(result.stdout), result


def states(report: dict) -> dict[tuple[str, str], dict]:
    return {(h["host"], h["package"]): h for h in report["hosts"]}


def os_audit(common: list[str]) -> dict:
    result = fleetctl("audit", "--os", *common, "--limit", HOST, "--refresh", "--format",
                      "json", check=False)
    return json.loads(result.stdout)


def test_an_orin_goes_to_r36_4_over_apt_and_its_ollama_to_the_r36_4_image(
        lab: Lab, fresh: list[str]) -> None:
    running = "docker inspect -f '{{.Config.Image}}' $(docker ps -q)"
    r36_3 = lab.status["registry"]["images"]["dustynv/ollama:0.6.8-r36.3.0-cu122-22.04"]
    assert lab.ssh(HOST, running).stdout.strip().endswith(r36_3)
    report, result = upgrade(fresh, CURRENT)
    assert result.returncode == 0, result.stderr
    hosts = states(report)
    assert report["kind"] == "os" and report["status"] == "completed"
    assert hosts[(HOST, "l4t")]["phase"] == "committed"
    assert hosts[(CURRENT, "l4t")]["phase"] == "noop"          # already on R36.4.3
    ollama = hosts[(HOST, "ollama")]
    r36_4 = lab.status["registry"]["images"]["dustynv/ollama:0.6.8-r36.4.0-cu126-22.04"]
    assert r36_4 != r36_3
    assert (ollama["phase"], ollama["to_digest"]) == ("committed", r36_4)
    shown = lab.ssh(HOST, "head -n 1 /etc/nv_tegra_release; "
                          "dpkg-query -W -f='${Version}\\n' nvidia-l4t-core; "
                          "cat /sys/firmware/efi/esrt/entries/entry0/fw_version; "
                          f"{running}").stdout.splitlines()
    assert shown[0].startswith("# R36 (release), REVISION: 4.3, GCID: 38968081")
    assert shown[1].startswith("36.4.3-") and shown[2] == str((36 << 16) | (4 << 8) | 3)
    assert shown[3].endswith(r36_4)
    audit = os_audit(fresh)
    [row] = audit["hosts"]
    assert (row["l4t"], row["firmware"], row["os_state"]) == ("36.4.3", "36.4.3", "ok")
    assert row["apps"] == ["ollama:0.6.8"]
    assert not [f for f in audit["findings"] if f["rule"] in ("os", "drift")]


@pytest.mark.parametrize(("fault", "error", "os_state"), [
    ("disk-full-at-download", "stage: os_stage_apt: E: ", "ok"),
    ("dpkg-interrupted", "install: os_install_apt: E: Sub-process /usr/bin/dpkg",
     "dpkg unfinished: "),
    ("capsule-not-applied", "ESRT last_attempt_status 6162 (capsule not applied)",
     "capsule failed (last_attempt_status 6162)"),
    ("reboot-hangs", "did not come back within 20s of its reboot", None),
])
def test_each_fault_stops_the_rollout_at_the_canary_with_the_truth(
        lab: Lab, fresh: list[str], fault: str, error: str, os_state: str | None) -> None:
    other = lab.ssh(OTHER, RELEASE).stdout
    fleetctl("lab", "fault", HOST, fault)
    try:
        report, result = upgrade(fresh, OTHER)
        assert result.returncode == 1 and report["status"] == "failed"
        hosts = states(report)
        assert hosts[(HOST, "l4t")]["phase"] == "failed"
        assert error in hosts[(HOST, "l4t")]["error"]
        assert hosts[(HOST, "ollama")]["phase"] == "skipped"
        assert hosts[(OTHER, "l4t")]["phase"] == "cancelled"
        if fault == "reboot-hangs":
            row = os_audit(fresh)["hosts"][0]
            assert row["status"] == "unreachable"
            return
        [row] = os_audit(fresh)["hosts"]
        assert os_state in row["os_state"]
        if fault == "dpkg-interrupted":
            assert "nvidia-l4t-kernel" in row["os_state"]
        if fault == "disk-full-at-download":      # nothing installed, the source as it was
            assert lab.ssh(HOST, RELEASE).stdout.splitlines()[1].endswith(" r36.3 main")
            assert row["l4t"] == "36.3.0"
        if fault == "capsule-not-applied":        # the rootfs moved, the firmware did not
            assert (row["l4t"], row["firmware"]) == ("36.4.3", "36.3.0")
    finally:
        fleetctl("lab", "heal", HOST)
        touched = lab.ssh(OTHER, RELEASE).stdout != other
        if touched:
            fleetctl("lab", "reflash", OTHER)     # other tests expect it as flashed
        assert not touched, f"{OTHER} was changed"


def test_hosts_with_no_way_to_the_target_are_refused_with_their_reasons(
        lab: Lab, tmp_path: Path) -> None:
    result = fleetctl("os", "upgrade", "--to", "36.4.3", "-i", lab.status["inventory"],
                      "--state-dir", str(tmp_path), "--limit", "jetson-b3,jetson-a4", "--yes",
                      check=False)
    assert result.returncode == 1
    assert "no host can take l4t:36.4.3" in result.stderr
    assert "jetson-a4: JetPack 4 (R32) cannot be updated over the air" in result.stderr
    assert "jetson-b3: R36 does not support xavier-nx: stay on R35" in result.stderr


def test_the_os_playbook_plans_the_update_and_the_apps_for_the_new_release(
        lab: Lab, tmp_path: Path) -> None:
    result = fleetctl("run", "playbooks/factory-c-jetpack-6.2.yml", "--check", "-i",
                      lab.status["inventory"], "--state-dir", str(tmp_path))
    rows = [line for line in result.stdout.splitlines() if "│ jetson-c" in line]
    c1 = [r for r in rows if "jetson-c1" in r]
    assert "l4t" in c1[0] and "upgrade" in c1[0] and "36.4.3 (apt)" in c1[0]
    assert "ollama" in c1[1] and "0.6.8-r36.4.0-cu126-22.04" in c1[1]
    c2 = [r for r in rows if "jetson-c2" in r]       # image-based: the playbook has no payload
    assert "l4t" in c2[0] and "blocked" in c2[0]
