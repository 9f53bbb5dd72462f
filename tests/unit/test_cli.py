"""The command line: help with examples everywhere, one-line errors, exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from fleetctl import __version__

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [["lab", "up"], ["lab", "status"], ["lab", "down"], ["lab", "fault"],
            ["lab", "heal"], ["inventory", "list"], ["inventory", "graph"], ["audit"],
            ["facts"], ["packages", "list"], ["packages", "show"], ["plan"], ["deploy"],
            ["rollout", "list"], ["rollout", "status"], ["rollout", "resume"],
            ["rollout", "promote"], ["rollback"], ["history"], ["run"], ["keys", "generate"],
            ["keys", "trust"], ["bundle", "create"], ["bundle", "verify"]]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetctl", *args], capture_output=True,
                          text=True, cwd=ROOT, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"fleetctl {__version__}"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "Example: fleetctl " + " ".join(command) in result.stdout


def test_bad_spec_fails_before_anything_starts(tmp_path: Path) -> None:
    spec = tmp_path / "fleet.yml"
    spec.write_text("hosts:\n  - name: j1\n    colour: green\n")
    result = run("lab", "up", "--spec", str(spec))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{spec}:3: hosts[0] (j1).colour: unknown key 'colour'" in result.stderr


def test_unknown_fault_kind_is_a_usage_error() -> None:
    result = run("lab", "fault", "jetson-a1", "meteor")
    assert result.returncode == 2
    assert "unknown fault 'meteor'; kinds: sshd-down, hang" in result.stderr


def test_inventory_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "hosts.ini"
    bad.write_text("[a:children]\nb\n")
    result = run("inventory", "list", "-i", str(bad))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{bad}:2: [a:children] names group 'b'" in result.stderr


def test_inventory_list_json_of_the_example() -> None:
    import json

    result = run("inventory", "list", "-i", "inventories/example", "--limit", "orin", "--format",
                 "json")
    assert result.returncode == 0
    assert list(json.loads(result.stdout)) == ["line1-cam01", "line2-qa01"]


@pytest.mark.parametrize(("args", "message"), [
    (["deploy", "ollama", "--group", "x", "--steps", "0"], "--steps: step '0'"),
    (["deploy", "ollama", "--group", "x", "--max-failures", "lots"], "--max-failures: 'lots'"),
    (["deploy", "ollama", "--group", "x", "--pause", "soon"], "--pause 'soon'"),
    (["deploy", "ollama"], "say which hosts"),
    (["deploy", "ollama", "--plan", "/nonexistent/plan.json"], "plan.json: cannot read"),
    (["packages", "show", "nothing", "--packages", "packages"], "no package 'nothing'"),
    (["rollout", "status", "nope", "--state-dir", "/tmp/fleetctl-test-empty"], "no rollout"),
    (["deploy", "ollama", "--group", "x", "--delivery", "usb"],
     "--delivery 'usb' should be one of registry, ssh"),
    (["run"], "give a PLAYBOOK or --bundle FILE (one of them)"),
    (["run", "playbooks/factory-a-ollama.yml", "--bundle", "ota.bundle"], "one of them"),
    (["run", "--bundle", "/nonexistent/ota.bundle", "--state-dir", "/tmp/fleetctl-test-empty"],
     "/nonexistent/ota.bundle: No such file or directory"),
])
def test_bad_rollout_flags_fail_in_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_playbook_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    book = tmp_path / "book.yml"
    book.write_text("name: x\ntargets: {group: a}\npackages: [ollama]\nstrategy:\n"
                    "  pause: forever\n")
    result = run("run", str(book), "--check")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{book}:5: strategy.pause 'forever' is not a duration" in result.stderr


def test_a_bundle_that_is_not_one(tmp_path: Path) -> None:
    junk = tmp_path / "ota.bundle"
    junk.write_bytes(b"not a tar file at all" * 100)
    assert run("keys", "generate", "site", "--dir", str(tmp_path)).returncode == 0
    assert run("keys", "trust", str(tmp_path / "site.pub"), "--state-dir",
               str(tmp_path / "state")).returncode == 0
    result = run("bundle", "verify", str(junk), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert f"{junk}: not a readable bundle" in result.stderr


def test_keys_generate_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("keys", "generate", "site", "--dir", str(tmp_path)).returncode == 0
    assert (tmp_path / "site.key").stat().st_mode & 0o777 == 0o600
    again = run("keys", "generate", "site", "--dir", str(tmp_path))
    assert again.returncode == 2 and f"{tmp_path}/site.key exists" in again.stderr


def test_inventory_values_that_look_like_markup_or_emoji_print_as_they_are(
        tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text('all:\n  hosts:\n    b1:\n      ansible_host: "[bold]x[/]"\n'
                         '    b2:\n      ansible_host: "a:fire:b"\n')
    result = run("inventory", "list", "-i", str(inventory))
    assert result.returncode == 0, result.stderr
    assert "[bold]x[/]" in result.stdout and "a:fire:b" in result.stdout
    ranged = tmp_path / "ranged.yml"        # a host range error's text: begin:end:step
    ranged.write_text('all:\n  hosts:\n    "[/]": {}\n')
    failed = run("inventory", "list", "-i", str(ranged))
    assert "must be begin:end or begin:end:step" in failed.stderr
