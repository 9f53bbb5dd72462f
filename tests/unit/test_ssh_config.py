"""Targets as OpenSSH would reach them: ~/.ssh/config (or -F) and the ssh arguments in the
inventory, with ProxyJump and ProxyCommand, in OpenSSH's order of precedence."""

from pathlib import Path

import pytest

from fleetctl.errors import InputError
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.targets import Target, target_for

CONFIG = """\
Host bastion-a
  HostName 127.0.1.50
  User jump
  Port 2200
  IdentityFile ~/.ssh/bastion_key
  UserKnownHostsFile ~/.ssh/site_known_hosts

Host 10.20.*
  ProxyJump bastion-a
  User nvidia
  Port 2222

Host cam-by-alias
  HostName 10.20.0.9
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(CONFIG)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def targets(tmp_path: Path, ini: str) -> dict[str, Target]:
    (tmp_path / "hosts.ini").write_text(ini)
    return {n: target_for(h) for n, h in load_inventory(tmp_path / "hosts.ini").hosts.items()}


def test_the_users_ssh_config_puts_a_site_behind_its_bastion(home: Path) -> None:
    found = targets(home, "[site]\ncam1 ansible_host=10.20.0.5\n"
                          "cam2 ansible_host=10.20.0.6 ansible_user=root ansible_port=22\n"
                          "cam3 ansible_host=cam-by-alias\nelse ansible_host=10.30.0.1\n")
    bastion = Target("bastion-a", "127.0.1.50", 2200, "jump", f"{home}/.ssh/bastion_key",
                     found["cam1"].known_hosts)
    assert found["cam1"] == Target("cam1", "10.20.0.5", 2222, "nvidia", None,
                                   found["cam1"].known_hosts, jump=(bastion,))
    # the inventory's own user and port come first, as Ansible passes them first
    assert (found["cam2"].user, found["cam2"].port) == ("root", 22)
    assert (found["cam3"].address, found["cam3"].jump) == ("10.20.0.9", ())
    assert (found["else"].jump, found["else"].user, found["else"].port) == ((), "root", 22)


def test_ssh_arguments_in_the_inventory_beat_the_config(home: Path) -> None:
    found = targets(home, "[site]\n"
                          "a ansible_host=10.20.0.5 ansible_ssh_common_args='-o ProxyJump=none'\n"
                          "b ansible_host=10.40.0.1 ansible_ssh_common_args='-J ops@gw:2022,"
                          "bastion-a -l admin'\n"
                          "c ansible_host=10.40.0.2 ansible_ssh_extra_args='-o \"ProxyCommand="
                          "nc -X connect -x proxy:3128 %h %p\"'\n")
    assert found["a"].jump == () and found["a"].user == "nvidia"
    assert [(j.name, j.address, j.port, j.user) for j in found["b"].jump] == [
        ("gw", "gw", 2022, "ops"), ("bastion-a", "127.0.1.50", 2200, "jump")]
    assert found["b"].user == "admin"
    assert found["c"].proxy_command == "nc -X connect -x proxy:3128 %h %p"


def test_a_config_named_with_dash_f_and_bad_values(home: Path) -> None:
    (home / "other_config").write_text("Host *\n  Port 2022\n  User ops\n")
    found = targets(home, f"[site]\nh1 ansible_ssh_common_args='-F {home}/other_config'\n")
    assert (found["h1"].port, found["h1"].user) == (2022, "ops")
    with pytest.raises(InputError, match=r"hosts.ini:2: host h2: port 'ssh' is not a port"):
        targets(home, "[site]\nh2 ansible_ssh_common_args='-p ssh'\n")
    with pytest.raises(InputError, match=r"hosts.ini:2: host h3: ssh config missing \(-F\): "
                                         r"no such file"):
        targets(home, "[site]\nh3 ansible_ssh_common_args='-F missing'\n")
