"""One host through a rollout: lock, preflight, stage (pull or delivery), activate, gate,
then commit or revert, and unlock with an audit line; and undoing a host.
"""

from __future__ import annotations

from fleetctl import device
from fleetctl.catalog.compose import render_compose
from fleetctl.catalog.packages import Package
from fleetctl.delivery.images import (
    Delivered,
    ImageParts,
    deliver_direct,
    image_parts,
    local_tag,
)
from fleetctl.errors import FleetError
from fleetctl.facts.hostfacts import HostFacts
from fleetctl.osupdate.plan import OS_PACKAGE
from fleetctl.plan import Plan, PlanEntry, current_container, preflight
from fleetctl.rollout.audit import fail, finish, write_audit
from fleetctl.rollout.canary import analyse_host
from fleetctl.rollout.context import (
    Context,
    Options,
    connect_host,
    live_facts,
    render_context,
    ssh_delivery,
)
from fleetctl.rollout.gate import gate, host_tests
from fleetctl.rollout.journal import FINAL_HOST_PHASES, HostState, Journal, RolloutRecord, operator
from fleetctl.rollout.l4t import finish_l4t, undo_l4t, update_l4t
from fleetctl.ssh import Connection, SSHFailure


def states_by_host(journal: Journal, rollout_id: str) -> dict[str, list[HostState]]:
    result: dict[str, list[HostState]] = {}
    for state in journal.host_states(rollout_id):
        result.setdefault(state.host, []).append(state)
    return result


def deploy_host(ctx: Context, record: RolloutRecord, plan: Plan, options: Options,
                 host: str) -> str:
    """Every package of the plan on one host, in dependency order; returns the outcome."""
    journal = ctx.journal
    entries = [e for e in plan.entries if e.host == host]
    states = {s.package: s for s in journal.host_states(record.id, host)}
    pending = [e for e in entries if states[e.package].phase not in FINAL_HOST_PHASES]
    if not pending:
        return "done"
    conn: Connection | None = None
    if states[pending[0].package].phase != "rebooting":    # l4t waits for the boot itself
        # a host unreachable mid-way keeps its phase: it is in flight, not deferred
        conn = _connect_or_defer(
            ctx, record, host, options,
            [(e.package, "deferred" if states[e.package].phase in ("pending", "deferred")
              else states[e.package].phase) for e in pending], "")
        if conn is None:
            return "deferred"
    try:
        for position, entry in enumerate(pending):
            try:
                if entry.package == OS_PACKAGE:
                    outcome, conn = update_l4t(ctx, conn, record, options, entry,
                                               states[entry.package])
                else:
                    assert conn is not None
                    outcome = _deploy_package(ctx, conn, record, plan, options, entry,
                                              states[entry.package])
            except SSHFailure as exc:
                phase = _state(journal, record.id, host, entry.package).phase
                # "locked": only the device lock (this rollout's) and staged blobs exist
                journal.set_host(record.id, host, entry.package,
                                 "deferred" if phase in ("pending", "deferred", "locked")
                                 else phase,
                                 error=f"connection lost: {exc.reason}: {exc.detail}")
                return "deferred"
            except (device.StepFailed, FleetError) as exc:
                # a step outside stage/activate/gate failed (lock, commit, audit): nothing
                # running was changed before commit; after it the journal keeps the phase
                phase = _state(journal, record.id, host, entry.package).phase
                journal.set_host(record.id, host, entry.package,
                                 "failed" if phase in ("pending", "deferred", "locked")
                                 else phase, error=str(exc))
                outcome = "failed"
            if outcome == "inconclusive":     # its later packages wait for the decision
                return outcome
            if outcome not in ("committed", "noop", "ready", "booted") or conn is None:
                for later in pending[position + 1:]:
                    journal.set_host(record.id, host, later.package, "skipped",
                                     error=f"not deployed: {entry.package} {outcome}")
                if entry.package != OS_PACKAGE:   # a new L4T slot goes back with its app
                    conn = finish_l4t(ctx, conn, record, options, host,
                                      f"{entry.package} {outcome}")
                return outcome
        conn = finish_l4t(ctx, conn, record, options, host, None)
    finally:
        if conn is not None:
            conn.close()
    return "committed"


def _connect_or_defer(ctx: Context, record: RolloutRecord, host: str, options: Options,
                      phases: list[tuple[str, str]], prefix: str) -> Connection | None:
    """Connect, or record why not on each (package, phase) and return None."""
    try:
        return connect_host(ctx, host, options.connect_timeout)
    except SSHFailure as exc:
        for package, phase in phases:
            ctx.journal.set_host(record.id, host, package, phase,
                                 error=f"{prefix}{exc.reason}: {exc.detail}")
        return None


