"""``fleetctl deploy``, ``rollout``, ``rollback`` and ``history``: staged rollouts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fleetctl.cli.common import (
    GroupOpt,
    HostKeyOpt,
    InventoryOpt,
    JsonOpt,
    LimitOpt,
    StateDirOpt,
    TimeoutOpt,
    WhereOpt,
    app,
    err,
    out,
)
from fleetctl.cli.plan import PackagesOpt, load_catalog, make_plan, render_plan
from fleetctl.cli.progress import watching
from fleetctl.errors import FleetError

rollout_app = typer.Typer(
    help="Inspect and continue rollouts recorded in the journal.\n\n"
         "Example: fleetctl rollout list",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")

EventsOpt = Annotated[Path | None, typer.Option("--events", help="Append every event to "
                                                "this file as NDJSON.")]
ReportOpt = Annotated[bool, typer.Option("--json", help="Print a final JSON report.")]
BreakLockOpt = Annotated[bool, typer.Option("--break-lock", help="Take over locks held by "
                                            "a dead rollout (device and fleet).")]
DeliveryOpt = Annotated[str | None, typer.Option(
    "--delivery", help="registry (hosts pull) or ssh (fleetctl sends the blobs a host "
                       "lacks and loads them) \\[default: each host's fleetctl_delivery, "
                       "else registry].")]
ViaSeedOpt = Annotated[bool, typer.Option(
    "--via-seed", help="ssh delivery: per site, one host gets the blobs over the uplink "
                       "once, the others fetch them from it over the LAN.")]
StageOnlyOpt = Annotated[bool, typer.Option(
    "--stage-only", help="Deliver images and release files to every target and stop; "
                         "nothing running changes. A later run activates without pulling.")]


def delivery_fields(delivery: str | None, via_seed: bool, stage_only: bool) -> dict:
    """Options fields for how images travel; FleetError for a bad --delivery."""
    from fleetctl.delivery import MODES

    if delivery is not None and delivery not in MODES:
        raise FleetError(f"--delivery {delivery!r} should be one of {', '.join(MODES)}",
                         exit_code=2)
    return {"delivery": delivery, "via_seed": via_seed, "stage_only": stage_only}


def _context(inventory, state_dir, host_key_policy, packages, events):
    from fleetctl.inventory import load_inventory
    from fleetctl.journal import Journal
    from fleetctl.rollout import Context
    from fleetctl.state import StateDB, default_state_dir

    db = StateDB(state_dir or default_state_dir())
    journal = Journal(db)
    if events:
        journal.listeners.append(_EventFile(events))
    inv = load_inventory(inventory)
    return Context(journal, db, load_catalog(packages), inv.hosts, host_key_policy)


class _EventFile:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a", buffering=1)

    def __call__(self, event: dict) -> None:
        self.file.write(json.dumps(event) + "\n")


def _finish(ctx, record, report: bool) -> None:
    """Show the result; exit 0 completed, 4 hosts deferred, 1 failed, 0 paused."""
    ctx.db.forget_facts(sorted({s.host for s in record.hosts}))
    if report:
        print(json.dumps(_report(record), indent=2))
    else:
        _render_record(record)
    codes = {"completed": 0, "paused": 0, "rolled-back": 0, "incomplete": 4}
    code = codes.get(record.status, 1)
    if code:
        raise typer.Exit(code)


def _report(record) -> dict:
    return {"id": record.id, "kind": record.kind, "request": record.request,
            "status": record.shown_status, "message": record.message,
            "operator": record.operator, "steps": record.steps,
            "hosts": [s.__dict__ for s in record.hosts]}


def _render_record(record) -> None:
    table = Table(title=f"rollout {record.id} ({record.kind} {record.request}): "
                        f"{record.shown_status}")
    for column in ("step", "host", "package", "phase", "from", "to", "note"):
        table.add_column(column, overflow="fold")
    for s in record.hosts:
        table.add_row(str(s.step + 1) if s.step >= 0 else "-", s.host, s.package, s.phase,
                      f"{s.from_version or '-'} {_short(s.from_digest)}",
                      f"{s.to_version or '-'} {_short(s.to_digest)}", s.error or "")
    out.print(table)
    if record.message:
        out.print(record.message, highlight=False)


def _short(digest: str | None) -> str:
    return digest[7:19] if digest else ""


AllowDowngradeOpt = Annotated[bool, typer.Option(
    "--allow-downgrade", help="Deploy a plan that moves hosts to an older version; with "
                              "--bundle, accept a bundle that is expired or older on its "
                              "channel than one accepted before.")]


@app.command()
def deploy(
    request: Annotated[str, typer.Argument(help="PACKAGE[:VERSION]", metavar="PACKAGE[:VERSION]")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    steps: Annotated[str, typer.Option("--steps", help="Hosts per step, Ansible serial "
                                       "style; the first step is the canary.")] = "1,100%",
    max_failures: Annotated[str, typer.Option("--max-failures", help="Failed hosts that stop "
                                              "the rollout: a count, or a percentage that "
                                              "must be exceeded.")] = "1",
    failure_scope: Annotated[str, typer.Option("--failure-scope", help="Count failures per "
                                               "step or cumulative.")] = "step",
    unreachable: Annotated[str, typer.Option("--unreachable", help="deferred (retried by "
                                             "resume) or failed.")] = "deferred",
    canary: Annotated[list[str] | None, typer.Option("--canary", help="Host(s) for the "
                                                     "first step.")] = None,
    pause: Annotated[str | None, typer.Option("--pause", help="Between steps: a duration "
                                              "(5m) or 'manual' (rollout promote).")] = None,
    gate_timeout: Annotated[str | None, typer.Option("--gate-timeout", help="Health gate "
                                                     "limit \\[default: the package's].")] = None,
    plan_file: Annotated[Path | None, typer.Option("--plan", help="Execute this plan file "
                                                   "(refused when stale).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan, show, stop.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
    = False,
    rollback_all: Annotated[bool, typer.Option("--rollback-all", help="On a breach, also "
                                               "revert hosts of earlier steps.")] = False,
    keep: Annotated[int, typer.Option("--keep", min=2, help="Releases kept per host.")] = 3,
    delivery: DeliveryOpt = None, via_seed: ViaSeedOpt = False, stage_only: StageOnlyOpt = False,
    allow_downgrade: AllowDowngradeOpt = False,
    break_lock: BreakLockOpt = False, report: ReportOpt = False, events: EventsOpt = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Roll a package out in steps: canary first, health-gated, reverted on failure.

    Exit 0 when done, 1 when the failure policy stopped it, 4 when hosts were
    deferred (unreachable; 'rollout resume' retries them), 3 when locked.

    Example: fleetctl deploy ollama --group factory-a --steps 1,50%,100%
    """
    from fleetctl import rollout
    from fleetctl.plan import Plan
    from fleetctl.strategy import parse_policy, parse_steps

    options = rollout.Options(
        steps=parse_steps(steps), canaries=canary or [], pause=_check_pause(pause),
        gate_timeout=_duration(gate_timeout, "--gate-timeout"),
        keep_releases=keep, rollback_all=rollback_all, break_lock=break_lock,
        connect_timeout=timeout, **_policy_fields(parse_policy(max_failures, failure_scope,
                                                               unreachable)),
        **delivery_fields(delivery, via_seed, stage_only))
    if plan_file:
        the_plan = Plan.read(plan_file)
        if the_plan.requests != [request]:
            raise FleetError(f"{plan_file} plans {' '.join(the_plan.requests)}, not {request}",
                             exit_code=2)
        _check_fresh(the_plan, plan_file, state_dir)
    else:
        if not group and not limit:
            raise FleetError("say which hosts: --group G or --limit PATTERN", exit_code=2)
        the_plan, _ = make_plan([request], inventory, group, limit, where, True, 0.0, timeout,
                                host_key_policy, state_dir, packages, 300.0)
    execute(the_plan, options, dry_run=dry_run, yes=yes, report=report, events=events,
            inventory=inventory, state_dir=state_dir, host_key_policy=host_key_policy,
            packages=packages, allow_downgrade=allow_downgrade)


