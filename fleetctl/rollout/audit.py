"""Ending a host's part of a rollout: the journal's phase, then the device's audit line
with the lock released (:func:`write_audit`).
"""

from __future__ import annotations

import time

from fleetctl import device
from fleetctl.rollout.context import Context
from fleetctl.rollout.journal import HostState, RolloutRecord, operator
from fleetctl.secrets import redact
from fleetctl.ssh import Connection


def fail(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
         error: str) -> str:
    """Nothing running changed: record the failure, unlock."""
    ctx.journal.set_host(record.id, state.host, state.package, "failed", error=error)
    write_audit(ctx, conn, record, state, f"failed ({error})")
    return "failed"


def finish(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
           phase: str, detail: str) -> None:
    """A final phase other than failed: record it, unlock."""
    ctx.journal.set_host(record.id, state.host, state.package, phase, detail)
    write_audit(ctx, conn, record, state, phase)


def write_audit(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
                result: str) -> None:
    """Release the device lock and append the result to the device's audit log (a line
    that cannot be written, e.g. on a full disk, is noted in the journal instead)."""
    line = (f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} rollout={record.id} "
            f"package={state.package} from={state.from_digest or '-'} "
            f"to={state.to_digest or '-'} result={redact(result)} operator={operator()}")
    try:
        device.unlock(conn, state.package, record.id, line)
    except device.StepFailed as exc:
        ctx.journal.note(record.id, state.host, state.package, "audit-not-written", str(exc))
