"""The ssh_config fleetctl hands to testinfra and how its pytest output is summed up."""

from pathlib import Path

from fleetctl.inventory.targets import Target
from fleetctl.rollout.hosttests import ALIAS, HostTests, ssh_config, summarize

# what `pytest -q --tb=no -rfE --no-header` printed for packages/ollama on the lab
FAILED_RUN = (
    "....F                                                                    [100%]\n"
    "=========================== short test summary info ============================\n"
    "FAILED /tmp/pytest-of-root/pytest-3/packages/ollama/test_site.py::"
    "test_site_approval_is_on_the_host[ssh://fleetctl-target] - AssertionError: assert False\n"
    "1 failed, 4 passed in 1.93s\n")
ERROR_RUN = (
    "EEEE                                                                     [100%]\n"
    "=========================== short test summary info ============================\n"
    "ERROR /work/main/packages/ollama/test_ollama.py::test_restarts_unless_stopped"
    "[ssh://fleetctl-target] - AssertionError: 0 running ollama containers of release x\n"
    "4 errors in 1.12s\n")


def test_summary_of_a_passing_run() -> None:
    assert summarize("....                           [100%]\n4 passed in 1.80s\n") == \
        "testinfra: 4 passed"


def test_summary_names_each_failure_by_file_and_test() -> None:
    assert summarize(FAILED_RUN) == ("testinfra: 1 failed, 4 passed: test_site.py::"
                                     "test_site_approval_is_on_the_host - AssertionError: "
                                     "assert False")
    assert summarize(ERROR_RUN) == ("testinfra: 4 errors: test_ollama.py::"
                                    "test_restarts_unless_stopped - AssertionError: 0 running "
                                    "ollama containers of release x")


def test_summary_when_pytest_did_not_run() -> None:
    assert summarize("", "ERROR: file or directory not found: test_x.py\n") == \
        "testinfra did not run: ERROR: file or directory not found: test_x.py"


def test_ssh_config_verifies_the_host_key(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("127.0.1.1 ssh-ed25519 AAAA\n")
    target = Target("jetson-a1", "127.0.1.1", 2222, "ubuntu", "/keys/id_ed25519",
                    (str(known), str(tmp_path / "missing")))
    config = ssh_config(target, (str(known),)).splitlines()
    assert config[0] == f"Host {ALIAS}"
    assert {"  HostName 127.0.1.1", "  Port 2222", "  User ubuntu", "  BatchMode yes",
            "  StrictHostKeyChecking yes", "  IdentityFile /keys/id_ed25519"} <= set(config)
    assert f"  UserKnownHostsFile {known}" in config     # files that exist, once each


def test_package_tests_get_no_controller_secrets_and_an_unknown_version(
        tmp_path: Path, monkeypatch) -> None:
    """A package's test runs in a child pytest that sees none of the controller's
    environment (a registry token, an agent socket) and an empty version when the
    chosen tag has none (JetPack 5 ollama tags are 'r35.4.1')."""
    monkeypatch.setenv("REGISTRY_TOKEN", "controller-secret")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    test = tmp_path / "test_env.py"
    test.write_text("import os\n\ndef test_env():\n"
                    "    assert 'REGISTRY_TOKEN' not in os.environ\n"
                    "    assert 'SSH_AUTH_SOCK' not in os.environ\n"
                    "    assert os.environ['FLEETCTL_VERSION'] == ''\n"
                    "    assert os.environ['HOME'] != os.path.expanduser('~root')\n")
    env = HostTests.release_env("ollama", "r1", None, "127.0.0.1:5000/dustynv/ollama@x")
    passed, summary = HostTests([test], Target("h", "127.0.0.1"), (), env).run(60)
    assert passed, summary
