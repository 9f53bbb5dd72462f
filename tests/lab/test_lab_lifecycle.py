"""`lab up` is safe to repeat, and `lab down` leaves nothing behind."""

import subprocess
from pathlib import Path

from ..conftest import DEFAULT_SPEC, Lab, fleetctl, lab_status


def leftovers(lab_dir: Path) -> list[str]:
    """Everything a torn-down lab must not leave: mounts, cgroups, listeners, processes, files."""
    found = []
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if "fleetlab" in line]
    found += [f"cgroup {p}" for p in Path("/sys/fs/cgroup").glob("*/fleetlab")]
    listeners = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    found += [f"listener {line.split()[3]}" for line in listeners.splitlines()
              if line.split()[3].startswith("127.0.1.") or line.split()[3].endswith(":5000")]
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    found += [f"process {line}" for line in ps.splitlines()
              if not line.startswith("Z") and ("fleetctl.lab" in line or "docker-registry" in line
                                               or "dockerd" in line or "sshd -D" in line)]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found += ["nft table fleetlab"] if "fleetlab" in tables else []
    if lab_dir.exists():
        found.append(f"file {lab_dir}")
    return found


def test_up_twice_changes_nothing_and_down_leaves_nothing(lab: Lab) -> None:
    before = {h["name"]: h["pids"] for h in lab_status()["hosts"]}
    fleetctl("lab", "up", "--spec", str(DEFAULT_SPEC))
    assert {h["name"]: h["pids"] for h in lab_status()["hosts"]} == before

    fleetctl("lab", "fault", "jetson-a4", "unreachable")
    fleetctl("lab", "fault", "jetson-b4", "hang")
    fleetctl("lab", "down")
    lab_dir = Path(lab.status["dir"])
    assert leftovers(lab_dir) == []
    assert "the lab is down" in fleetctl("lab", "status").stdout

    fleetctl("lab", "up", "--spec", str(DEFAULT_SPEC))  # leave the lab up for other tests
    assert lab.ssh("jetson-a4", "hostname").stdout.strip() == "jetson-a4"
    assert lab.ssh("jetson-b4", "hostname").stdout.strip() == "jetson-b4"
