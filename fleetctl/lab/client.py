"""The CLI's side of the lab: start the supervisor and send it requests."""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fleetctl.errors import FleetError, LabError
from fleetctl.lab.lab import teardown
from fleetctl.lab.system import (
    LabPaths,
    alive,
    lab_cgroup_names,
    require_binaries,
    require_cgroup_v1,
    require_free_ports,
    require_root,
    spawn,
)

START_TIMEOUT = 15.0


def _connect(paths: LabPaths) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(str(paths.control_socket))
    except OSError:
        sock.close()
        return None
    return sock


def running(paths: LabPaths) -> bool:
    """True when a lab supervisor answers on the control socket."""
    sock = _connect(paths)
    if sock:
        sock.close()
    return sock is not None


def request(paths: LabPaths, op: str, on_log: Callable[[str], None] = lambda _: None,
            **args: object) -> dict:
    """Send one request to the supervisor; stream its log lines; return its result."""
    sock = _connect(paths)
    if sock is None:
        raise LabError("the lab is not up; start it with: fleetctl lab up")
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps({"op": op, **args}).encode() + b"\n")
        stream.flush()
        for line in stream:
            message = json.loads(line)
            if "log" in message:
                on_log(message["log"])
            elif message.get("ok"):
                return message["result"]
            else:
                raise FleetError(message["error"], message.get("exit_code", 1))
    raise LabError(f"the lab supervisor stopped answering; see {paths.supervisor_log}")


def preflight() -> None:
    """Everything the lab needs from the machine, checked before anything starts."""
    require_root()
    require_binaries()
    require_cgroup_v1()
    require_free_ports()


def up(paths: LabPaths, spec: Path, text: str, hosts: int | None,
       on_log: Callable[[str], None]) -> dict:
    """Start the supervisor if needed and bring the lab to ``spec`` (whose content is ``text``)."""
    require_root()
    if not running(paths):
        preflight()
        if paths.root.exists() or lab_cgroup_names():
            on_log("cleaning up a lab left behind by a supervisor that is gone")
            teardown(paths)
        paths.root.mkdir(parents=True, mode=0o700)
        spawn([sys.executable, "-m", "fleetctl.lab.supervisor"], paths.supervisor_log)
        deadline = time.monotonic() + START_TIMEOUT
        while not running(paths):
            if time.monotonic() > deadline:
                raise LabError(f"the lab supervisor did not start; see {paths.supervisor_log}")
            time.sleep(0.05)
    return request(paths, "up", on_log, spec=str(spec), text=text, hosts=hosts)


def down(paths: LabPaths, on_log: Callable[[str], None]) -> None:
    """Tear the lab down, through the supervisor when it runs, from disk otherwise."""
    require_root()
    if running(paths):
        supervisor = request(paths, "status")["supervisor"].values()
        request(paths, "down", on_log)
        deadline = time.monotonic() + START_TIMEOUT
        while any(alive(pid) for pid in supervisor) and time.monotonic() < deadline:
            time.sleep(0.05)
    if paths.root.exists() or lab_cgroup_names():
        teardown(paths)
