"""Dynamic inventories: real executables and a real ansible-core inventory plugin, read by
fleetctl and by ansible-inventory beside it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fleetctl.errors import InputError
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.builder import InventoryBuilder
from fleetctl.inventory.dynamic import parse_script
from fleetctl.inventory.export import ansible_list

ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"

WITH_META = {
    "factory_a": {"hosts": ["cam1", "cam2"], "vars": {"site": "a", "port": 8080},
                  "children": ["orin"]},
    "orin": {"hosts": ["cam2", "qa1"]},
    "legacy_list": ["old1"],
    "_meta": {"hostvars": {"cam1": {"ansible_host": "10.0.0.1", "serial": 7},
                           "qa1": {"ansible_user": "nvidia"}}},
}


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\nimport json, sys, time\n{body}")
    path.chmod(0o755)
    return path


def ansible_says(source: Path) -> dict:
    result = subprocess.run([str(ANSIBLE_INVENTORY), "-i", str(source), "--list"],
                            capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "ANSIBLE_LOCALHOST_WARNING": "0",
                                 "ANSIBLE_DEPRECATION_WARNINGS": "0"})
    return json.loads(result.stdout)


def test_a_script_with_meta_is_read_as_ansible_reads_it(tmp_path: Path) -> None:
    inventory = script(tmp_path, "fleet.py", f"print(json.dumps({WITH_META!r}))\n")
    listing = ansible_list(load_inventory(inventory))
    assert listing == ansible_says(inventory)
    assert listing["_meta"]["hostvars"]["cam2"] == {"site": "a", "port": 8080}


def test_a_script_without_meta_is_asked_per_host(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    inventory = script(tmp_path, "fleet.py", f"""
open({str(calls)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "--list":
    print(json.dumps({{"web": {{"hosts": ["w1", "w2"], "vars": {{"tier": "front"}}}}}}))
else:
    print(json.dumps({{"w1": {{"ansible_port": 2222}}}}.get(sys.argv[2], {{}})))
""")
    inventory_read = load_inventory(inventory)
    assert calls.read_text().splitlines() == ["--list", "--host w1", "--host w2"]
    assert inventory_read.hosts["w1"].port == 2222
    assert ansible_list(inventory_read) == ansible_says(inventory)


@pytest.mark.parametrize(("body", "message"), [
    ("sys.stderr.write('cmdb: 503 Service Unavailable\\n'); sys.exit(3)",
     r"fleet.py --list: exited with status 3 \(stderr: cmdb: 503 Service Unavailable\)"),
    ("print('<html>login</html>')", r"fleet.py --list: did not print JSON"),
    ("print(json.dumps([1, 2]))", r"fleet.py --list: printed list, not a mapping of groups"),
    ("print(json.dumps({'web': {'hosts': 'w1'}}))", r"web.hosts should be a list of host names"),
    ("print(json.dumps({'web': ['w1'], '_meta': {'hostvars': []}}))",
     r"_meta.hostvars should be a mapping"),
])
def test_a_failing_script_is_one_line_with_its_stderr(tmp_path: Path, body: str,
                                                      message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_inventory(script(tmp_path, "fleet.py", body + "\n"))


def test_a_script_that_hangs_is_stopped(tmp_path: Path) -> None:
    hanging = script(tmp_path, "fleet.py", "time.sleep(60)\n")
    with pytest.raises(InputError, match=r"fleet.py --list: gave no answer within 1s"):
        parse_script(InventoryBuilder(), hanging, timeout=1)


def test_an_executable_text_file_is_still_an_ini_inventory(tmp_path: Path) -> None:
    """Files copied from Windows shares are often executable: without #! they are data."""
    hosts = tmp_path / "hosts"
    hosts.write_text("[web]\nw1\n")
    hosts.chmod(0o755)
    assert list(load_inventory(hosts).hosts) == ["w1"]


def test_an_inventory_plugin_configuration_runs_through_ansible_inventory(
        tmp_path: Path) -> None:
    config = tmp_path / "generated.yml"
    config.write_text("plugin: ansible.builtin.generator\n"
                      "hosts:\n  name: '{{ site }}-{{ role }}'\n"
                      "layers:\n  site: [plant1, plant2]\n  role: [cam, qa]\n")
    inventory = load_inventory(config)
    assert list(inventory.hosts) == ["plant1-cam", "plant1-qa", "plant2-cam", "plant2-qa"]
    assert ansible_list(inventory) == ansible_says(config)
