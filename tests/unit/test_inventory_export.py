"""``fleetctl inventory list --format ansible`` prints what ``ansible-inventory --list``
prints for the same inventory: the real ansible-inventory runs beside it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def fleetctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetctl", *args], capture_output=True,
                          text=True, cwd=ROOT, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def ansible_inventory(*args: str) -> dict:
    result = subprocess.run([str(ANSIBLE_INVENTORY), *args, "--list"], capture_output=True,
                            text=True, cwd=ROOT, check=True,
                            env={"PATH": "/usr/bin:/bin", "ANSIBLE_LOCALHOST_WARNING": "0"})
    return json.loads(result.stdout)


@pytest.mark.parametrize("source", ["inventories/example", "inventories/example/hosts.ini",
                                    "inventories/example/factory.yml"])
def test_the_examples_as_ansible_inventory_lists_them(source: str) -> None:
    result = fleetctl("inventory", "list", "-i", source, "--format", "ansible")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ansible_inventory("-i", source)


def test_limit_and_secrets(tmp_path: Path) -> None:
    """--limit keeps the selected hosts, as ansible-inventory --limit does; secrets print as
    Ansible prints them unless --redact asks for ***."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[web]\nw1 db_password=hunter2\nw2\n[db]\nd1 api_token=t0k\n")
    limited = fleetctl("inventory", "list", "-i", str(inventory), "--format", "ansible",
                       "--limit", "web:!w2")
    assert json.loads(limited.stdout) == ansible_inventory("-i", str(inventory), "--limit",
                                                           "web:!w2")
    whole = json.loads(fleetctl("inventory", "list", "-i", str(inventory), "--format",
                                "ansible").stdout)
    assert whole["_meta"]["hostvars"]["w1"] == {"db_password": "hunter2"}
    redacted = json.loads(fleetctl("inventory", "list", "-i", str(inventory), "--format",
                                   "ansible", "--redact").stdout)
    assert redacted["_meta"]["hostvars"] == {"w1": {"db_password": "***"},
                                             "d1": {"api_token": "***"}}


def test_a_term_that_names_nothing_is_one_warning_line(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[web]\nw1\n")
    result = fleetctl("inventory", "list", "-i", str(inventory), "--limit", "web:wbe")
    assert result.returncode == 0
    assert result.stderr == (f"fleetctl: warning: host pattern 'web:wbe': 'wbe' matches no host "
                             f"or group in {inventory}; ignored\n")
    nothing = fleetctl("inventory", "list", "-i", str(inventory), "--limit", "wbe")
    assert nothing.returncode == 2
    assert nothing.stderr == (f"fleetctl: error: --limit wbe matches no host in {inventory} "
                              f"('wbe': no such host or group)\n")
