"""``fleetctl deploy``, ``rollout``, ``rollback`` and ``history``: staged rollouts and
the journal."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fleetctl.cli.common import (
    AllowDowngradeOpt,
    BreakLockOpt,
    CanaryOpt,
    DeliveryOpt,
    DryRunOpt,
    EventsOpt,
    FailureScopeOpt,
    GateTimeoutOpt,
    GroupOpt,
    HostKeyOpt,
    InventoryOpt,
    JsonOpt,
    LimitOpt,
    MaxFailuresOpt,
    NoAnalysisOpt,
    PackagesOpt,
    PauseOpt,
    ReportOpt,
    StageOnlyOpt,
    StateDirOpt,
    StepsOpt,
    TimeoutOpt,
    UnreachableOpt,
    ViaSeedOpt,
    WhereOpt,
    YesOpt,
    app,
    err,
    open_fleet,
    out,
)
from fleetctl.cli.execute import execute, finish
from fleetctl.cli.progress import ProbeProgress, watching
from fleetctl.cli.render import render_record, report, short
from fleetctl.errors import FleetError

rollout_app = typer.Typer(
    help="Inspect and continue rollouts recorded in the journal.\n\n"
         "Example: fleetctl rollout list",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")


@app.command()
def deploy(
    request: Annotated[str, typer.Argument(help="PACKAGE[:VERSION]", metavar="PACKAGE[:VERSION]")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    steps: StepsOpt = "1,100%", max_failures: MaxFailuresOpt = "1",
    failure_scope: FailureScopeOpt = "step", unreachable: UnreachableOpt = "deferred",
    canary: CanaryOpt = None, pause: PauseOpt = None,
    gate_timeout: GateTimeoutOpt = None,
    plan_file: Annotated[Path | None, typer.Option("--plan", help="Execute this plan file "
                                                   "(refused when stale).")] = None,
    dry_run: DryRunOpt = False, yes: YesOpt = False,
    rollback_all: Annotated[bool, typer.Option("--rollback-all", help="On a breach, also "
                                               "revert hosts of earlier steps.")] = False,
    keep: Annotated[int, typer.Option("--keep", min=2, help="Releases kept per host.")] = 3,
    delivery: DeliveryOpt = None, via_seed: ViaSeedOpt = False, stage_only: StageOnlyOpt = False,
    no_analysis: NoAnalysisOpt = False, allow_downgrade: AllowDowngradeOpt = False,
    break_lock: BreakLockOpt = False, report_json: ReportOpt = False, events: EventsOpt = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Roll a package out in steps: canary first, health-gated, reverted on failure.

    Exit 0 when done, 1 when the failure policy stopped it or no host can take the
    request, 4 when hosts were deferred (unreachable; 'rollout resume' retries them),
    3 when locked.

    Example: fleetctl deploy ollama --group factory-a --steps 1,50%,100%
    """
    from fleetctl.api import Selection

    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout, events=events)
    options = fleet.options(steps=steps, max_failures=max_failures, failure_scope=failure_scope,
                            unreachable=unreachable, canaries=canary, pause=pause,
                            gate_timeout=gate_timeout, keep=keep, rollback_all=rollback_all,
                            break_lock=break_lock, delivery=delivery, via_seed=via_seed,
                            stage_only=stage_only, analysis=not no_analysis)
    if plan_file:
        the_plan = fleet.read_plan(plan_file, request)
    else:
        selection = Selection(group, limit, tuple(where or ())).required()
        with ProbeProgress(err, len(fleet.hosts(selection))) as progress:
            the_plan = fleet.plan([request], selection, on_result=progress.update)
    execute(fleet, the_plan, options, dry_run=dry_run, yes=yes, report_json=report_json,
            allow_downgrade=allow_downgrade)


