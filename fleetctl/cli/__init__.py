"""The ``fleetctl`` command line: parse arguments, call the core, render the result.

One module per group of commands; importing them registers them on :data:`app`.
"""

from __future__ import annotations

import sys

from fleetctl.api import redact_secrets
from fleetctl.cli import (  # noqa: F401
    bundle,
    fleet,
    inventory,
    lab,
    osupdate,
    plan,
    playbook,
    rollout,
    status,
)
from fleetctl.cli.common import app, err
from fleetctl.errors import FleetError

__all__ = ["app", "main"]


def main() -> None:
    """Console entry point: run the app, turning FleetError into one line and an exit code."""
    try:
        app()
    except FleetError as exc:
        err.print(f"fleetctl: error: {redact_secrets(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("fleetctl: interrupted")
        sys.exit(130)
