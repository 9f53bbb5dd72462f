"""Connection targets from inventory variables, and --where selectors on facts."""

from pathlib import Path

import pytest

from fleetctl.errors import InputError
from fleetctl.facts.hostfacts import parse_probe
from fleetctl.inventory.model import Host
from fleetctl.inventory.sshconfig import ssh_args
from fleetctl.inventory.targets import host_key_policy, known_hosts_files, parse_where, target_for

OUTPUTS = Path(__file__).parent / "probe_outputs"
AGX = parse_probe((OUTPUTS / "agx-orin-jp61-ubuntu.txt").read_text())
NANO = parse_probe((OUTPUTS / "nano-jp46-dpkg-only-docker-down.txt").read_text())
SERVER = parse_probe((OUTPUTS / "lab-x86-server.txt").read_text())


def test_target_from_ansible_vars_with_known_hosts_from_ssh_args() -> None:
    host = Host("j1", {"ansible_host": "127.0.1.1", "ansible_port": 2222,
                       "ansible_ssh_private_key_file": "/k",
                       "ansible_ssh_common_args": "-o UserKnownHostsFile=/lab/kh "
                                                  "-o StrictHostKeyChecking=yes"}, [], "x")
    target = target_for(host)
    assert (target.address, target.port, target.key_file) == ("127.0.1.1", 2222, "/k")
    assert target.known_hosts == ("/lab/kh", "~/.ssh/known_hosts")


def test_fleetctl_known_hosts_var_comes_first() -> None:
    host_vars = {"fleetctl_known_hosts": "/a",
                 "ansible_ssh_extra_args": "-oUserKnownHostsFile='/b /c'"}
    assert known_hosts_files(host_vars, ssh_args(host_vars, "x")) == (
        "/a", "/b", "/c", "~/.ssh/known_hosts")


def test_host_key_policy_sources() -> None:
    assert host_key_policy({}, None) == "strict"
    assert host_key_policy({"fleetctl_host_key_policy": "accept-new"}, None) == "accept-new"
    assert host_key_policy({"fleetctl_host_key_policy": "accept-new"}, "strict") == "strict"
    with pytest.raises(InputError, match="should be one of strict, accept-new"):
        host_key_policy({}, "yolo")


@pytest.mark.parametrize(("selector", "agx", "nano", "server"), [
    ("l4t>=36.4", True, False, False),
    ("l4t>=r32.7", True, True, False),
    ("jetpack<6", False, True, False),
    ("module=orin-nano", False, False, False),
    ("module=agx-orin", True, False, False),
    ("arch=arm64", True, False, False),
    ("arch=x86_64", False, False, True),
    ("platform=jetson", True, True, False),
    ("docker=true", True, False, False),
    ("cuda==12.6", True, False, False),
    ("memory_mb>=8000", True, False, True),
    ("runtime=nvidia", True, False, False),
    ("module!=nano", True, False, False),
])
def test_where(selector: str, agx: bool, nano: bool, server: bool) -> None:
    where = parse_where(selector)
    assert (where.matches(AGX), where.matches(NANO), where.matches(SERVER)) == (agx, nano, server)


@pytest.mark.parametrize(("text", "message"), [
    ("l4t", "expected KEY OP VALUE"),
    ("colour=red", "unknown key 'colour'; keys: arch, compose"),
    ("l4t>=new", "'new' is not a version"),
    ("module>=nano", "module compares with =, == or != only"),
])
def test_bad_where(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_where(text)


def test_become_runs_commands_through_sudo(tmp_path) -> None:
    import shlex
    import subprocess

    import pytest

    from fleetctl.errors import InputError
    from fleetctl.inventory.ansible import load_inventory
    from fleetctl.inventory.targets import target_for
    from fleetctl.ssh import become_command

    path = tmp_path / "hosts.ini"
    path.write_text("j1 ansible_user=nvidia ansible_become=true\n"
                    "j2 ansible_user=nvidia ansible_become=yes ansible_become_user=svc "
                    "ansible_become_password='pa ss'\n"
                    "j3 ansible_user=nvidia ansible_become=true ansible_become_method=su\n"
                    "j4 ansible_user=nvidia\n")
    hosts = load_inventory(path).hosts
    j1, j2, j4 = (target_for(hosts[h]) for h in ("j1", "j2", "j4"))
    assert (j1.user, j1.become, j1.become_user, j1.become_password) == (
        "nvidia", True, "root", None)
    assert "pa ss" not in repr(j2)
    assert become_command(j4, "sh -s") == ("sh -s", b"")
    assert become_command(j1, "umask 077 && cat > 'a b'") == (
        "sudo -n -u root -- sh -c " + shlex.quote("umask 077 && cat > 'a b'"), b"")
    line, first = become_command(j2, "sh -s")
    assert first == b"pa ss\n"
    # the password goes to the first sudo, never to the command's stdin
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sudo").write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do [ "$1" = -S ] && '
                               'read -r pw && echo "sudo got: $pw" >&2; shift; done\n'
                               'shift; exec "$@"\n')
    (fake / "sudo").chmod(0o755)
    ran = subprocess.run(["sh", "-c", line], input=b"pa ss\necho script ran; cat\n",
                         capture_output=True, env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert (ran.stdout, ran.stderr) == (b"script ran\n", b"sudo got: pa ss\n")
    with pytest.raises(InputError, match="host j3: ansible_become_method 'su': fleetctl "
                                         "becomes root with sudo only"):
        target_for(hosts["j3"])
