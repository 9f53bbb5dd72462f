"""Image-based L4T updates on the lab: jetson-c2, an AGX Orin on R35.6.0 running ollama's
r35 image, goes to R36.4.3 with an OTA payload (made by ``fleetctl lab ota-payload``,
the lab's l4t_generate_ota_package.sh): the payload is sent over SSH, the lab's
nv_ota_start.sh writes slot B, the host reboots into it and ollama runs its r36.4
image there; ``rollback`` boots slot A again, where R35.6.0 and the old ollama are. A
slot that does not boot leaves the host on slot A; a payload for another board is
refused before anything is sent.

Every test starts from a reflashed jetson-c2 and leaves it reflashed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import Lab, fleetctl
from .test_os_upgrade import reflashed

HOST = "jetson-c2"
RUNNING = "docker inspect -f '{{.Config.Image}}' $(docker ps -q)"
WHERE = (f"head -n 1 /etc/nv_tegra_release; nvbootctrl dump-slots-info | "
         f"sed -n 's/^Current bootloader slot: //p'; {RUNNING}")


@pytest.fixture
def fresh(lab: Lab, tmp_path: Path) -> Iterator[list[str]]:
    """jetson-c2 as flashed, running ollama 0.6.8's r35 image."""
    yield from reflashed(lab, tmp_path, HOST)


def payload(tmp_path: Path, board: str = HOST) -> Path:
    out = tmp_path / f"ota_payload_package-{board}.tar.gz"
    fleetctl("lab", "ota-payload", board, "--to", "36.4.3", "--out", str(out))
    return out


def upgrade(common: list[str], file: Path) -> dict:
    result = fleetctl("os", "upgrade", "--to", "36.4.3", "--payload", str(file), *common,
                      "--limit", HOST, "--steps", "100%", "--reboot-timeout", "30s", "--yes",
                      "--json", check=False)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def states(report: dict) -> dict[str, dict]:
    return {h["package"]: h for h in report["hosts"]}


def test_an_r35_orin_goes_to_r36_on_its_other_slot_and_back(lab: Lab, fresh: list[str],
                                                              tmp_path: Path) -> None:
    images = lab.status["registry"]["images"]
    r35 = images["dustynv/ollama:0.6.8-r35.4.1-cu114-20.04"]
    r36 = images["dustynv/ollama:0.6.8-r36.4.0-cu126-22.04"]
    before = lab.ssh(HOST, WHERE).stdout.splitlines()
    assert before[0].startswith("# R35 (release), REVISION: 6.0") and before[1] == "A"
    assert before[2].endswith(r35)
    report = upgrade(fresh, payload(tmp_path))
    hosts = states(report)
    assert (report["status"], hosts["l4t"]["phase"]) == ("completed", "committed")
    assert (hosts["ollama"]["phase"], hosts["ollama"]["to_digest"]) == ("committed", r36)
    after = lab.ssh(HOST, WHERE).stdout.splitlines()
    assert after[0].startswith("# R36 (release), REVISION: 4.3") and after[1] == "B"
    assert after[2].endswith(r36)
    [row] = json.loads(fleetctl("audit", "--os", *fresh, "--limit", HOST, "--refresh",
                                "--format", "json").stdout)["hosts"]
    assert (row["l4t"], row["slot"], row["firmware"], row["os_state"]) == (
        "36.4.3", "B", "36.4.3", "ok")

    back = json.loads(fleetctl("rollback", report["id"], *fresh, "--json").stdout)
    assert back["status"] == "rolled-back", back["message"]
    assert states(back)["l4t"]["phase"] == "rolled-back"
    again = lab.ssh(HOST, WHERE).stdout.splitlines()
    assert again == before                  # slot A, R35.6.0 and the old ollama


def test_a_new_slot_that_does_not_boot_leaves_the_host_on_its_old_one(
        lab: Lab, fresh: list[str], tmp_path: Path) -> None:
    before = lab.ssh(HOST, WHERE).stdout.splitlines()
    fleetctl("lab", "fault", HOST, "new-slot-fails-to-boot")
    try:
        report = upgrade(fresh, payload(tmp_path))
    finally:
        fleetctl("lab", "heal", HOST)
    hosts = states(report)
    assert report["status"] == "failed" and hosts["l4t"]["phase"] == "reverted"
    assert hosts["l4t"]["error"].startswith("slot B did not boot: the bootloader went back "
                                            "to slot A (R35.6.0; ")
    assert hosts["ollama"]["phase"] == "skipped"
    assert lab.ssh(HOST, WHERE).stdout.splitlines() == before
    [row] = json.loads(fleetctl("audit", "--os", *fresh, "--limit", HOST, "--refresh",
                                "--format", "json").stdout)["hosts"]
    assert (row["slot"], row["os_state"]) == ("A", "slot 1 unbootable")


def test_a_payload_for_another_board_is_refused_before_anything_is_sent(
        lab: Lab, tmp_path: Path) -> None:
    common = ["-i", lab.status["inventory"], "--state-dir", str(tmp_path)]
    other = payload(tmp_path, board="jetson-c1")       # an Orin NX's, not an AGX Orin's
    result = fleetctl("os", "upgrade", "--to", "36.4.3", "--payload", str(other), *common,
                      "--limit", HOST, "--yes", check=False)
    assert result.returncode == 1
    assert "is not in the payload's ota_board_specs.conf" in result.stderr
    assert lab.ssh(HOST, "ls /opt/fleetctl/l4t/ota /var/log/ota_log", check=False
                   ).returncode != 0        # nothing was sent, nv_ota_start.sh never ran
