"""``fleetctl os``: JetPack (L4T) updates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from fleetctl.api import OSPlan
from fleetctl.cli.common import (
    AllowDowngradeOpt,
    BreakLockOpt,
    CanaryOpt,
    DryRunOpt,
    EventsOpt,
    FailureScopeOpt,
    GateTimeoutOpt,
    GroupOpt,
    HostKeyOpt,
    InventoryOpt,
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
    WhereOpt,
    YesOpt,
    app,
    err,
    open_fleet,
    out,
    styled,
)
from fleetctl.cli.execute import execute
from fleetctl.cli.progress import ProbeProgress
from fleetctl.errors import FleetError

os_app = typer.Typer(
    help="JetPack (L4T) updates of the hosts' OS.\n\n"
         "Example: fleetctl os upgrade --to 36.4.3 --group factory-c --reboot-timeout 5m",
    no_args_is_help=True)
app.add_typer(os_app, name="os")
PayloadOpt = Annotated[Path | None, typer.Option(
    "--payload", help="The image-based OTA payload (ota_payload_package.tar.gz from "
                      "l4t_generate_ota_package.sh) for R35.5+ to R36.")]
PATH_STYLE = {"apt": "green", "image": "cyan", "current": "dim", "blocked": "red"}


@os_app.command("plan")
def os_plan(
    to: Annotated[str, typer.Option("--to", help="The target L4T release, e.g. 36.4.4.")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None,
    output: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    payload: PayloadOpt = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Per host the way to the target L4T release: apt (same major release),
    image-based OTA (R35.5+ to R36) or blocked, with the reasons and the fix; each
    app the host runs planned again for the new release. Changes nothing.

    Exit 0 when every host answered, 4 when some did not.

    Example: fleetctl os plan --to 36.4.4 --group factory-a --format json
    """
    from fleetctl.api import Selection

    if output not in ("table", "json"):
        raise FleetError(f"--format {output!r} should be table or json", exit_code=2)
    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout)
    selection = Selection(group, limit, tuple(where or ())).required()
    with ProbeProgress(err, len(fleet.hosts(selection))) as progress:
        result = fleet.os_plan(to, selection, payload=payload, on_result=progress.update)
    if output == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        out.print(_table(result))
    if result.unreachable:
        raise typer.Exit(4)


@os_app.command("upgrade")
def os_upgrade(
    to: Annotated[str, typer.Option("--to", help="The target L4T release, e.g. 36.4.3.")],
    inventory: InventoryOpt = None, group: GroupOpt = None, limit: LimitOpt = None,
    where: WhereOpt = None, steps: StepsOpt = "1,100%", max_failures: MaxFailuresOpt = "1",
    failure_scope: FailureScopeOpt = "step", unreachable: UnreachableOpt = "deferred",
    canary: CanaryOpt = None, pause: PauseOpt = None,
    reboot_timeout: Annotated[str, typer.Option(
        "--reboot-timeout", help="How long a rebooting host may take to answer again.")]
    = "10m",
    gate_timeout: GateTimeoutOpt = None,
    payload: PayloadOpt = None,
    dry_run: DryRunOpt = False, yes: YesOpt = False, stage_only: StageOnlyOpt = False,
    no_analysis: NoAnalysisOpt = False, allow_downgrade: AllowDowngradeOpt = False,
    break_lock: BreakLockOpt = False, report_json: ReportOpt = False, events: EventsOpt = None,
    timeout: TimeoutOpt = 5.0, host_key_policy: HostKeyOpt = None,
    state_dir: StateDirOpt = None, packages: PackagesOpt = None,
) -> None:
    """Update the hosts' L4T in steps, canary first: per host lock, stage, install,
    reboot, verify (release, dpkg, firmware capsule, Docker), then its apps redeployed
    on images for the new release in the same host step. A failed host stops the
    rollout; over apt there is no way back.

    Exit codes as deploy's.

    Example: fleetctl os upgrade --to 36.4.3 --group factory-c --yes
    """
    from fleetctl.api import Selection

    fleet = open_fleet(inventory, state_dir, packages, host_key_policy, timeout, events=events)
    options = fleet.options(steps=steps, max_failures=max_failures, failure_scope=failure_scope,
                            unreachable=unreachable, canaries=canary, pause=pause,
                            gate_timeout=gate_timeout, break_lock=break_lock,
                            stage_only=stage_only, analysis=not no_analysis,
                            reboot_timeout=reboot_timeout,
                            payload=str(payload.resolve()) if payload else None)
    selection = Selection(group, limit, tuple(where or ())).required()
    with ProbeProgress(err, len(fleet.hosts(selection))) as progress:
        result = fleet.os_plan(to, selection, payload=payload, on_result=progress.update)
    (err if report_json else out).print(_table(result))
    execute(fleet, result.rollout_plan(), options, dry_run=dry_run, yes=yes,
            report_json=report_json, allow_downgrade=allow_downgrade)


def _table(result: OSPlan) -> Table:
    table = Table(title=Text(f"OS update to R{result.target}"), title_justify="left")
    for column in ("host", "now", "path", "why / what then"):
        table.add_column(column, overflow="fold")
    for path in result.paths:
        table.add_row(path.host, f"R{path.current}" if path.current else "-",
                      styled((path.kind, PATH_STYLE.get(path.kind, ""))),
                      "; ".join(path.reasons or path.notes))
    for host, why in result.unreachable.items():
        table.add_row(host, "-", styled(("unreachable", "red")), why)
    return table
