"""Inventories beyond plain files, probed and deployed to on the lab: an inventory script
(a CMDB's, answering Ansible's JSON), a group_vars file encrypted by ansible-vault, and a
site reached through a bastion named in the user's ssh_config."""

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


def test_a_site_behind_a_bastion_is_probed_and_deployed_to_through_it(
        lab: Lab, empty: None, tmp_path: Path) -> None:
    """jetson-b2 answers only connections build-server's sshd forwards; the user's
    ~/.ssh/config says to jump through build-server. Probe, deploy (testinfra gate
    included) and --delivery ssh go through it; the bastion's log shows the channels."""
    bastion, address = lab.address("build-server"), lab.address(HOST)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(f"Host {address}\n  ProxyJump root@{bastion}\n")
    through = {"HOME": str(home)}
    common = ["-i", lab.status["inventory"], "--state-dir", str(tmp_path / "state"),
              "--limit", HOST]
    log = Path(lab.status["dir"]) / "hosts" / "build-server" / "sshd.log"
    before = log.read_text().count(f"to {address} port 22")
    fleetctl("lab", "fault", HOST, "behind-bastion", "--via", "build-server")
    try:
        direct = json.loads(fleetctl("audit", *common, "--format", "json", check=False).stdout)
        assert direct["hosts"][0]["status"] == "unreachable"
        audit = json.loads(fleetctl("audit", *common, "--format", "json", env=through).stdout)
        assert [(h["host"], h["l4t"]) for h in audit["hosts"]] == [(HOST, "36.4.0")]
        for version, delivery in (("0.6.8", []), ("0.7.0", ["--delivery", "ssh"])):
            deployed = fleetctl("deploy", f"ollama:{version}", *common, *delivery, "--yes",
                                "--json", "--gate-timeout", "20s", check=False, env=through)
            assert deployed.returncode == 0, deployed.stdout + deployed.stderr
            [row] = json.loads(deployed.stdout)["hosts"]
            assert (row["phase"], row["to_version"]) == ("committed", version)
        assert log.read_text().count(f"to {address} port 22") > before + 2
        fleetctl("lab", "fault", "build-server", "unreachable")
        down = json.loads(fleetctl("audit", *common, "--format", "json", "--refresh",
                                   check=False, env=through).stdout)
        assert down["hosts"][0]["reason"].startswith(
            f"bastion timeout: {bastion} (root@{bastion}:22): no answer from {bastion}:22")
    finally:
        fleetctl("lab", "heal", "build-server")
        fleetctl("lab", "heal", HOST)


def test_a_login_that_is_not_root_becomes_root_with_sudo(lab: Lab, empty: None,
                                                         tmp_path: Path) -> None:
    """jetson-b2 as 'nvidia' (password-less sudo) is probed and deployed to; as 'ops',
    whose sudo wants a password, it is refused in one reason, then reached with the
    password from a vaulted host_vars file and deployed to, the gate's tests included."""
    inventory = yaml.safe_load(Path(lab.status["inventory"]).read_text())
    inventory["all"]["hosts"][HOST].update(ansible_user="nvidia", ansible_become=True)
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    common = ["-i", str(tmp_path / "hosts.yml"), "--state-dir", str(tmp_path / "state"),
              "--limit", HOST]
    audit = json.loads(fleetctl("audit", *common, "--format", "json").stdout)
    assert [(h["host"], h["l4t"], h["docker"] is not None) for h in audit["hosts"]] == [
        (HOST, "36.4.0", True)]
    deployed = fleetctl("deploy", "ollama:0.6.8", *common, "--yes", "--json",
                        "--gate-timeout", "20s", check=False)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [row] = json.loads(deployed.stdout)["hosts"]
    assert row["phase"] == "committed"
    assert lab.ssh(HOST, "stat -c %U /opt/fleetctl").stdout.strip() == "root"

    inventory["all"]["hosts"][HOST]["ansible_user"] = "ops"
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    refused = json.loads(fleetctl("audit", *common, "--format", "json", "--refresh",
                                  check=False).stdout)
    assert refused["hosts"][0]["reason"] == (
        f"sudo failed: ops@{lab.address(HOST)} cannot become root: sudo: a password is "
        f"required; set ansible_become_password (vault it) or allow the user NOPASSWD in "
        f"sudoers")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / f"{HOST}.yml").write_text(
        "ansible_become_password: lab-sudo-password\n")
    (tmp_path / "pass").write_text("vault password\n")
    subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "encrypt",
                    "--vault-password-file", "pass", f"host_vars/{HOST}.yml"], cwd=tmp_path,
                   check=True, capture_output=True)
    vault = {"FLEETCTL_VAULT_PASSWORD_FILE": str(tmp_path / "pass")}
    opened = json.loads(fleetctl("audit", *common, "--format", "json", "--refresh",
                                 env=vault).stdout)
    assert [(h["host"], h["l4t"]) for h in opened["hosts"]] == [(HOST, "36.4.0")]
    # the gate's tests run their commands through that sudo too (ollama's read docker)
    events = tmp_path / "events.ndjson"
    deployed = fleetctl("deploy", "ollama:0.7.0", *common, "--yes", "--json", "--events",
                        str(events), "--gate-timeout", "20s", check=False, env=vault)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    [committed] = [e for e in map(json.loads, events.read_text().splitlines())
                   if e.get("phase") == "committed"]
    assert "testinfra: 4 passed" in committed["detail"], committed
