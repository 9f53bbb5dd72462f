"""The ``fleetctl`` command line: parse arguments, call the core, render the result.

One module per group of commands; importing them registers them on :data:`app`.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

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
from fleetctl.errors import FleetError, InputWarning

__all__ = ["app", "main"]


_python_showwarning = warnings.showwarning


def _show_warning(message: Warning | str, category: type[Warning], *args: Any,
                  **kwargs: Any) -> None:
    if issubclass(category, InputWarning):
        err.print(f"fleetctl: warning: {message}", highlight=False, soft_wrap=True)
    else:
        _python_showwarning(message, category, *args, **kwargs)


def main() -> None:
    """Console entry point: run the app, turning FleetError into one line and an exit code
    and each warning (input fleetctl skipped a part of, as Ansible does) into one line."""
    warnings.showwarning = _show_warning
    try:
        app()
    except FleetError as exc:
        err.print(f"fleetctl: error: {redact_secrets(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("fleetctl: interrupted")
        sys.exit(130)