def _state(journal: Journal, rollout_id: str, host: str, package: str) -> HostState:
    """The journal's current record of one host and package (the rollout has it)."""
    state = journal.host_state(rollout_id, host, package)
    assert state is not None
    return state


def _deploy_package(ctx: Context, conn: Connection, record: RolloutRecord, plan: Plan,
                    options: Options, entry: PlanEntry, state: HostState) -> str:
    journal = ctx.journal
    package = ctx.catalog.get(entry.package)
    rid, host, name = record.id, entry.host, entry.package
    holder = device.lock(conn, name, rid, operator(), options.break_lock)
    facts = live_facts(conn)
    if state.phase in ("pending", "deferred"):
        current, _, _ = device.releases(conn, name)
        running = current_container(facts, package)
        journal.set_host(rid, host, name, "locked",
                         f"device lock taken{f' (broke {holder})' if holder else ''}",
                         from_release=current, error=None,
                         from_digest=running.digest if running else None,
                         from_version=running.version if running else None)
        state = _state(journal, rid, host, name)
        if running and running.digest == entry.digest and running.release:
            finish(ctx, conn, record, state, "noop", "already at the target digest")
            return "noop"
        if state.from_digest != entry.current_digest:
            return fail(ctx, conn, record, state, f"host changed since the plan: runs "
                         f"{state.from_digest or 'nothing'}, the plan expected "
                         f"{entry.current_digest or 'nothing'}; plan again")
    if state.phase == "reverting":
        return _revert(ctx, conn, record, state, facts, package, options, state.error or "")
    present = any(i.digest == entry.digest for i in facts.images)
    failed_checks = [c for c in preflight(facts, package, 0 if present else entry.pull_bytes)
                     if not c.ok]
    if failed_checks and state.phase == "locked":
        return fail(ctx, conn, record, state, "preflight: " + "; ".join(
            f"{c.name}: {c.detail}" for c in failed_checks))
    over_ssh = ssh_delivery(ctx, options, host)
    image = local_tag(entry.target) if over_ssh else entry.target
    render = render_context(ctx, package, host, rid, facts, entry.version, image)
    if state.phase == "locked":
        try:
            parts, delivered = _deliver(ctx, conn, entry) if over_ssh else (None, None)
            pulled = device.stage(conn, name, rid, render_compose(render), image,
                                  entry.digest, parts.config if parts else "")
        except (device.StepFailed, FleetError) as exc:
            return fail(ctx, conn, record, state, str(exc))
        detail = (f"over SSH: {delivered.describe()}" if delivered else
                  "image pulled" if pulled else "image already on the host")
        if options.stage_only:
            finish(ctx, conn, record, state, "ready", f"staged, nothing running changed; "
                    f"{detail}")
            return "ready"
        journal.set_host(rid, host, name, "staged", detail)
        state.phase = "staged"
    if state.phase == "staged":
        try:
            device.activate(conn, name, rid, device.compose_command(facts))
        except device.StepFailed as exc:
            return _revert(ctx, conn, record, state, facts, package, options, str(exc))
        journal.set_host(rid, host, name, "activated", "containers started")
        state.phase = "activated"
    ok, detail = gate(conn, package, rid, render, options.gate_timeout, ctx.sleep,
                      host_tests(ctx, conn, package, entry, rid), ctx.clock)
    if not ok:
        return _revert(ctx, conn, record, state, facts, package, options, f"gate: {detail}")
    if state.phase == "inconclusive":
        detail += "; promoted by the operator after an inconclusive analysis"
    elif options.analysis and package.analysis and package.analysis.applies_to(state.step):
        journal.note(rid, host, name, "analysing", f"healthy: {detail}; measuring for "
                     f"{package.analysis.window:.0f}s")
        verdict = analyse_host(ctx, conn, plan, entry, package, render,
                               record.steps[state.step], options.connect_timeout)
        journal.note(rid, host, name, "analysed", f"{verdict.outcome}: {verdict.detail}")
        if verdict.outcome == "failed" or (verdict.outcome == "inconclusive" and
                                           package.analysis.inconclusive == "fail"):
            return _revert(ctx, conn, record, state, facts, package, options,
                           f"analysis {verdict.outcome}: {verdict.detail}")
        if verdict.outcome == "inconclusive":
            journal.set_host(rid, host, name, "inconclusive", "analysis inconclusive",
                             error=f"analysis inconclusive: {verdict.detail}")
            return "inconclusive"
        detail += f"; analysis: {verdict.detail}"
    previous = device.commit(conn, name, rid, options.keep_releases)
    journal.set_host(rid, host, name, "committed", f"healthy: {detail}"
                     + (f"; previous release {previous} kept" if previous else ""), error=None)
    write_audit(ctx, conn, record, state, "committed")
    return "committed"


