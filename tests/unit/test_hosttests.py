"""The ssh_config fleetctl hands to testinfra, and package tests run in the children of
a TestPool: their summaries, their environment, a fresh import per host, a timeout."""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from fleetctl.inventory.targets import Target
from fleetctl.rollout import testworker
from fleetctl.rollout.hosttests import ALIAS, HostTests, TestPool, ssh_config
from fleetctl.ssh import known_host_lines

NOWHERE = Target("h", "127.0.0.1", port=1)      # no test here uses the host fixture


def write_file(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def run(files: list[Path], env: dict[str, str] | None = None, pool: TestPool | None = None,
        timeout: float = 60) -> tuple[bool, str]:
    env = env or HostTests.release_env("ollama", "r1", "0.7.0", "127.0.0.1:5000/x@y")
    return HostTests(files, NOWHERE, (), env, pool).run(timeout)


def test_summary_of_a_passing_run(tmp_path: Path) -> None:
    test = write_file(tmp_path, "test_ok.py", "def test_a():\n    pass\n\n"
                    "def test_b():\n    assert 1 + 1 == 2\n")
    assert run([test]) == (True, "testinfra: 2 passed")


def test_summary_names_each_failure_and_error_by_file_and_test(tmp_path: Path) -> None:
    test = write_file(tmp_path, "test_site.py", (
        "import pytest\n\n"
        "@pytest.fixture\ndef container():\n    raise RuntimeError('no container of r1')\n\n"
        "def test_fails():\n    assert 1 == 2\n\n"
        "def test_needs(container):\n    pass\n\n"
        "def test_passes():\n    pass\n"))
    assert run([test]) == (False, "testinfra: 1 failed, 1 passed, 1 error: "
                                  "test_site.py::test_fails - assert 1 == 2; "
                                  "test_site.py::test_needs - RuntimeError: no container of r1")


def test_summary_when_pytest_did_not_run(tmp_path: Path) -> None:
    broken = write_file(tmp_path, "test_broken.py", "import no_such_module\n")
    passed, summary = run([broken])
    assert not passed
    assert summary == ("testinfra: 1 error: test_broken.py - "
                       "ModuleNotFoundError: No module named 'no_such_module'")
    passed, summary = run([tmp_path / "test_missing.py"])
    assert (passed, summary) == (False, "testinfra did not run: ERROR: file or directory "
                                        f"not found: {tmp_path / 'test_missing.py'}")


def test_ssh_config_verifies_the_host_key_against_its_own_lines(tmp_path: Path) -> None:
    import paramiko

    mine, other, rotated = (paramiko.Ed25519Key(data=_ed25519(n)) for n in (1, 2, 3))
    fleet = tmp_path / "known_hosts"
    hashed = paramiko.HostKeys.hash_host("[127.0.1.1]:2222")
    fleet.write_text(f"[127.0.1.1]:2222 ssh-ed25519 {mine.get_base64()}\n"
                     f"127.0.1.9 ssh-ed25519 {other.get_base64()}\n"
                     f"{hashed} ssh-ed25519 {rotated.get_base64()}\n")
    target = Target("jetson-a1", "127.0.1.1", 2222, "ubuntu", "/keys/id_ed25519",
                    (str(fleet), str(tmp_path / "missing")))
    lines = known_host_lines(target, (str(fleet),))
    assert lines == (f"[127.0.1.1]:2222 ssh-ed25519 {mine.get_base64()}\n"
                     f"[127.0.1.1]:2222 ssh-ed25519 {rotated.get_base64()}\n")
    assert known_host_lines(replace(target, address="127.0.1.2"), (str(fleet),)) == ""
    config = ssh_config(target, tmp_path / "mine").splitlines()
    assert config[0] == f"Host {ALIAS}"
    assert {"  HostName 127.0.1.1", "  Port 2222", "  User ubuntu", "  BatchMode yes",
            "  StrictHostKeyChecking yes", "  IdentityFile /keys/id_ed25519",
            f"  UserKnownHostsFile {tmp_path / 'mine'}"} <= set(config)
    # behind jump hosts: an OpenSSH ProxyCommand, every value one word, the hop's key checked
    hops = (Target("gw", "10.9.0.1", 2022, "ops"),
            Target("bastion", "127.0.1.50", 2200, "jump", "/keys/jump key"))
    behind = ssh_config(replace(target, jump=hops), tmp_path / "mine").splitlines()
    assert behind[-1] == (
        f"  ProxyCommand ssh -W 127.0.1.1:2222 -p 2200 -o BatchMode=yes -o "
        f"StrictHostKeyChecking=yes -o UserKnownHostsFile={tmp_path / 'mine'} -o "
        f"LogLevel=ERROR -i '/keys/jump key' -o IdentitiesOnly=yes -J ops@10.9.0.1:2022 "
        f"jump@127.0.1.50")


def _ed25519(n: int) -> bytes:
    """A real Ed25519 public key blob (ssh wire format), made from seed ``n``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32).public_key()
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = b"ssh-ed25519"
    return len(name).to_bytes(4, "big") + name + len(raw).to_bytes(4, "big") + raw


def test_package_tests_get_no_controller_secrets_and_an_unknown_version(
        tmp_path: Path, monkeypatch) -> None:
    """A package's test runs in a child that sees none of the controller's environment
    (a registry token, an agent socket) and an empty version when the chosen tag has
    none (JetPack 5 ollama tags are 'r35.4.1')."""
    monkeypatch.setenv("REGISTRY_TOKEN", "controller-secret")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    test = write_file(tmp_path, "test_env.py", (
        "import os\n\ndef test_env():\n"
        "    assert 'REGISTRY_TOKEN' not in os.environ\n"
        "    assert 'SSH_AUTH_SOCK' not in os.environ\n"
        "    assert os.environ['FLEETCTL_VERSION'] == ''\n"
        "    assert os.environ['HOME'] != os.path.expanduser('~root')\n"))
    env = HostTests.release_env("ollama", "r1", None, "127.0.0.1:5000/dustynv/ollama@x")
    passed, summary = run([test], env)
    assert passed, summary


def test_one_process_serves_every_host_and_imports_the_tests_afresh_for_each(
        tmp_path: Path) -> None:
    """What a test module reads at import time is the host's own release, though one
    process (the children's parent) ran both hosts."""
    seen = tmp_path / "seen"
    test = write_file(tmp_path, "test_release.py", (
        "import os\n\nRELEASE = os.environ['FLEETCTL_RELEASE']\n\n"
        "def test_release():\n"
        f"    with open({str(seen)!r}, 'a') as out:\n"
        "        out.write(f'{os.getppid()} {RELEASE}\\n')\n"))
    with TestPool() as pool:
        for release in ("r1", "r2"):
            assert run([test], HostTests.release_env("ollama", release, "1", "i"), pool) == \
                (True, "testinfra: 1 passed")
    (parent1, release1), (parent2, release2) = (line.split() for line in
                                                seen.read_text().splitlines())
    assert (release1, release2) == ("r1", "r2")
    assert parent1 == parent2


def test_hosts_tests_run_side_by_side(tmp_path: Path) -> None:
    """Each host's test waits (up to 30 s) for the other's to have started: run one
    after the other, the first would fail."""
    test = write_file(tmp_path, "test_meet.py", (
        "import os, time\n\ndef test_meet():\n"
        f"    folder = {str(tmp_path)!r}\n"
        "    me = os.environ['FLEETCTL_RELEASE']\n"
        "    other = {'r1': 'r2', 'r2': 'r1'}[me]\n"
        "    open(os.path.join(folder, me), 'w').close()\n"
        "    deadline = time.monotonic() + 30\n"
        "    while not os.path.exists(os.path.join(folder, other)):\n"
        "        assert time.monotonic() < deadline, 'the other host never started'\n"
        "        time.sleep(0.01)\n"))
    with TestPool() as pool, ThreadPoolExecutor(2) as threads:
        results = list(threads.map(
            lambda release: run([test], HostTests.release_env("o", release, "1", "i"), pool),
            ["r1", "r2"]))
    assert results == [(True, "testinfra: 1 passed")] * 2


def test_a_test_that_overruns_fails_the_gate_and_the_next_host_is_not_held_up(
        tmp_path: Path) -> None:
    slow = write_file(tmp_path, "test_slow.py", "import time\n\ndef test_slow():\n"
                                                "    time.sleep(60)\n")
    fast = write_file(tmp_path, "test_fast.py", "def test_fast():\n    pass\n")
    with TestPool() as pool:
        assert run([slow], pool=pool, timeout=1) == (False, "testinfra: not done within 1s")
        assert run([fast], pool=pool) == (True, "testinfra: 1 passed")


def test_the_worker_counts_and_names_outcomes_as_pytest_does(tmp_path: Path,
                                                             monkeypatch) -> None:
    """The child's own code, run in this process: skips, expected failures and a
    failure in a fixture's teardown are counted the way pytest's summary line counts
    them."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")     # as in the child
    for name in ("FLEETCTL_RELEASE", "HOME"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    test = write_file(tmp_path, "test_kinds.py", (
        "import pytest\n\n"
        "@pytest.fixture\ndef broken_teardown():\n    yield\n    raise OSError('teardown')\n\n"
        "def test_skipped():\n    pytest.skip('not on this module')\n\n"
        "@pytest.mark.xfail(reason='known')\ndef test_known_bug():\n    assert False\n\n"
        "@pytest.mark.xfail(reason='fixed?', strict=False)\ndef test_fixed():\n    pass\n\n"
        "def test_teardown(broken_teardown):\n    pass\n"))
    answer = testworker.run_tests({
        "folder": str(tmp_path), "files": [str(test)], "alias": ALIAS, "home": str(tmp_path),
        "ssh_config": str(tmp_path / "none"), "env": {"FLEETCTL_RELEASE": "r1"}})
    assert answer == {"passed": False, "summary": (
        "testinfra: 1 passed, 1 skipped, 1 xfailed, 1 xpassed, 1 error: "
        "test_kinds.py::test_teardown - OSError: teardown")}


def test_a_malformed_answer_from_a_test_is_ignored_and_the_real_one_counts(
        tmp_path: Path) -> None:
    """A package test that finds its own request and writes a malformed answer on the
    answers pipe (a pass as a string) neither passes its gate nor breaks the pool."""
    test = write_file(tmp_path, "test_forge.py", (
        "import gc, json, os\n\ndef test_forge():\n"
        "    request = next(o for o in gc.get_objects() if isinstance(o, dict)\n"
        "                   and {'id', 'alias', 'files'} <= o.keys())\n"
        "    line = json.dumps({'id': request['id'], 'passed': 'yes', 'summary': 1})\n"
        "    for fd in map(int, os.listdir('/proc/self/fd')):\n"
        "        try:\n"
        "            if fd > 2 and os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
        "                os.write(fd, line.encode() + b'\\n')\n"
        "        except OSError:\n"
        "            pass\n"
        "    assert False, 'forged'\n"))
    with TestPool() as pool:
        assert run([test], pool=pool) == (False, "testinfra: 1 failed: test_forge.py::"
                                                 "test_forge - AssertionError: forged")
        assert run([write_file(tmp_path, "test_ok.py", "def test_ok():\n    pass\n")],
                   pool=pool) == (True, "testinfra: 1 passed")


def test_only_the_package_folders_conftest_is_loaded(tmp_path: Path) -> None:
    """pytest looks for conftest.py in every folder above the tests, up to ``/``: a
    conftest.py that anyone could write beside the catalog (or in /tmp) would run in the
    gate. Only the package's own folder counts."""
    package = tmp_path / "catalog" / "ollama"
    package.mkdir(parents=True)
    write_file(tmp_path / "catalog", "conftest.py", "raise RuntimeError('not the package')\n")
    write_file(tmp_path, "conftest.py", "raise RuntimeError('not the package')\n")
    write_file(package, "conftest.py", "import pytest\n\n@pytest.fixture\n"
                                       "def answer():\n    return 42\n")
    test = write_file(package, "test_own.py", "def test_own(answer):\n    assert answer == 42\n")
    assert run([test]) == (True, "testinfra: 1 passed")
