"""``fleetctl os plan`` on the lab's Jetsons: each one's way to R36.4.4, read from its
apt source, nvbootctrl, ESRT, root filesystem and module, and its ollama planned again
(the other outcomes of that, another version or blocked, are unit-tested)."""

from __future__ import annotations

import json
from pathlib import Path

from ..conftest import Lab, fleetctl


def test_each_jetson_s_way_to_r36_4_4(lab: Lab, tmp_path: Path) -> None:
    common = ["-i", lab.status["inventory"], "--state-dir", str(tmp_path)]
    deployed = fleetctl("deploy", "ollama:0.6.8", *common, "--limit", "jetson-c2", "--steps",
                        "100%", "--allow-downgrade", "--yes", "--json")   # its R35 image
    try:
        result = fleetctl("os", "plan", "--to", "36.4.4", *common, "--limit",
                          "factory-*", "--format", "json")
        table = fleetctl("os", "plan", "--to", "36.4.4", *common, "--limit", "jetson-b4")
    finally:        # as it was: other tests start from an empty jetson-c2
        fleetctl("rollback", json.loads(deployed.stdout)["id"], *common)
    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert {h: p["path"] for h, p in hosts.items()} == {
        "jetson-a1": "apt", "jetson-a2": "apt", "jetson-a3": "blocked", "jetson-a4": "blocked",
        "jetson-b1": "apt", "jetson-b2": "apt", "jetson-b3": "blocked",
        "jetson-b4": "blocked", "jetson-c1": "apt", "jetson-c2": "image"}
    assert (hosts["jetson-a2"]["current"], hosts["jetson-c2"]["current"]) == ("36.4.0",
                                                                             "35.6.0")
    assert hosts["jetson-b3"]["reasons"] == ["R36 does not support xavier-nx: stay on R35"]
    assert hosts["jetson-a3"]["reasons"] == ["R36 does not support xavier-nx: stay on R35"]
    assert hosts["jetson-a4"]["reasons"] == [
        "JetPack 4 (R32) cannot be updated over the air to JetPack 5 or 6: reflash"]
    assert hosts["jetson-c2"]["notes"][0] == "rollback: back to slot A and R35.6.0"
    assert "ollama 0.6.8 then runs 0.6.8-r36.4.0-cu126-22.04" in hosts["jetson-c2"]["notes"]
    assert "no automatic rollback" in hosts["jetson-a1"]["notes"][0]
    assert "blocked" in table.stdout and "reflash" in table.stdout
