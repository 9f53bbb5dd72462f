"""Ansible Vault: group_vars files and !vault values that the real ansible-vault encrypted,
opened with the password file, refused in one line with a wrong one, kept closed without
one, and registered as secrets once opened."""

import subprocess
import sys
from pathlib import Path

import pytest

from fleetctl import secrets
from fleetctl.errors import InputError
from fleetctl.inventory.ansible import load_inventory
from fleetctl.inventory.export import ansible_list
from fleetctl.vault import load_vault

ANSIBLE_VAULT = Path(sys.executable).parent / "ansible-vault"


def vault_cli(*args: str, cwd: Path) -> str:
    return subprocess.run([str(ANSIBLE_VAULT), *args], capture_output=True, text=True,
                          check=True, cwd=cwd, env={"PATH": "/usr/bin:/bin"}).stdout


@pytest.fixture
def vaulted(tmp_path: Path) -> Path:
    """An inventory whose group_vars/web.yml ansible-vault encrypted (1.1), with a !vault
    value encrypted under a vault id label (1.2)."""
    (tmp_path / "pass").write_text("correct horse\n")
    (tmp_path / "group_vars").mkdir()
    web = tmp_path / "group_vars" / "web.yml"
    web.write_text("db_password: s3cr3t-from-file\nansible_user: nvidia\n")
    vault_cli("encrypt", "--vault-password-file", "pass", str(web), cwd=tmp_path)
    token = vault_cli("encrypt_string", "--vault-id", "prod@pass", "t0ken-value-42",
                      "--name", "api_token", cwd=tmp_path)
    (tmp_path / "hosts.yml").write_text("web:\n  hosts:\n    w1:\n      " +
                                        token.replace("\n", "\n      ") + "\n")
    return tmp_path


def test_files_and_values_ansible_vault_made_are_opened(vaulted: Path) -> None:
    assert (vaulted / "group_vars" / "web.yml").read_text().startswith("$ANSIBLE_VAULT;1.1;")
    assert "$ANSIBLE_VAULT;1.2;AES256;prod" in (vaulted / "hosts.yml").read_text()
    inventory = load_inventory(vaulted / "hosts.yml", load_vault(vaulted / "pass"))
    w1 = inventory.hosts["w1"]
    assert (w1.vars["db_password"], w1.vars["api_token"], w1.user) == (
        "s3cr3t-from-file", "t0ken-value-42", "nvidia")
    assert secrets.redact("login with s3cr3t-from-file and t0ken-value-42") == \
        "login with *** and ***"


def test_a_password_program_prints_the_password(vaulted: Path) -> None:
    program = vaulted / "pass.sh"
    program.write_text("#!/bin/sh\necho 'correct horse'\n")
    program.chmod(0o755)
    inventory = load_inventory(vaulted / "hosts.yml", load_vault(program))
    assert inventory.hosts["w1"].vars["api_token"] == "t0ken-value-42"


def test_a_wrong_password_is_one_line_naming_the_file(vaulted: Path) -> None:
    (vaulted / "wrong").write_text("battery staple\n")
    with pytest.raises(InputError) as error:
        load_inventory(vaulted / "hosts.yml", load_vault(vaulted / "wrong"))
    message = str(error.value)
    assert "\n" not in message
    assert f"{vaulted / 'group_vars' / 'web.yml'}: the vault password from " in message
    assert "does not open this vault (HMAC check failed)" in message


def test_without_a_password_files_are_refused_and_values_stay_closed(vaulted: Path) -> None:
    with pytest.raises(InputError, match=r"web.yml: vaulted; pass --vault-password-file"):
        load_inventory(vaulted / "hosts.yml")
    (vaulted / "group_vars" / "web.yml").unlink()
    inventory = load_inventory(vaulted / "hosts.yml")
    token = ansible_list(inventory)["_meta"]["hostvars"]["w1"]["api_token"]
    assert token["__ansible_vault"].startswith("$ANSIBLE_VAULT;1.2;AES256;prod")
    (vaulted / "hosts.yml").write_text((vaulted / "hosts.yml").read_text().replace(
        "api_token", "ansible_user"))
    with pytest.raises(InputError, match=r"hosts.yml:\d+: this value is vaulted; pass "
                                         r"--vault-password-file"):
        load_inventory(vaulted / "hosts.yml")


def test_a_damaged_envelope_is_refused(vaulted: Path) -> None:
    web = vaulted / "group_vars" / "web.yml"
    text = web.read_text()
    web.write_text(text[:-10] + "zz" + text[-8:])
    with pytest.raises(InputError, match=r"web.yml: the vault envelope is damaged"):
        load_inventory(vaulted / "hosts.yml", load_vault(vaulted / "pass"))


def test_the_command_line_takes_the_password_file_as_a_flag_or_from_the_environment(
        vaulted: Path) -> None:
    def fleetctl(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fleetctl", *args, "inventory", "list",
                               "-i", str(vaulted / "hosts.yml"), "--format", "json"],
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env})

    flag = fleetctl("--vault-password-file", str(vaulted / "pass"))
    assert flag.returncode == 0, flag.stderr
    assert '"db_password": "s3cr3t-from-file"' in flag.stdout
    assert '"api_token": "t0ken-value-42"' in flag.stdout
    env = fleetctl(FLEETCTL_VAULT_PASSWORD_FILE=str(vaulted / "pass"))
    assert env.stdout == flag.stdout
    (vaulted / "wrong").write_text("battery staple\n")
    wrong = fleetctl(ANSIBLE_VAULT_PASSWORD_FILE=str(vaulted / "wrong"))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert "does not open this vault" in wrong.stderr


def test_a_closed_value_lists_as_ansible_inventory_shows_it(vaulted: Path) -> None:
    """Without the password, inventory list still lists the host (JSON and Ansible form);
    the value stays closed."""
    (vaulted / "group_vars" / "web.yml").unlink()
    for form in ("json", "ansible"):
        listed = subprocess.run([sys.executable, "-m", "fleetctl", "inventory", "list", "-i",
                                 str(vaulted / "hosts.yml"), "--format", form],
                                capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert listed.returncode == 0, listed.stderr
        assert '"__ansible_vault": "$ANSIBLE_VAULT;1.2;AES256;prod' in listed.stdout
        assert "t0ken-value-42" not in listed.stdout
