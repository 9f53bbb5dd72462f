"""Package tests run in the children of a TestPool: their summaries, their environment,
a fresh import per host, a timeout; and their commands, which reach the host through
the controller's connection (here an in-memory one)."""

import contextlib
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fleetctl.inventory.targets import Target
from fleetctl.rollout import testlink, testworker
from fleetctl.rollout.hosttests import ALIAS, HostTests, TestPool
from fleetctl.ssh import SSHFailure


class FakeHost:
    """A Connection's run_bytes, on this machine's shell (what an SSH session would run),
    recording each command; or failing as a lost link does."""

    def __init__(self, lost: bool = False) -> None:
        self.target = Target("h", "127.0.0.1", port=1)
        self.commands: list[str] = []
        self.lost = lost

    def run_bytes(self, command: str, stdin: bytes = b"", *, command_timeout: float = 60.0,
                  limit: int | None = None) -> tuple[int, bytes, bytes]:
        self.commands.append(command)
        if self.lost:
            raise SSHFailure("ssh failed", "127.0.0.1: connection reset")
        done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True,
                              timeout=command_timeout)
        return done.returncode, done.stdout, done.stderr


def write_file(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(source)
    return path


def run(files: list[Path], env: dict[str, str] | None = None, pool: TestPool | None = None,
        timeout: float = 60, host: FakeHost | None = None) -> tuple[bool, str]:
    env = env or HostTests.release_env("ollama", "r1", "0.7.0", "127.0.0.1:5000/x@y")
    return HostTests(files, host or FakeHost(), env, pool).run(timeout)  # type: ignore[arg-type]


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
        "id": "1", "folder": str(tmp_path), "files": [str(test)], "alias": ALIAS,
        "home": str(tmp_path), "link": str(tmp_path / "none"),
        "env": {"FLEETCTL_RELEASE": "r1"}})
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


def test_the_tests_commands_run_on_the_host_through_the_controllers_connection(
        tmp_path: Path) -> None:
    """testinfra's host.run and host.file go over the link to the connection the
    controller holds (as its user, through its sudo): the output comes back byte for
    byte, exit statuses included, and nothing else reaches the host."""
    (tmp_path / "data").mkdir()
    test = write_file(tmp_path, "test_host.py", (
        "def test_host(host):\n"
        "    assert host.run('printf \"\\\\377\\\\000ok\"').stdout_bytes == b'\\xff\\x00ok'\n"
        "    assert host.run('exit 3').rc == 3\n"
        "    assert host.run('echo oops >&2').stderr == 'oops\\n'\n"
        f"    assert host.file({str(tmp_path / 'data')!r}).is_directory\n"))
    host = FakeHost()
    assert run([test], host=host) == (True, "testinfra: 1 passed")
    assert host.commands[:3] == ['printf "\\377\\000ok"', "exit 3", "echo oops >&2"]
    assert any(str(tmp_path / "data") in c for c in host.commands[3:])


def test_a_command_the_link_cannot_run_fails_its_test_with_the_reason(tmp_path: Path) -> None:
    test = write_file(tmp_path, "test_lost.py", "def test_lost(host):\n"
                                                "    host.run('true')\n")
    passed, summary = run([test], host=FakeHost(lost=True))
    assert not passed
    assert summary == ("testinfra: 1 failed: test_lost.py::test_lost - RuntimeError: cannot "
                       "run 'true' on the host: ssh failed: 127.0.0.1: connection reset")


def test_the_link_answers_only_its_own_test_and_refuses_what_is_not_a_command(
        tmp_path: Path) -> None:
    """serve() runs nothing for a connection without the request's token, refuses an
    overlong or missing command and too much output, and does not read a line longer
    than any command could be."""
    import socket
    import threading
    import time

    ran: list[str] = []

    def run_here(command: str, timeout: float) -> tuple[int, bytes, bytes]:
        ran.append(command)
        return 0, b"x" * (testlink.MAX_OUTPUT + 1) if command == "flood" else b"fine", b""

    def session(token: str, messages: list[dict]) -> list[dict | None]:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(tmp_path / f"{token}.sock"))
            listener.listen(1)
            server = threading.Thread(target=testlink.serve, args=(
                listener, "secret", run_here, time.monotonic() + 10))
            server.start()
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(tmp_path / f"{token}.sock"))
                reader, writer = testlink.open_link(sock)
                testlink.send(writer, {"token": token})
                answers = []
                for message in messages:
                    with contextlib.suppress(BrokenPipeError):     # the link hung up
                        testlink.send(writer, message)
                    answers.append(testlink.receive(reader, testlink.MAX_ANSWER))
                reader.close()
                with contextlib.suppress(BrokenPipeError):     # what it did not take
                    writer.close()
            server.join(10)
            (tmp_path / f"{token}.sock").unlink()
            return answers

    assert session("forged", [{"command": "true"}]) == [None]
    assert ran == []
    answers = session("secret", [{"command": "hostname"}, {"command": "x" * 70000},
                                 {"nothing": 1}, {"command": "flood"}])
    assert testlink.outputs(answers[0]) == (0, b"fine", b"")
    assert [a["error"] for a in answers[1:]] == [
        "not a command line of at most 65536 characters",
        "not a command line of at most 65536 characters",
        "the command printed more than 16,777,216 bytes"]
    assert ran == ["hostname", "flood"]
    # a line longer than any command could be is not read: the link hangs up
    assert session("secret", [{"command": "y" * testlink.MAX_REQUEST}]) == [None]
    assert ran == ["hostname", "flood"]
