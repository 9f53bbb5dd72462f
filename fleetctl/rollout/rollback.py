"""``fleetctl rollback PACKAGE``: put hosts back on their previous release (or one
named with ``--to``), all at once: no canary, no pulls. A host whose earlier
release or its image is gone is refused and says so. Recorded in the journal as
a rollout of kind ``rollback``.
"""

from __future__ import annotations

from fleetctl import device
from fleetctl.catalog.packages import Package
from fleetctl.facts.hostfacts import ProbeOutputError, image_digest
from fleetctl.plan import current_container
from fleetctl.rollout.audit import write_audit
from fleetctl.rollout.context import (
    Context,
    Options,
    connect_host,
    live_facts,
    parallel,
    render_context,
)
from fleetctl.rollout.gate import gate
from fleetctl.rollout.journal import HostState, RolloutRecord, new_rollout_id, operator
from fleetctl.ssh import SSHFailure


def rollback_package(ctx: Context, package: Package, hosts: list[str], to: str | None,
                     gate_timeout: float | None, break_lock: bool,
                     timeout: float) -> RolloutRecord:
    """Roll ``package`` back on ``hosts``; returns the journal record."""
    rid = new_rollout_id()
    options = Options(steps=["100%"], gate_timeout=gate_timeout, break_lock=break_lock,
                      connect_timeout=timeout)
    request = package.name + (f" --to {to}" if to else "")
    ctx.journal.create(rid, "rollback", request, [package.name], [hosts], options.to_json(),
                       {}, [HostState(h, package.name, 0, "pending") for h in hosts], hosts,
                       break_lock)
    record = ctx.journal.get(rid)
    parallel(lambda h: _rollback_host(ctx, record, package, h, to, options), hosts)
    final = ctx.journal.get(rid)
    refused = [s for s in final.hosts if s.phase != "rolled-back"]
    ctx.journal.set_status(rid, "failed" if refused else "rolled-back",
                           f"{len(final.hosts) - len(refused)} rolled back"
                           + (f", {len(refused)} not: " + "; ".join(
                               f"{s.host}: {s.error}" for s in refused) if refused else ""))
    ctx.journal.unlock(rid)
    return ctx.journal.get(rid)


def _rollback_host(ctx: Context, record: RolloutRecord, package: Package, host: str,
                   to: str | None, options: Options) -> None:
    journal, name = ctx.journal, package.name
    try:
        conn = connect_host(ctx, host, options.connect_timeout)
    except SSHFailure as exc:
        journal.set_host(record.id, host, name, "deferred", error=f"{exc.reason}: {exc.detail}")
        return
    with conn:
        current, previous, found = device.releases(conn, name)
        target = to or previous
        if target is None or target not in found:
            why = (f"release {target} is not on the device (it has: "
                   f"{', '.join(sorted(found)) or 'none'})" if target else
                   "no previous release on the device")
            journal.set_host(record.id, host, name, "failed", error=why)
            return
        if target == current:
            journal.set_host(record.id, host, name, "noop", f"already on release {target}")
            return
        try:
            to_digest = image_digest(found[target])
        except ProbeOutputError as exc:
            journal.set_host(record.id, host, name, "failed", error=f"release {target}: {exc}")
            return
        facts = live_facts(conn)
        running = current_container(facts, package)
        try:
            device.lock(conn, name, record.id, operator(), options.break_lock)
        except device.StepFailed as exc:
            journal.set_host(record.id, host, name, "failed", error=str(exc))
            return
        journal.set_host(record.id, host, name, "locked", f"to release {target}",
                         from_release=current, to_release=target,
                         from_digest=running.digest if running else None,
                         from_version=running.version if running else None,
                         to_digest=to_digest)
        state = journal.host_states(record.id, host)[0]
        compose = device.compose_command(facts)
        try:
            device.switch_to(conn, name, target, compose, make_current=True)
            ok, detail = gate(conn, package, target,
                              render_context(ctx, package, host, target, facts),
                              options.gate_timeout, ctx.sleep, clock=ctx.clock)
            if not ok:
                device.switch_to(conn, name, current, compose, make_current=True)
                raise device.StepFailed(f"release {target} unhealthy ({detail}); back on "
                                        f"{current}")
        except device.StepFailed as exc:
            journal.set_host(record.id, host, name, "failed", error=str(exc))
            write_audit(ctx, conn, record, state, f"rollback failed ({exc})")
            return
        journal.set_host(record.id, host, name, "rolled-back", f"healthy on release {target}")
        write_audit(ctx, conn, record, state, "rolled-back")

