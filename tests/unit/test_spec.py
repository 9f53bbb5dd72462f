"""The lab's host spec: defaults, and one clear error per kind of mistake."""

from pathlib import Path

import pytest

from fleetctl.errors import InputError
from fleetctl.lab.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
ORIN_LINE = ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
             "DATE: Wed Jan  8 01:49:37 UTC 2025")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yml"
    path.write_text(text)
    return path


def test_default_fleet_has_two_sites_and_every_generation() -> None:
    spec = load_spec(ROOT / "inventories" / "lab" / "fleet.yml")
    jetsons = [h for h in spec.hosts if h.is_jetson]
    assert {g for h in jetsons for g in h.groups} >= {"factory-a", "factory-b"}
    assert {h.l4t.split(".")[0] for h in jetsons} == {"32", "35", "36"}
    assert {h.l4t for h in jetsons} >= {"36.4.3", "36.4.0"}
    assert [h.address for h in spec.hosts[:3]] == ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
    server = spec.host("build-server")
    assert not server.is_jetson and server.l4t is None and not server.docker


def test_defaults_fill_missing_keys(tmp_path: Path) -> None:
    text = f'hosts:\n  - name: j1\n    nv_tegra_release: "{ORIN_LINE}"\n'
    spec = load_spec(write(tmp_path, text))
    host = spec.hosts[0]
    assert (host.address, host.docker, host.nvidia_runtime, host.compose) == (
        "127.0.1.1", True, True, "v1")
    assert host.disk_bytes == 2 * 1024**3 and host.memory_mb == 7620
    assert host.serial == "lab0000000001"
    assert host.l4t_core_version == "36.4.3-20250108014937"


def test_sshd_only_host_defaults_to_no_compose_and_no_runtime(tmp_path: Path) -> None:
    host = load_spec(write(tmp_path, "hosts:\n  - {name: s1, docker: false}\n")).hosts[0]
    assert (host.docker, host.nvidia_runtime, host.compose) == (False, False, "none")


@pytest.mark.parametrize(("text", "message"), [
    ("hosts:\n  - name: j1\n    disks: 2g\n",
     r"fleet.yml:3: hosts\[0\] \(j1\).disks: unknown key 'disks'"),
    ("hosts:\n  - name: j1\n    nv_tegra_release: 'R36.4.3'\n",
     r"fleet.yml:3: hosts\[0\] \(j1\).nv_tegra_release: 'R36.4.3' is not an L4T release line"),
    ("hosts:\n  - {name: j1, address: 127.0.1.9}\n  - {name: j2, address: 127.0.1.9}\n",
     r"fleet.yml:3: hosts\[1\].address: 127.0.1.9 is already used by j1"),
    ("hosts:\n  - {name: j1}\n  - {name: j1}\n",
     r"fleet.yml:3: hosts\[1\].name: duplicate host 'j1'"),
    ("hosts:\n  - {name: j1, address: 10.0.0.5}\n",
     r"fleet.yml:2: hosts\[0\] \(j1\).address: 10.0.0.5 must be a loopback address"),
    ("hosts:\n  - {name: j1, docker: false, compose: v1}\n",
     r"hosts\[0\] \(j1\).compose: needs docker: true"),
    ("hosts:\n  - {name: j1, disk: 2 gigs}\n", r"disk: '2 gigs' is not a size"),
    ("hosts:\n  - {name: j1, memory_mb: lots}\n", r"memory_mb: should be a whole number"),
    ("hosts:\n  - {name: J_1}\n", r"'J_1' is not a valid host name"),
    ("hosts:\n  - {groups: [a]}\n", r"fleet.yml:2: hosts\[0\]: missing required key 'name'"),
    ("hosts: []\n", r"fleet.yml:1: 'hosts' should be a non-empty list"),
    ("hots:\n  - {name: j1}\n", r"fleet.yml:1: unknown key 'hots'"),
    ("hosts:\n  - {name: j1\n", r"fleet.yml:3: YAML error"),
])
def test_bad_specs_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as info:
        load_spec(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_hosts_option_repeats_the_spec_with_new_names_and_addresses(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts:\n  - {name: j, serial: '7'}\n  - {name: k, docker: false}\n")
    spec = load_spec(path, hosts=5)
    assert [h.name for h in spec.hosts] == ["j", "k", "j-2", "k-2", "j-3"]
    assert [h.address for h in spec.hosts][-1] == "127.0.1.5"
    assert spec.hosts[2].serial == "lab0000000003" and not spec.hosts[3].docker
    assert [h.name for h in load_spec(path, hosts=1).hosts] == ["j"]


def test_addresses_continue_past_254_hosts(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, "hosts:\n  - {name: s, docker: false}\n"), hosts=256)
    assert spec.hosts[253].address == "127.0.1.254"
    assert spec.hosts[254].address == "127.0.2.1"
