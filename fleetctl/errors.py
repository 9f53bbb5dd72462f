"""Errors that reach the user as one line and an exit code, never a traceback."""

from __future__ import annotations


class FleetError(Exception):
    """A problem the user can fix; the message says where and what to do.

    ``exit_code`` follows Ansible's habits: 2 for bad input or usage, 4 when
    hosts could not be reached, 1 for anything that failed while running.
    """

    exit_code = 1

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class InputError(FleetError):
    """A file, flag or value given to fleetctl is wrong."""

    exit_code = 2


class InputWarning(UserWarning):
    """Input fleetctl reads but skips a part of, as Ansible does (an unknown key in a YAML
    inventory group, a pattern term that matches nothing): raised with :func:`warnings.warn`,
    shown by the command line as one line."""


class LabError(FleetError):
    """The simulated lab could not be brought up, changed or torn down."""
