"""Inventories beyond plain files, probed and deployed to on the lab: an inventory script
(a CMDB's, answering Ansible's JSON) and a group_vars file encrypted by ansible-vault."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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


def test_a_vaulted_group_vars_file_is_opened_to_connect(lab: Lab, empty: None,
                                                        tmp_path: Path) -> None:
    """The lab's SSH key setting moves into group_vars/all.yml, encrypted by ansible-vault:
    fleetctl reaches the host only if it opens the file."""
    inventory = yaml.safe_load(Path(lab.status["inventory"]).read_text())
    key = inventory["all"]["vars"].pop("ansible_ssh_private_key_file")
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(
        yaml.safe_dump({"ansible_ssh_private_key_file": key}))
    (tmp_path / "pass").write_text("lab vault password\n")
    subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "encrypt",
                    "--vault-password-file", "pass", "group_vars/all.yml"], cwd=tmp_path,
                   check=True, capture_output=True)
    common = ["-i", str(tmp_path / "hosts.yml"), "--state-dir", str(tmp_path / "state"),
              "--limit", HOST]
    vault = {"FLEETCTL_VAULT_PASSWORD_FILE": str(tmp_path / "pass")}
    refused = fleetctl("audit", *common, check=False)
    assert refused.returncode == 2
    assert "group_vars/all.yml: vaulted; pass --vault-password-file" in refused.stderr
    audit = json.loads(fleetctl("audit", *common, "--format", "json", env=vault).stdout)
    assert [(h["host"], h["l4t"]) for h in audit["hosts"]] == [(HOST, "36.4.0")]
    deployed = fleetctl("deploy", "ollama:0.6.8", *common, "--yes", "--json",
                        "--gate-timeout", "20s", check=False, env=vault)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [row] = json.loads(deployed.stdout)["hosts"]
    assert (row["host"], row["phase"]) == (HOST, "committed")
