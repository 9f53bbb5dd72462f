"""A package's testinfra tests, run against one host as the last part of its gate.

pytest-testinfra runs in child processes (:mod:`.testworker`), never in the
controller's. The tests hold no key, password or connection: each command they run on
the host comes back to the controller over a Unix socket (:mod:`.testlink`), which runs
it over the host's own connection (its key verified, through its bastion, with its
``become``) and answers with what it printed.
The tests learn what was deployed from ``FLEETCTL_*`` environment variables.

What a gate costs the controller is mostly start-up: a Python with pytest and testinfra
(about 150 ms of CPU), and, were the tests to use OpenSSH, a process and a key exchange
per command they run (70 ms each with OpenSSH's default post-quantum one). So one
:class:`TestPool` process per rollout starts pytest once and forks a child per host, and
the tests' commands use the connection the host already has.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetctl.rollout import testlink
from fleetctl.ssh import Connection

ALIAS = "fleetctl-target"
#: all a package's tests get of the controller's environment (its secrets stay behind)
PASSED_THROUGH = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass
class HostTests:
    """The testinfra files of one package, to run against the host ``conn`` reaches.

    Package code never runs in the controller's process: the tests run in a child
    whose environment is :data:`PASSED_THROUGH`, an empty home and the ``FLEETCTL_*``
    release values. They can only fail a gate the health check passed:
    :func:`fleetctl.rollout.gate.gate` runs them after it and never on a failed one."""

    files: list[Path]
    conn: Connection
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
        with TestPool() as pool:
            return pool.run(self, timeout)

    def run_command(self, command: str, timeout: float) -> tuple[int, bytes, bytes]:
        """One of the tests' commands, on the host (:data:`.testlink.Run`)."""
        return self.conn.run_bytes(command, command_timeout=timeout,
                                   limit=testlink.MAX_OUTPUT)


class TestPool:
    """The process (:mod:`.testworker`) that runs package tests for a rollout: started
    when first needed, shared by every host (each host's tests run in a child of their
    own, side by side), ended by :meth:`close`."""

    __test__ = False        # not a pytest class, whatever its name

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        #: request id -> (the process it went to, where its answer goes)
        self._waiting: dict[str, tuple[subprocess.Popen[bytes], queue.SimpleQueue]] = {}

    def __enter__(self) -> TestPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, tests: HostTests, timeout: float) -> tuple[bool, str]:
        """Run ``tests`` within ``timeout`` seconds."""
        answers: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        request_id = secrets.token_hex(8)   # a test cannot answer for another host's
        deadline = time.monotonic() + timeout
        with tempfile.TemporaryDirectory(prefix="fleetctl-testinfra-") as home, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            link = os.path.join(home, "host.sock")
            listener.bind(link)
            listener.listen(1)
            server = threading.Thread(target=testlink.serve, name="fleetctl-test-link",
                                      args=(listener, request_id, tests.run_command, deadline),
                                      daemon=True)
            server.start()
            folder = tests.files[0].resolve().parent   # node ids relative to the package
            request = {"id": request_id, "files": [str(f.resolve()) for f in tests.files],
                       "folder": str(folder), "link": link, "home": home, "alias": ALIAS,
                       "env": tests.env, "timeout": timeout}
            with self._lock:
                process = self._started()
                self._waiting[request_id] = (process, answers)
                try:
                    assert process.stdin is not None
                    process.stdin.write(json.dumps(request).encode() + b"\n")
                    process.stdin.flush()
                except OSError:
                    answers.put({})
            try:
                answer = answers.get(timeout=timeout)
            except queue.Empty:
                return False, f"testinfra: not done within {timeout:.0f}s"
            finally:
                with self._lock:
                    self._waiting.pop(request_id, None)
                with contextlib.suppress(OSError):     # a serve() still waiting returns
                    listener.shutdown(socket.SHUT_RDWR)
        if not answer:
            return False, "testinfra did not run: its process ended"
        return answer["passed"], answer["summary"]

    def start(self) -> None:
        """Start the process now (it loads pytest while the first hosts stage) rather
        than when the first host's tests are due."""
        with self._lock:
            self._started()

    def close(self) -> None:
        """End the process; the tests still running there end with it."""
        with self._lock:
            process, reader, self._process = self._process, self._reader, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if reader is not None:
            # a test's own fork could hold the answers pipe open past the process
            reader.join(timeout=5)
        if reader is None or not reader.is_alive():
            process.stdout.close()

    def _started(self) -> subprocess.Popen[bytes]:
        """The running process, started now if there is none (or it died)."""
        if self._process is not None and self._process.poll() is None:
            return self._process
        env = {**{k: os.environ[k] for k in PASSED_THROUGH if k in os.environ},
               "PYTHONDONTWRITEBYTECODE": "1",
               # only testinfra: other installed plugins cost the controller CPU
               # (hypothesis alone: 0.7 s) and have no business here
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "fleetctl.rollout.testworker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/")
        self._reader = threading.Thread(target=self._read, args=(self._process,),
                                        name="fleetctl-tests", daemon=True)
        self._reader.start()
        return self._process

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        """Hand each answer to the host waiting for it; when the process ends, tell
        every host still waiting on it."""
        assert process.stdout is not None
        for line in process.stdout:
            try:
                answer = json.loads(line)
                request_id = str(answer["id"])
            except (ValueError, KeyError, TypeError):
                continue
            if not (isinstance(answer.get("passed"), bool)
                    and isinstance(answer.get("summary"), str)):
                continue        # not an answer the child's own code writes
            with self._lock:
                waiting = self._waiting.get(request_id)
            if waiting is not None and waiting[0] is process:
                waiting[1].put(answer)
        with self._lock:
            left = [answers for sent_to, answers in self._waiting.values() if sent_to is process]
        for answers in left:
            answers.put({})