def execute(the_plan, options, *, dry_run: bool, yes: bool, report: bool, events, inventory,
            state_dir, host_key_policy, packages, allow_downgrade: bool = False) -> None:
    """Show the plan, then (unless a dry run, and once confirmed) roll it out."""
    from fleetctl import rollout
    from fleetctl.journal import new_rollout_id
    from fleetctl.plan import refuse_downgrades

    render_plan(the_plan, err if report else out)
    if dry_run:
        return
    refuse_downgrades(the_plan, allow_downgrade)
    if not any(e.action not in ("noop", "blocked") for e in the_plan.entries):
        (err if report else out).print("nothing to do: every host is at its target or "
                                        "blocked")
        raise typer.Exit(4 if the_plan.unreachable else 0)
    if not yes:
        if not sys.stdin.isatty():
            raise FleetError("not a terminal: pass --yes to deploy without confirmation",
                             exit_code=2)
        typer.confirm("deploy this plan?", abort=True)
    ctx = _context(inventory, state_dir, host_key_policy, packages, events)
    with watching(ctx.journal, err):
        record = rollout.run(ctx, rollout.start(ctx, new_rollout_id(), the_plan, options))
    _finish(ctx, record, report)


def _policy_fields(policy) -> dict:
    return {"max_failures": policy.max_failures, "failure_scope": policy.scope,
            "unreachable": policy.unreachable}


