"""Inventories that are not a YAML or INI file, probed and deployed to on the lab: an
inventory script (a CMDB's, answering Ansible's JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ..conftest import Lab, fleetctl

HOST = "jetson-b2"

#: a CMDB export as inventory scripts write them: groups, and every host's vars in _meta
CMDB = '''\
import json, sys, yaml
lab = yaml.safe_load(open({inventory!r}))["all"]
if sys.argv[1:] != ["--list"]:
    sys.exit("this CMDB answers --list only")
groups = {{name: {{"hosts": list(body["hosts"])}} for name, body in lab["children"].items()}}
groups["all"] = {{"vars": lab["vars"]}}
print(json.dumps({{**groups, "_meta": {{"hostvars": lab["hosts"]}}}}))
'''


@pytest.fixture
def empty(lab: Lab):
    lab.clear(HOST)
    yield
    lab.clear(HOST)


def test_a_script_inventory_is_probed_and_deployed_to(lab: Lab, empty: None,
                                                      tmp_path: Path) -> None:
    script = tmp_path / "cmdb.py"
    script.write_text(f"#!{sys.executable}\n" + CMDB.format(inventory=lab.status["inventory"]))
    script.chmod(0o755)
    common = ["-i", str(script), "--state-dir", str(tmp_path / "state"), "--limit", HOST]
    audit = json.loads(fleetctl("audit", *common, "--format", "json").stdout)
    assert [(h["host"], h["l4t"]) for h in audit["hosts"]] == [(HOST, "36.4.0")]
    deployed = fleetctl("deploy", "ollama:0.6.8", *common, "--yes", "--json",
                        "--gate-timeout", "20s", check=False)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [row] = json.loads(deployed.stdout)["hosts"]
    assert (row["host"], row["package"], row["phase"]) == (HOST, "ollama", "committed")
    label = lab.ssh(HOST, "docker ps --filter label=com.docker.compose.project=ollama "
                          "--format '{{.Label \"io.fleetctl.version\"}}'").stdout.strip()
    assert label == "0.6.8"
