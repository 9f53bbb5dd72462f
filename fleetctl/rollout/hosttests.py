"""A package's testinfra tests, run against one host as the last part of its gate.

pytest-testinfra runs in child processes (:mod:`.testworker`), never in the
controller's, over OpenSSH (its ``ssh`` backend) with an ssh_config written from the
inventory: the host's address, port, user and key, its known_hosts files and
``StrictHostKeyChecking yes``, so the tests reach the host exactly as fleetctl does and
verify its key the same way. The tests learn what was deployed from ``FLEETCTL_*``
environment variables.

What a gate costs the controller is mostly start-up: a Python with pytest and testinfra
(about 150 ms of CPU) and an SSH key exchange per command the tests run (OpenSSH's
default post-quantum one: 70 ms). So a :class:`TestPool` keeps a few children for the
whole rollout, each running one host's tests at a time, and every host's tests share
one SSH connection (a control master fleetctl starts and ends) whose key exchange is
curve25519, the one fleetctl's own connections use.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fleetctl.inventory.targets import Target

ALIAS = "fleetctl-target"
#: all a package's tests get of the controller's environment (its secrets stay behind)
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


#: key exchanges the tests' SSH connection prefers (fleetctl's own connections use them)
KEX = "^curve25519-sha256,curve25519-sha256@libssh.org"
#: seconds the tests' shared SSH connection gets to log in
MASTER_LOGIN = 10.0


def ssh_config(target: Target, known_hosts: tuple[str, ...], control_path: str) -> str:
    """An ssh_config that reaches ``target`` as :data:`ALIAS`, host key verified,
    through the connection listening at ``control_path`` when there is one."""
    lines = [f"Host {ALIAS}", f"  HostName {target.address}", f"  Port {target.port}",
             f"  User {target.user}", "  BatchMode yes", "  StrictHostKeyChecking yes",
             "  LogLevel ERROR", f"  KexAlgorithms {KEX}", f"  ControlPath {control_path}",
             "  ControlMaster no"]
    if target.key_file:
        lines += [f"  IdentityFile {target.key_file}", "  IdentitiesOnly yes"]
    files = [f for f in dict.fromkeys((*target.known_hosts, *known_hosts)) if Path(f).exists()]
    if files:
        lines.append("  UserKnownHostsFile " + " ".join(files))
    return "\n".join(lines) + "\n"


@dataclass
class HostTests:
    """The testinfra files of one package, to run against one host.

    Package code never runs in the controller's process: the tests run in a child
    whose environment is :data:`PASSED_THROUGH`, an empty home and the ``FLEETCTL_*``
    release values. They can only fail a gate the health check passed:
    :func:`fleetctl.rollout.gate.gate` runs them after it and never on a failed one."""

    files: list[Path]
    target: Target
    known_hosts: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    pool: TestPool | None = None

    @staticmethod
    def release_env(package: str, release: str, version: str | None,
                    image: str | None) -> dict[str, str]:
        """What the tests learn of the release (an unknown version is empty)."""
        return {"FLEETCTL_PACKAGE": package, "FLEETCTL_RELEASE": release,
                "FLEETCTL_VERSION": version or "", "FLEETCTL_IMAGE": image or ""}

    def run(self, timeout: float) -> tuple[bool, str]:
        """Run the tests; (passed, one-line summary with the first failures)."""
        if self.pool is not None:
            return self.pool.run(self, timeout)
        with TestPool(size=1) as pool:
            return pool.run(self, timeout)


class TestPool:
    """Child processes (:mod:`.testworker`) that run package tests, each one host at a
    time: started when first needed, at most ``size``, ended by :meth:`close`. A child
    that overruns its time is ended and the next test gets a new one."""

    __test__ = False        # not a pytest class, whatever its name

    def __init__(self, size: int = min(os.cpu_count() or 1, 4)) -> None:
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[subprocess.Popen[bytes]] = []
        self._started: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> TestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, tests: HostTests, timeout: float) -> tuple[bool, str]:
        """Run ``tests`` in a free child within ``timeout`` seconds."""
        with self._slots:
            worker = self._take()
            with tempfile.TemporaryDirectory(prefix="fleetctl-testinfra-") as home:
                config = Path(home) / "ssh_config"
                control = Path(home) / "connection"
                config.write_text(ssh_config(tests.target, tests.known_hosts, str(control)))
                master = _open_connection(config, control)
                folder = tests.files[0].resolve().parent   # node ids relative to the package
                request = {"files": [str(f.resolve()) for f in tests.files],
                           "folder": str(folder), "ssh_config": str(config), "home": home,
                           "alias": ALIAS, "env": tests.env}
                try:
                    answer = _ask(worker, request, timeout)
                finally:
                    master.terminate()
                    master.wait()
            if answer is None:
                self._end(worker, at_once=True)
                return False, f"testinfra: not done within {timeout:.0f}s"
            if not answer:
                self._end(worker, at_once=True)
                return False, f"testinfra did not run: its process exited ({worker.poll()})"
            with self._lock:
                self._idle.append(worker)
            return bool(answer["passed"]), str(answer["summary"])

    def close(self) -> None:
        """End every child (each finishes the host it is on first)."""
        with self._lock:
            workers, self._started, self._idle = self._started, [], []
        for worker in workers:
            self._end(worker)

    def _take(self) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        env = {**{k: os.environ[k] for k in PASSED_THROUGH if k in os.environ},
               "PYTHONDONTWRITEBYTECODE": "1",
               # only testinfra: other installed plugins cost the controller CPU
               # (hypothesis alone: 0.7 s) and have no business here
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        worker = subprocess.Popen([sys.executable, "-m", "fleetctl.rollout.testworker"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env, cwd="/")
        with self._lock:
            self._started.append(worker)
        return worker

    def _end(self, worker: subprocess.Popen[bytes], at_once: bool = False) -> None:
        """End a child: at once, or when it has read all it was sent (within 5 s)."""
        with self._lock:
            if worker in self._started:
                self._started.remove(worker)
        if at_once:
            worker.kill()
        elif worker.stdin:
            worker.stdin.close()
        try:
            worker.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        for pipe in (worker.stdin, worker.stdout):
            if pipe:
                pipe.close()


def _open_connection(config: Path, control: Path) -> subprocess.Popen[bytes]:
    """Start the SSH connection a host's tests share (OpenSSH as a control master) and
    wait until it listens at ``control``; if it cannot log in, each test command
    connects on its own and fails the same way."""
    master = subprocess.Popen(["ssh", "-F", str(config), "-M", "-N", "-o", "ControlPersist=no",
                               "-o", f"ConnectTimeout={MASTER_LOGIN:.0f}", ALIAS],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + MASTER_LOGIN
    while not control.exists() and master.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return master


def _ask(worker: subprocess.Popen[bytes], request: dict, timeout: float) -> dict | None:
    """Send one request and wait for its answer: the answer, ``{}`` if the child died,
    None if it did not answer within ``timeout`` seconds."""
    assert worker.stdin is not None and worker.stdout is not None
    try:
        worker.stdin.write(json.dumps(request).encode() + b"\n")
        worker.stdin.flush()
    except BrokenPipeError:
        return {}
    deadline, answer = time.monotonic() + timeout, b""
    while not answer.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([worker.stdout], [], [], left)[0]:
            return None
        chunk = os.read(worker.stdout.fileno(), 65536)
        if not chunk:
            return {}
        answer += chunk
    return json.loads(answer)
