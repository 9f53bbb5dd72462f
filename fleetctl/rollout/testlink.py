"""The link between a package's tests and the host they test.

The tests run in a child of :mod:`.testworker`; they hold no key, password or connection
of their own. Each command they run on the host (testinfra's ``host.run``, ``host.file``
...) goes over a Unix socket to the controller, which runs it over the connection it
deploys with (:meth:`fleetctl.ssh.Connection.run_bytes`: the host's key verified, through
its bastion, with its ``become``) and answers with what the command printed.

One JSON object a line. The child first sends ``{"token": ...}`` (its request's id), then
``{"command": "..."}`` per command; each answer is ``{"status", "stdout", "stderr"}``
(the output base64) or ``{"error": "..."}`` when the command could not be run.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from typing import Any, BinaryIO

#: the longest command a test may send (a shell command line)
MAX_COMMAND = 64 * 1024
#: the most output a command may print on each of stdout and stderr
MAX_OUTPUT = 16 * 1024 * 1024
#: the longest line the child reads: an answer with both outputs at their limit
MAX_ANSWER = 2 * (MAX_OUTPUT * 4 // 3 + 4) + 1024
#: the longest line the controller reads: a command at its limit, each character
#: escaped by JSON at worst (``\uXXXX``), or the first line's token
MAX_REQUEST = 6 * MAX_COMMAND + 1024

#: runs a command line on the host within a number of seconds: (status, stdout, stderr)
Run = Callable[[str, float], tuple[int, bytes, bytes]]


def open_link(sock: socket.socket) -> tuple[BinaryIO, BinaryIO]:
    """A reader and a writer on ``sock``: two files, because the read-write one
    (``makefile("rwb")``, a BufferedRWPair) ignores the size ``readline`` is given."""
    return sock.makefile("rb"), sock.makefile("wb")


def send(link: BinaryIO, message: dict[str, Any]) -> None:
    """Write one message."""
    link.write(json.dumps(message).encode() + b"\n")
    link.flush()


def receive(link: BinaryIO, limit: int) -> dict[str, Any] | None:
    """Read one message of at most ``limit`` bytes; None when the other side hung up or
    sent what is not one."""
    try:
        line = link.readline(limit + 1)
    except ConnectionError:     # it hung up before reading all we sent
        return None
    if not line.endswith(b"\n"):
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def answer(status: int, stdout: bytes, stderr: bytes) -> dict[str, Any]:
    """The message for what a command printed."""
    return {"status": status, "stdout": base64.b64encode(stdout).decode(),
            "stderr": base64.b64encode(stderr).decode()}


def outputs(message: dict[str, Any]) -> tuple[int, bytes, bytes]:
    """(status, stdout, stderr) of an answer; ValueError if it is not one."""
    status = message.get("status")
    if not isinstance(status, int):
        raise ValueError(f"not an answer: {str(message)[:200]}")
    return (status, base64.b64decode(message.get("stdout", "")),
            base64.b64decode(message.get("stderr", "")))


def serve(listener: socket.socket, token: str, run: Run, deadline: float,
          clock: Callable[[], float] = time.monotonic) -> None:
    """Run the commands of the one child that connects to ``listener`` with ``token``,
    until it hangs up or ``deadline`` (of ``clock``) passes."""
    listener.settimeout(max(0.1, deadline - clock()))
    try:
        sock, _ = listener.accept()
    except OSError:             # nobody came in time, or the gate closed the listener
        return
    reader, writer = open_link(sock)
    with sock, reader, writer:
        try:
            sock.settimeout(max(0.1, deadline - clock()))
            hello = receive(reader, MAX_REQUEST)
            if hello is None or hello.get("token") != token:
                return
            while (message := receive(reader, MAX_REQUEST)) is not None:
                send(writer, _run_one(message.get("command"), run, deadline - clock()))
                sock.settimeout(max(0.1, deadline - clock()))
        except OSError:         # the child went quiet past the deadline, or died
            return


def _run_one(command: Any, run: Run, remaining: float) -> dict[str, Any]:
    """The answer to one command."""
    if not isinstance(command, str) or not command or len(command) > MAX_COMMAND:
        return {"error": f"not a command line of at most {MAX_COMMAND} characters"}
    if remaining <= 0:
        return {"error": "the tests' time is up"}
    try:
        status, stdout, stderr = run(command, remaining)
    except Exception as exc:    # the link to the host failed: this command errs, with why
        return {"error": str(exc)[:1000] or type(exc).__name__}
    if len(stdout) > MAX_OUTPUT or len(stderr) > MAX_OUTPUT:
        return {"error": f"the command printed more than {MAX_OUTPUT:,} bytes"}
    return answer(status, stdout, stderr)