def _check_pause(pause: str | None) -> str | None:
    if pause and pause != "manual":
        _duration(pause, "--pause")
    return pause


def _duration(text: str | None, flag: str) -> float | None:
    from fleetctl.catalog import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError:
        raise FleetError(f"{flag} {text!r} should be a duration such as 30s or 5m",
                         exit_code=2) from None


def _check_fresh(the_plan, path: Path, state_dir: Path | None) -> None:
    """Refuse a plan whose tags now point at other digests."""
    from fleetctl.registry import RegistryClient
    from fleetctl.state import StateDB, default_state_dir

    db = StateDB(state_dir or default_state_dir())
    clients: dict[str, RegistryClient] = {}
    for key, seen in the_plan.registry.items():
        where, _, arch = key.rpartition("#")
        registry, _, rest = where.partition("/")
        repository, _, tag = rest.rpartition(":")
        client = clients.setdefault(registry, RegistryClient(registry, db, ttl=0))
        now = {i.arch: i.digest for i in client.images(repository, tag)}
        if now.get(arch) != seen["digest"]:
            raise FleetError(f"{path} is stale: {repository}:{tag} ({arch}) now points at "
                             f"{now.get(arch) or 'nothing'}, the plan has {seen['digest']}; "
                             f"plan again", exit_code=2)


@rollout_app.command("list")
def rollout_list(state_dir: StateDirOpt = None, as_json: JsonOpt = False) -> None:
    """List recent rollouts, newest first.

    Example: fleetctl rollout list --json
    """
    journal = _journal(state_dir)
    records = journal.list()
    if as_json:
        print(json.dumps([{k: v for k, v in _report(r).items() if k != "hosts"}
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
    record = _journal(state_dir).get(rollout_id)
    if as_json:
        print(json.dumps(_report(record), indent=2))
    else:
        _render_record(record)


@rollout_app.command("resume")
def rollout_resume(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")], inventory: InventoryOpt = None,
    report: ReportOpt = False, events: EventsOpt = None, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Continue an interrupted, paused or incomplete rollout from the journal.

    Example: fleetctl rollout resume 20261122T101500-ab12
    """
    from fleetctl import rollout

    ctx = _context(inventory, state_dir, host_key_policy, packages, events)
    with watching(ctx.journal, err):
        record = rollout.resume(ctx, rollout_id)
    _finish(ctx, record, report)


@rollout_app.command("promote")
def rollout_promote(
    rollout_id: Annotated[str, typer.Argument(metavar="ID")], inventory: InventoryOpt = None,
    report: ReportOpt = False, events: EventsOpt = None, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Continue a rollout paused with --pause manual.

    Example: fleetctl rollout promote 20261122T101500-ab12
    """
    rollout_resume(rollout_id, inventory, report, events, host_key_policy, state_dir,
                   packages)


@app.command()
def rollback(
    target: Annotated[str, typer.Argument(help="A rollout ID, or a PACKAGE with --group or "
                                          "--limit.", metavar="ID|PACKAGE")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    to: Annotated[str | None, typer.Option("--to", help="Release id to go back to "
                                           "\\[default: the previous one].")] = None,
    gate_timeout: Annotated[str | None, typer.Option("--gate-timeout", help="Health gate "
                                                     "limit.")] = None,
    break_lock: BreakLockOpt = False, report: ReportOpt = False, events: EventsOpt = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Undo a rollout by ID, or put a package back to its previous release on hosts.

    Fast: no canary, no pulls; hosts whose earlier release is gone are refused.

    Example: fleetctl rollback ollama --group factory-a
    """
    from fleetctl import rollback as core
    from fleetctl import rollout

    ctx = _context(inventory, state_dir, host_key_policy, packages, events)
    if group is None and limit is None:
        if to:
            raise FleetError("--to goes with a PACKAGE and --group/--limit", exit_code=2)
        with watching(ctx.journal, err):
            record = rollout.rollback_rollout(ctx, target)
        _finish(ctx, record, report)
        return
    from fleetctl.inventory import load_inventory

    hosts = load_inventory(inventory).select(limit, group)
    package = ctx.catalog.get(target)
    with watching(ctx.journal, err):
        record = core.rollback_package(
            ctx, package, [h.name for h in hosts], to,
            _duration(gate_timeout, "--gate-timeout"), break_lock, timeout)
    _finish(ctx, record, report)


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
    import time

    rows = _journal(state_dir).history(package, host)
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
                      f"{r['from_version'] or '-'} {_short(r['from_digest'])}",
                      f"{r['to_version'] or '-'} {_short(r['to_digest'])}", r["error"] or "")
    out.print(table)


def _journal(state_dir: Path | None):
    from fleetctl.journal import Journal
    from fleetctl.state import StateDB, default_state_dir

    return Journal(StateDB(state_dir or default_state_dir()))
