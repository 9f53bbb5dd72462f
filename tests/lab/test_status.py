"""``fleetctl status`` on the lab after a deploy: table, JSON and Prometheus output, an
unreachable host marked, one SSH round trip per host."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ..conftest import Lab, fleetctl


def test_status_after_a_deploy(lab: Lab, tmp_path: Path) -> None:
    common = ["-i", lab.status["inventory"], "--state-dir", str(tmp_path)]
    fleetctl("deploy", "ollama:0.7.0", *common, "--limit", "jetson-a1", "--steps", "100%",
             "--allow-downgrade", "--yes")
    fleetctl("lab", "fault", "jetson-b1", "sshd-down")
    try:
        pair = ["--limit", "jetson-a1:jetson-b1"]
        as_json = fleetctl("status", *common, *pair, "--format", "json", check=False)
        table = fleetctl("status", *common, *pair, check=False)
        metrics = fleetctl("status", *common, *pair, "--format", "prometheus", check=False)
    finally:
        fleetctl("lab", "heal", "jetson-b1")
    assert as_json.returncode == table.returncode == metrics.returncode == 4
    a1, b1 = json.loads(as_json.stdout)
    assert (a1["host"], a1["reachable"], b1["reachable"]) == ("jetson-a1", True, False)
    assert b1["error"].startswith("refused")
    app = next(a for a in a1["apps"] if a["package"] == "ollama")   # others may run too
    assert (app["package"], app["version"], app["state"], app["health"]) == \
        ("ollama", "0.7.0", "running", "healthy")
    assert app["digest"] == lab.status["registry"]["images"][
        "dustynv/ollama:0.7.0-r36.4.0-cu126-22.04"]
    assert app["check_status"] == 200 and app["restarts"] == 0
    assert a1["tegrastats"]["ram_total_mb"] == 7620        # the Orin Nano's, from tegrastats
    assert "jetson-a1" in table.stdout and "unreachable: refused" in table.stdout
    samples = {(s.name, s.labels.get("host"), s.labels.get("package")): s.value
               for family in text_string_to_metric_families(metrics.stdout)
               for s in family.samples}
    assert samples[("fleetctl_host_up", "jetson-a1", None)] == 1
    assert samples[("fleetctl_host_up", "jetson-b1", None)] == 0
    assert samples[("fleetctl_app_healthy", "jetson-a1", "ollama")] == 1
    assert samples[("fleetctl_device_ram_total_bytes", "jetson-a1", None)] == 7620 * 2**20
