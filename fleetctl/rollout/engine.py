"""Staged rollouts: run a plan step by step, each host through its state machine
(:mod:`.host`); the failure policy decides after each step whether to go on. Every
transition is written to the journal before the next one starts, so :func:`resume` and
:func:`rollback_rollout` can pick up from any point.
"""

from __future__ import annotations

from dataclasses import replace

from fleetctl.durations import parse_duration
from fleetctl.errors import FleetError
from fleetctl.osupdate.plan import OS_PACKAGE
from fleetctl.plan import Plan
from fleetctl.rollout.context import Context, Options, parallel, with_delivery, with_playbook
from fleetctl.rollout.host import deploy_host, states_by_host, undo_host
from fleetctl.rollout.hosttests import TestPool
from fleetctl.rollout.journal import FINAL_HOST_PHASES, HostState, RolloutRecord
from fleetctl.rollout.playbook import window_closed
from fleetctl.rollout.seeding import seed_sites
from fleetctl.rollout.strategy import batches, order_canaries_first

FAILED = ("failed", "reverted", "revert-failed")


def start(ctx: Context, rollout_id: str, plan: Plan, options: Options) -> RolloutRecord:
    """Record a new rollout of ``plan`` (steps, canaries first), take the fleet lock."""
    targeted = list(dict.fromkeys(e.host for e in plan.entries
                                  if e.action not in ("noop", "blocked")))
    classes = {e.host: (e.l4t, e.module) for e in plan.entries}
    step_sizes = ["100%"] if options.stage_only else options.steps
    first = batches(targeted, step_sizes)[0] if targeted else []
    ordered = order_canaries_first(targeted, classes, len(first), options.canaries)
    steps = batches(ordered, step_sizes)
    step_of = {h: i for i, hosts in enumerate(steps) for h in hosts}
    states = []
    for entry in plan.entries:
        phase = "skipped" if entry.blocked else "noop" if entry.action == "noop" else \
            "pending"
        states.append(HostState(entry.host, entry.package, step_of.get(entry.host, -1), phase,
                                from_digest=entry.current_digest,
                                from_version=entry.current_version,
                                to_digest=entry.digest, to_version=entry.version,
                                to_release=rollout_id,
                                error=entry.reason if entry.blocked else None))
    kind = "os" if OS_PACKAGE in plan.packages else "deploy"
    ctx.journal.create(rollout_id, kind, " ".join(plan.requests), plan.packages, steps,
                       options.to_json(), plan.to_json(), states, targeted,
                       options.break_lock)
    return ctx.journal.get(rollout_id)


def run(ctx: Context, record: RolloutRecord) -> RolloutRecord:
    """Run (or continue) a rollout to its end, a breach, or a manual pause."""
    with TestPool() as tests:
        return _run(replace(ctx, tests=tests), record)


def _run(ctx: Context, record: RolloutRecord) -> RolloutRecord:
    options = Options.from_json(record.options, f"rollout {record.id}: options")
    plan = Plan.from_json(record.plan)
    ctx = with_playbook(with_delivery(ctx, options, plan), options)
    if ctx.tests and not options.stage_only and any(ctx.catalog.get(name).tests
                                                    for name in record.packages
                                                    if name != OS_PACKAGE):
        ctx.tests.start()
    journal = ctx.journal
    policy = options.policy
    if options.via_seed:
        seed_sites(ctx, record, plan, options)
    failed_so_far = done_so_far = 0
    for index, step_hosts in enumerate(record.steps):
        states = states_by_host(journal, record.id)
        todo = [h for h in step_hosts
                if any(s.phase not in FINAL_HOST_PHASES for s in states.get(h, []))]
        closed = window_closed(options.window) if todo else None
        if closed:
            journal.set_status(record.id, "paused", f"paused before step {index + 1}: {closed}"
                               f"; continue then with 'fleetctl rollout resume {record.id}'",
                               current_step=index)
            return journal.get(record.id)
        journal.set_status(record.id, "running", current_step=index)
        outcomes = parallel(lambda h: deploy_host(ctx, record, plan, options, h), todo)
        states = states_by_host(journal, record.id)
        # a host lost mid-way (after activate, before commit or revert) is in an unknown
        # state: it counts as unreachable, and the rollout goes no further without it
        unknown = [h for h in step_hosts if _host_outcome(states[h]) == "in-flight"]
        unsure = [h for h in step_hosts if _host_outcome(states[h]) == "inconclusive"]
        failed = [h for h in step_hosts if _host_outcome(states[h]) in FAILED
                  or (policy.unreachable == "failed" and
                      _host_outcome(states[h]) in ("deferred", "in-flight"))]
        failed_so_far += len(failed)
        done_so_far += len(step_hosts)
        scope_failed, scope_hosts = ((len(failed), len(step_hosts)) if policy.scope == "step"
                                     else (failed_so_far, done_so_far))
        if policy.breached(scope_failed, scope_hosts):
            return _stop(ctx, record, plan, options, index, failed)
        if unknown:
            lost = "; ".join(f"{h} ({_lost_phase(states[h])})" for h in unknown)
            journal.set_status(record.id, "incomplete", f"step {index + 1} stopped: the "
                               f"connection to {lost} was lost mid-way, so its state is "
                               f"unknown; 'fleetctl rollout resume {record.id}' checks it "
                               f"and goes on, 'fleetctl rollback {record.id}' undoes it",
                               current_step=index)
            journal.unlock(record.id)
            return journal.get(record.id)
        if unsure:
            why = next(s.error for s in states[unsure[0]] if s.phase == "inconclusive")
            journal.set_status(record.id, "paused", f"step {index + 1}: {why} (on "
                               f"{', '.join(unsure)}); 'fleetctl rollout promote {record.id}' "
                               f"commits and goes on, 'fleetctl rollback {record.id}' undoes "
                               f"it", current_step=index)
            return journal.get(record.id)
        if outcomes and index < len(record.steps) - 1 and options.pause:
            if options.pause == "manual":
                journal.set_status(record.id, "paused", f"paused after step {index + 1}; "
                                   f"continue with 'fleetctl rollout promote {record.id}'",
                                   current_step=index + 1)
                return journal.get(record.id)
            ctx.sleep(parse_duration(options.pause))
    states = states_by_host(journal, record.id)
    deferred = [h for h, s in states.items() if _host_outcome(s) == "deferred"]
    if deferred:
        journal.set_status(record.id, "incomplete", f"{len(deferred)} hosts deferred "
                           f"(unreachable): {', '.join(deferred)}; retry with 'fleetctl rollout "
                           f"resume {record.id}'", current_step=len(record.steps))
    else:
        journal.set_status(record.id, "completed", _summary(states),
                           current_step=len(record.steps))
    journal.unlock(record.id)
    return journal.get(record.id)


