"""Probe and audit against the lab: facts, unreachable hosts, host keys, auth, garbage."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fleetctl.inventory.targets import Target
from fleetctl.lab.spec import load_spec
from fleetctl.ssh import run_script

from ..conftest import DEFAULT_SPEC, Lab, fleetctl

SPEC = load_spec(DEFAULT_SPEC)


def audit(lab: Lab, state: Path, *args: str, inventory: str | None = None):
    return fleetctl("audit", "-i", inventory or lab.status["inventory"], "--state-dir",
                    str(state), *args, check=False)


def one_host_inventory(lab: Lab, tmp_path: Path, name: str, **overrides: str) -> str:
    """An inventory of one lab host, with connection variables overridden."""
    host_vars = {"ansible_host": lab.address(name), "ansible_user": "root",
                 "ansible_ssh_private_key_file": lab.status["client_key"],
                 "fleetctl_known_hosts": lab.status["known_hosts"], **overrides}
    path = tmp_path / "inv.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {name: host_vars}}}))
    return str(path)


def test_audit_factory_a_shows_every_host_as_it_is(lab: Lab, tmp_path: Path) -> None:
    result = audit(lab, tmp_path, "--group", "factory-a", "--format", "json", "--refresh")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # stdout holds JSON only
    rows = {r["host"]: r for r in report["hosts"]}
    expected = [h for h in SPEC.hosts if "factory-a" in h.groups]
    assert list(rows) == [h.name for h in expected]
    for spec in expected:
        row = rows[spec.name]
        assert (row["status"], row["l4t"], row["model"]) == ("ok", spec.l4t, spec.model)
        assert row["memory_mb"] == spec.memory_mb and row["runtime"] == "nvidia"
    assert [rows[n]["jetpack"] for n in rows] == ["6.2", "6.1", "5.1.4", "4.6.6"]
    assert [rows[n]["module"] for n in rows] == ["orin-nano", "agx-orin", "xavier-nx", "nano"]
    assert report["summary"]["unreachable"] == {}


def test_audit_finishes_with_sshd_down_and_a_hung_host(lab: Lab, tmp_path: Path) -> None:
    fleetctl("lab", "fault", "jetson-a2", "sshd-down")
    fleetctl("lab", "fault", "jetson-a3", "hang")
    try:
        result = audit(lab, tmp_path, "--group", "factory-a", "--refresh", "--timeout", "2")
    finally:
        fleetctl("lab", "heal", "jetson-a2")
        fleetctl("lab", "heal", "jetson-a3")
    assert result.returncode == 4
    assert "jetson-a2 (refused: nothing listens on 127.0.1.2:22)" in result.stdout
    assert "jetson-a3 (timeout: 127.0.1.3: no SSH handshake within 2s" in result.stdout
    assert "2/4 hosts answered" in result.stdout
    assert "Traceback" not in result.stderr


def test_cached_facts_are_reused_until_refresh(lab: Lab, tmp_path: Path) -> None:
    first = fleetctl("facts", "-i", lab.status["inventory"], "--limit", "jetson-b1",
                     "--state-dir", str(tmp_path))
    again = fleetctl("facts", "-i", lab.status["inventory"], "--limit", "jetson-b1",
                     "--state-dir", str(tmp_path))
    assert "jetson-b1: ok" in first.stderr and "jetson-b1: cached" in again.stderr
    assert json.loads(first.stdout) == json.loads(again.stdout)
    assert (tmp_path / "state.db").exists()
    fresh = fleetctl("facts", "-i", lab.status["inventory"], "--limit", "jetson-b1",
                     "--state-dir", str(tmp_path), "--refresh")
    assert "jetson-b1: ok" in fresh.stderr


def test_where_selects_by_facts(lab: Lab, tmp_path: Path) -> None:
    result = audit(lab, tmp_path, "--where", "module=orin-nano", "--format", "json")
    assert [r["host"] for r in json.loads(result.stdout)["hosts"]] == ["jetson-a1", "jetson-b1"]
    result = audit(lab, tmp_path, "--where", "l4t>=35", "--where", "l4t<36", "--format", "csv")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("host,address,status")
    assert [line.split(",")[0] for line in lines[1:]] == ["jetson-a3", "jetson-b3", "jetson-c2"]


def test_unknown_host_key_is_refused_under_strict(lab: Lab, tmp_path: Path) -> None:
    inventory = one_host_inventory(lab, tmp_path, "jetson-b2", fleetctl_known_hosts="/dev/null")
    result = audit(lab, tmp_path, "--refresh", inventory=inventory)
    assert result.returncode == 4 and "host key unknown" in result.stdout


def test_accept_new_records_the_key_and_a_changed_key_fails(lab: Lab, tmp_path: Path) -> None:
    inventory = one_host_inventory(lab, tmp_path, "jetson-b2", fleetctl_known_hosts="/dev/null")
    result = audit(lab, tmp_path, "--refresh", "--host-key-policy", "accept-new",
                   inventory=inventory)
    assert result.returncode == 0, result.stdout
    recorded = (tmp_path / "known_hosts").read_text().split()
    assert recorded[:2] == [lab.address("jetson-b2"), "ssh-ed25519"]
    # the host now "changes" its key: the recorded one no longer matches
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(tmp_path / "other")], check=True)
    fake = (tmp_path / "other.pub").read_text().split()[1]
    (tmp_path / "known_hosts").write_text(f"{recorded[0]} ssh-ed25519 {fake}\n")
    result = audit(lab, tmp_path, "--refresh", "--host-key-policy", "accept-new",
                   inventory=inventory)
    assert result.returncode == 4 and "host key mismatch" in result.stdout


def test_a_corrupt_known_hosts_file_is_named_not_unknown(lab: Lab, tmp_path: Path) -> None:
    known = tmp_path / "damaged_known_hosts"
    good = Path(lab.status["known_hosts"]).read_text().splitlines()
    mine = next(line for line in good if line.split()[0] == lab.address("jetson-b2"))
    known.write_text(mine[:len(mine) // 2] + "\n" + "garbage\n")     # cut off mid-key
    inventory = one_host_inventory(lab, tmp_path, "jetson-b2",
                                   fleetctl_known_hosts=str(known))
    result = audit(lab, tmp_path, "--refresh", "--format", "json", inventory=inventory)
    assert result.returncode == 4
    reason = json.loads(result.stdout)["hosts"][0]["reason"]
    assert reason.startswith("known_hosts unreadable: ")
    assert f"{known}: 2 line(s) are not host keys" in reason
    known.write_bytes(b"\xff\xfe\x00binary")
    result = audit(lab, tmp_path, "--refresh", "--format", "json", inventory=inventory)
    assert f"{known}: not a text file" in json.loads(result.stdout)["hosts"][0]["reason"]


def test_wrong_client_key_is_auth_failed(lab: Lab, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    inventory = one_host_inventory(lab, tmp_path, "jetson-b2",
                                   ansible_ssh_private_key_file=str(tmp_path / "k"))
    result = audit(lab, tmp_path, "--refresh", inventory=inventory)
    assert result.returncode == 4 and "auth failed" in result.stdout


@pytest.fixture
def garbage_shell(lab: Lab):
    """jetson-b3 answers every command with a login-shell refusal, as a locked account does."""
    keys = "/root/.ssh/authorized_keys"
    original = lab.ssh("jetson-b3", f"cat {keys}").stdout
    forced = f'command="echo This account is currently not available." {original}'
    lab.ssh("jetson-b3", f"cat > {keys}", input=forced.encode())
    yield
    subprocess.run(["nsenter", "-t", str(_anchor(lab, "jetson-b3")), "-m", "sh", "-c",
                    f"cat > {keys}"], input=original.encode(), check=True)


def _anchor(lab: Lab, name: str) -> int:
    status = json.loads(fleetctl("lab", "status", "--json").stdout)
    return next(h for h in status["hosts"] if h["name"] == name)["pids"]["anchor"]


def test_garbage_output_is_reported_not_parsed(lab: Lab, tmp_path: Path, garbage_shell) -> None:
    result = audit(lab, tmp_path, "--limit", "jetson-b3", "--refresh", "--format", "json")
    assert result.returncode == 4
    row = json.loads(result.stdout)["hosts"][0]
    assert row["status"] == "unreachable"
    assert row["reason"].startswith("garbage output: ")
    assert "This account is currently not available." in row["reason"]


def test_a_command_that_stops_reading_is_judged_by_what_it_printed(
        lab: Lab, garbage_shell) -> None:
    """The forced command prints and exits without reading: a script far larger than the
    SSH window cannot be sent whole, always (no race), and its answer still counts."""
    target = Target("jetson-b3", lab.address("jetson-b3"), key_file=lab.status["client_key"],
                    known_hosts=(lab.status["known_hosts"],))
    result = run_script(target, "true\n" * 2_000_000)
    assert result.stdout.strip() == "This account is currently not available."