@rollout_app.command("list")
def rollout_list(state_dir: StateDirOpt = None, as_json: JsonOpt = False) -> None:
    """List recent rollouts, newest first.

    Example: fleetctl rollout list --json
    """
    records = open_fleet(state_dir=state_dir).rollouts()
    if as_json:
        print(json.dumps([{k: v for k, v in report(r).items() if k != "hosts"}
                          for r in records], indent=2))
        return
    table = Table(title=f"{len(records)} rollouts")
    for column in ("id", "kind", "request", "status", "hosts", "operator", "message"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(r.id, r.kind, r.request, r.shown_status,
                      str(len({s.host for s in r.hosts})), r.operator, r.message or "")
    out.print(table)


@rollout_app.command("status")
def rollout_status(rollout_id: Annotated[str, typer.Argument(metavar="ID")],
                   state_dir: StateDirOpt = None, as_json: JsonOpt = False) -> None:
    """Show a rollout's steps and every host's phase.

    Example: fleetctl rollout status 20261122T101500-ab12
    """
    record = open_fleet(state_dir=state_dir).status(rollout_id)
    if as_json:
        print(json.dumps(report(record), indent=2))
    else:
        render_record(record)


@rollout_app.command("resume")
def rollout_resume(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")], inventory: InventoryOpt = None,
    report_json: ReportOpt = False, events: EventsOpt = None, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Continue an interrupted, paused or incomplete rollout from the journal.

    Example: fleetctl rollout resume 20261122T101500-ab12
    """
    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, events=events)
    with watching(fleet.journal, err):
        record = fleet.resume(rollout_id)
    finish(record, report_json)


@rollout_app.command("promote")
def rollout_promote(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")], inventory: InventoryOpt = None,
    report_json: ReportOpt = False, events: EventsOpt = None, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Continue a paused rollout (--pause manual, or an inconclusive canary analysis:
    its hosts are committed after their health gate).

    Example: fleetctl rollout promote 20261122T101500-ab12
    """
    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, events=events)
    with watching(fleet.journal, err):
        record = fleet.promote(rollout_id)
    finish(record, report_json)


@app.command()
def rollback(
    target: Annotated[str, typer.Argument(help="A rollout ID, or a PACKAGE with --group or "
                                          "--limit.", metavar="ID|PACKAGE")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    to: Annotated[str | None, typer.Option("--to", help="Release id to go back to "
                                           "\\[default: the previous one].")] = None,
    gate_timeout: Annotated[str | None, typer.Option("--gate-timeout", help="Health gate "
                                                     "limit.")] = None,
    break_lock: BreakLockOpt = False, report_json: ReportOpt = False, events: EventsOpt = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Undo a rollout by ID, or put a package back to its previous release on hosts.

    Fast: no canary, no pulls; hosts whose earlier release is gone are refused.

    Example: fleetctl rollback ollama --group factory-a
    """
    from fleetctl.api import Selection

    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout, events=events)
    if group is None and limit is None and to:
        raise FleetError("--to goes with a PACKAGE and --group/--limit", exit_code=2)
    with watching(fleet.journal, err):
        record = fleet.rollback(target) if group is None and limit is None else \
            fleet.rollback_package(target, Selection(group, limit), to=to,
                                   gate_timeout=gate_timeout, break_lock=break_lock)
    finish(record, report_json)


@app.command()
def history(
    package: Annotated[str | None, typer.Option("--package", "-p", help="Only this "
                                                "package.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Only this host.")] = None,
    as_json: JsonOpt = False, state_dir: StateDirOpt = None,
) -> None:
    """What was deployed where and when, from the journal, newest first.

    Example: fleetctl history --package ollama --host jetson-a1
    """
    rows = open_fleet(state_dir=state_dir).history(package, host)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} host results")
    for column in ("when", "rollout", "kind", "host", "package", "result", "from", "to",
                   "note"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["updated_at"])),
                      r["rollout_id"], r["kind"], r["host"], r["package"], r["phase"],
                      f"{r['from_version'] or '-'} {short(r['from_digest'])}",
                      f"{r['to_version'] or '-'} {short(r['to_digest'])}", r["error"] or "")
    out.print(table)