def _host_outcome(states: list[HostState]) -> str:
    """One word for a host across its packages: the worst phase wins."""
    phases = {s.phase for s in states}
    for phase in ("revert-failed", "reverted", "failed", "deferred", "rolled-back",
                  "inconclusive"):
        if phase in phases:
            return phase
    if phases - set(FINAL_HOST_PHASES):
        return "in-flight"
    return "committed" if "committed" in phases else sorted(phases)[0]


def _lost_phase(states: list[HostState]) -> str:
    """Where a host's deploy stopped: ``ollama activated``."""
    return ", ".join(f"{s.package} {s.phase}" for s in states
                     if s.phase not in FINAL_HOST_PHASES)


def _summary(states: dict[str, list[HostState]]) -> str:
    counts: dict[str, int] = {}
    for host_states in states.values():
        outcome = _host_outcome(host_states)
        counts[outcome] = counts.get(outcome, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))


def _stop(ctx: Context, record: RolloutRecord, plan: Plan, options: Options, index: int,
          failed: list[str]) -> RolloutRecord:
    """The failure policy was breached at step ``index``: revert that step's committed
    hosts (and earlier steps' with ``rollback_all``), stop."""
    journal = ctx.journal
    steps = record.steps[:index + 1] if options.rollback_all else [record.steps[index]]
    hosts = [h for step in steps for h in step]
    states = states_by_host(journal, record.id)
    to_undo = [h for h in hosts if any(s.phase == "committed" for s in states[h])]
    parallel(lambda h: undo_host(ctx, record, options, h), to_undo)
    for state in journal.host_states(record.id):
        # an unreachable host counted as failed keeps its reason
        if state.phase in ("pending", "deferred") and state.host not in failed:
            journal.set_host(record.id, state.host, state.package, "cancelled",
                             error=f"not started: the rollout stopped at step {index + 1}")
    message = (f"stopped at step {index + 1} of {len(record.steps)}: failed on "
               f"{', '.join(failed)}; " + _summary(states_by_host(journal, record.id)))
    journal.set_status(record.id, "failed", message)
    journal.unlock(record.id)
    return journal.get(record.id)


def resume(ctx: Context, rollout_id: str) -> RolloutRecord:
    """Continue a rollout from the journal: interrupted, paused, or with deferred hosts."""
    record = ctx.journal.get(rollout_id)
    status = record.shown_status
    if status == "running":
        raise FleetError(f"rollout {rollout_id} is still running ({record.controller})",
                         exit_code=3)
    if status not in ("interrupted", "paused", "incomplete"):
        raise FleetError(f"rollout {rollout_id} is {status}: nothing to resume; "
                         f"'fleetctl rollback {rollout_id}' undoes it", exit_code=2)
    hosts = sorted({s.host for s in record.hosts if s.phase not in ("skipped", "noop")})
    ctx.journal.claim(rollout_id, record.packages, hosts)
    return run(ctx, ctx.journal.get(rollout_id))


def rollback_rollout(ctx: Context, rollout_id: str) -> RolloutRecord:
    """Undo a rollout on every host it touched: back to what each ran before, no pulls."""
    record = ctx.journal.get(rollout_id)
    if record.shown_status == "running":
        raise FleetError(f"rollout {rollout_id} is still running ({record.controller}); stop "
                         f"it first", exit_code=3)
    options = Options.from_json(record.options, f"rollout {record.id}: options")
    ctx = with_playbook(with_delivery(ctx, options, Plan.from_json(record.plan)), options)
    hosts = list(dict.fromkeys(s.host for s in record.hosts))
    ctx.journal.claim(rollout_id, record.packages, hosts, break_lock=True)
    parallel(lambda h: undo_host(ctx, record, options, h), hosts)
    final = ctx.journal.get(rollout_id)
    left = [s.host for s in final.hosts if s.phase in ("committed", "activated", "staged",
                                                        "locked", "revert-failed",
                                                        "inconclusive")]
    ctx.journal.set_status(rollout_id, "rolled-back" if not left else "failed",
                           "rolled back" + (f"; not on: {', '.join(sorted(set(left)))}"
                                            if left else ""))
    ctx.journal.unlock(rollout_id)
    return ctx.journal.get(rollout_id)