def _deliver(ctx: Context, conn: Connection, entry: PlanEntry) -> tuple[ImageParts, Delivered]:
    """The entry's image onto the host over its SSH connection (if it is not there)."""
    assert ctx.blobs is not None and entry.target
    parts = image_parts(ctx.blobs, entry.target)
    return parts, deliver_direct(conn, entry.host, [parts], ctx.blobs,
                                 ctx.site_limit(entry.site))


def _revert(ctx: Context, conn: Connection, record: RolloutRecord, state: HostState,
            facts: HostFacts, package: Package, options: Options, error: str) -> str:
    """Bring the release that ran before back (no pull) and check it is healthy again."""
    journal = ctx.journal
    journal.set_host(record.id, state.host, state.package, "reverting", error=error)
    try:
        device.switch_to(conn, package.name, state.from_release,
                         device.compose_command(facts), make_current=False)
        if state.from_release:
            render = render_context(ctx, package, state.host, state.from_release, facts,
                                    state.from_version)
            ok, detail = gate(conn, package, state.from_release, render, options.gate_timeout,
                              ctx.sleep, clock=ctx.clock)
            if not ok:
                raise device.StepFailed(f"previous release unhealthy: {detail}")
    except device.StepFailed as exc:
        journal.set_host(record.id, state.host, state.package, "revert-failed",
                         error=f"{error}; revert failed: {exc}")
        write_audit(ctx, conn, record, state, f"revert-failed ({error})")
        return "revert-failed"
    back = f"back on release {state.from_release}" if state.from_release else \
        "removed (nothing ran before)"
    journal.set_host(record.id, state.host, state.package, "reverted", back, error=error)
    write_audit(ctx, conn, record, state, f"reverted ({error})")
    return "reverted"


def undo_host(ctx: Context, record: RolloutRecord, options: Options, host: str) -> str:
    """Return one host to what it ran before the rollout, packages in reverse order."""
    journal = ctx.journal
    states = journal.host_states(record.id, host)
    undo = [s for s in reversed(states)
            if s.phase in ("committed", "locked", "staged", "activated", "reverting",
                           "inconclusive")]
    # an L4T update in these phases changed the host too (its stage: the apt source)
    undo += [s for s in states if s.package == OS_PACKAGE and s.phase in
             ("ready", "rebooting", "booted")]
    if not undo:
        return "nothing to undo"
    conn: Connection | None = _connect_or_defer(
        ctx, record, host, options, [(s.package, s.phase) for s in undo],
        "rollback deferred: ")
    if conn is None:
        return "deferred"
    try:
        facts = live_facts(conn)
        for s in undo:              # apps first, the L4T update (the host's first) last
            if s.package == OS_PACKAGE:
                conn = undo_l4t(ctx, conn, record, options, s)
            elif conn is not None:
                _undo_package(ctx, conn, record, options, s, facts)
    finally:
        if conn is not None:
            conn.close()
    return "rolled-back"


def _undo_package(ctx: Context, conn: Connection, record: RolloutRecord, options: Options,
                  s: HostState, facts: HostFacts) -> None:
    """One package back to the release it ran before the rollout."""
    journal, host = ctx.journal, s.host
    package = ctx.catalog.get(s.package)
    try:
        device.lock(conn, s.package, record.id, operator(), options.break_lock)
        ours = any(c.release == record.id for c in device.containers(conn, s.package))
        if s.phase != "committed" and not ours:
            # the journal is written after each device step: a controller killed
            # between the two leaves "staged" while the release already runs
            detail = "nothing had changed"
        else:
            device.switch_to(conn, s.package, s.from_release, device.compose_command(facts),
                             make_current=s.phase == "committed")
            detail = (f"back on release {s.from_release}" if s.from_release
                      else "removed (nothing ran before)")
            if s.from_release:
                ok, why = gate(conn, package, s.from_release,
                               render_context(ctx, package, host, s.from_release, facts,
                                              s.from_version),
                               options.gate_timeout, ctx.sleep, clock=ctx.clock)
                if not ok:
                    raise device.StepFailed(f"previous release unhealthy: {why}")
    except device.StepFailed as exc:
        journal.set_host(record.id, host, s.package, "revert-failed", error=str(exc))
        write_audit(ctx, conn, record, s, f"rollback failed ({exc})")
        return
    journal.set_host(record.id, host, s.package, "rolled-back", detail)
    write_audit(ctx, conn, record, s, "rolled-back")
