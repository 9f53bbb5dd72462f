"""The lab supervisor: the one process that owns the lab's daemons.

Two processes, started by ``fleetctl lab up``:

- the **reaper** is a child subreaper (``PR_SET_CHILD_SUBREAPER``): every lab
  daemon is orphaned at start and adopted by it, and it reaps each one the
  moment it exits. The machine's PID 1 may reap slowly, and zombies make
  dockerd refuse to start and cgroups refuse to go away.
- the **worker**, its child, holds the :class:`~fleetctl.lab.lab.Lab` and
  answers requests on a Unix socket: one JSON request per connection, answered
  by ``{"log": ...}`` lines and a final ``{"ok": ..., "result"|"error": ...}``.

The reaper leaves once the worker has left and the last daemon is reaped.
"""

from __future__ import annotations

import ctypes
import json
import os
import socketserver
import subprocess
import sys
import threading
import traceback
from pathlib import Path

from fleetctl.errors import FleetError
from fleetctl.lab.lab import Lab
from fleetctl.lab.spec import load_spec
from fleetctl.lab.system import LabPaths

PR_SET_CHILD_SUBREAPER = 36


def reaper() -> None:
    """Become a subreaper, start the worker, reap until nothing is left."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER): errno {ctypes.get_errno()}")
    os.chdir("/")
    worker = subprocess.Popen([sys.executable, "-m", "fleetctl.lab.supervisor", "--worker"])
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == worker.pid:
            worker.returncode = 0  # reaped here; keep Popen from waiting on it again


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        def log(message: str) -> None:
            self._send({"log": message})

        line = self.rfile.readline()
        if not line.strip():
            return  # a liveness check: connected, asked nothing
        try:
            request = json.loads(line)
            op = request.pop("op")
            lab = self.server.lab
            if op == "status":
                result = lab.status()
            else:
                with lab.lock:
                    result = self._dispatch(lab, op, request, log)
            self._send({"ok": True, "result": result})
        except FleetError as exc:
            self._send({"ok": False, "error": str(exc), "exit_code": exc.exit_code})
        except Exception as exc:
            traceback.print_exc()
            self._send({"ok": False, "error": f"lab supervisor: {type(exc).__name__}: {exc}"})
        if self.server.finished:
            threading.Thread(target=self.server.shutdown, daemon=True).start()

    def _dispatch(self, lab: Lab, op: str, request: dict, log) -> object:
        if op == "up":
            spec = load_spec(Path(request["spec"]), request.get("hosts"), request["text"])
            return lab.up(spec, log)
        if op == "fault":
            return lab.fault(request["host"], request["kind"], request.get("params") or {})
        if op == "heal":
            return lab.heal(request["host"])
        if op == "reflash":
            return lab.reflash(request["host"])
        if op == "down":
            lab.down(log)
            self.server.finished = True
            return {"up": False}
        raise FleetError(f"lab supervisor: unknown request {op!r}")

    def _send(self, message: dict) -> None:
        try:
            self.wfile.write(json.dumps(message).encode() + b"\n")
            self.wfile.flush()
        except OSError:
            pass  # the client went away; the work itself goes on


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, lab: Lab) -> None:
        path.unlink(missing_ok=True)
        super().__init__(str(path), _Handler)
        path.chmod(0o600)
        self.lab = lab
        self.finished = False


def worker() -> None:
    """Serve lab requests until ``down`` has torn the lab down."""
    os.chdir("/")
    paths = LabPaths.default()
    paths.root.mkdir(parents=True, exist_ok=True)
    lab = Lab(paths)
    server = _Server(paths.control_socket, lab)
    threading.Thread(target=lab.watch_reboots, daemon=True).start()
    print(f"fleetlab supervisor worker {os.getpid()} serving {paths.control_socket}", flush=True)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    worker() if "--worker" in sys.argv else reaper()
