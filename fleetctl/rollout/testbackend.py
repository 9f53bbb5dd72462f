"""testinfra's connection for package tests (:class:`HostLink`): each command goes to the
controller over :mod:`.testlink`, which runs it on the host. Imported by
:mod:`.testworker` once, before it forks a child per host.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from typing import Any, BinaryIO

from testinfra.backend.base import BaseBackend, CommandResult

from fleetctl.rollout import testlink

#: the link of this process's host: (the controller's socket, the request's token)
_link_to: tuple[str, str] | None = None


def link_to(path: str, token: str) -> None:
    """Where this process's tests reach their host: set by the child before its tests."""
    global _link_to
    _link_to = (path, token)


class HostLink(BaseBackend):
    """testinfra's backend whose commands the controller runs on the host."""

    NAME = "fleetctl"

    @functools.cached_property
    def _link(self) -> tuple[BinaryIO, BinaryIO]:
        if _link_to is None:
            raise RuntimeError("no link to the host: these tests run under fleetctl's gate")
        path, token = _link_to
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        reader, writer = testlink.open_link(sock)
        testlink.send(writer, {"token": token})
        return reader, writer

    def run(self, command: str, *args: str, **kwargs: Any) -> CommandResult:
        command = self.get_command(command, *args)
        reader, writer = self._link
        with contextlib.suppress(BrokenPipeError):     # a hang-up: receive() says so
            testlink.send(writer, {"command": command})
        message = testlink.receive(reader, testlink.MAX_ANSWER)
        if message is None:
            raise RuntimeError("the controller closed the link to the host")
        if "error" in message:
            raise RuntimeError(f"cannot run {command[:200]!r} on the host: {message['error']}")
        status, stdout, stderr = testlink.outputs(message)
        return self.result(status, self.encode(command), stdout, stderr)
